/*
 * shortest.cc
 *	  The shortest decimal digits that read back as the same double, from
 *	  Google's double-conversion (Debian's libdouble-conversion): the digits
 *	  Java's Double.toString writes, at a fraction of the cost of searching
 *	  with snprintf and strtod (format.c writes them as Java does).
 */
#include <double-conversion/double-to-string.h>

extern "C" int
shortest_digits_fast(double v, char *digits, int size, int *exp10)
{
	bool		sign;
	int			length,
				point;

	double_conversion::DoubleToStringConverter::DoubleToAscii(
		v, double_conversion::DoubleToStringConverter::SHORTEST, 0, digits, size,
		&sign, &length, &point);
	*exp10 = point - 1;
	return length;
}
