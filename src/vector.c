/*-------------------------------------------------------------------------
 *
 * vector.c
 *	  Feature vectors: the one mapping from SQL values to model inputs.
 *
 * Every vector that enters a model, at training or at scoring time, goes
 * through nids_map_value:
 *	- NULL and NaN are missing values (XGBoost's default direction; the
 *	  isolation forest's random side, see iforest.c);
 *	- +/-Infinity, which CICFlowMeter writes for rates over a zero duration,
 *	  and finite values beyond float32's range become +/-FLT_MAX, the largest
 *	  float32 of that sign: they stay extreme, comparable and finite, which
 *	  XGBoost requires (it refuses Inf in its input);
 *	- everything else is rounded to float32, as XGBoost does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "checks.h"
#include "nids.h"

float
nids_map_value(double v)
{
	if (isnan(v))
		return NAN;
	if (v >= FLT_MAX)
		return FLT_MAX;
	if (v <= -FLT_MAX)
		return -FLT_MAX;
	return (float) v;
}

/*
 * Fill out[expected] from a float8[] argument, after checking its shape.
 */
void
vector_from_array(ArrayType *array, int expected, const char *model, float *out)
{
	const double *values;
	bits8	   *nulls;

	CheckFeatureArray(array, expected, model);
	values = (const double *) ARR_DATA_PTR(array);
	nulls = ARR_NULLBITMAP(array);
	if (nulls == NULL)
	{
		for (int i = 0; i < expected; i++)
			out[i] = nids_map_value(values[i]);
	}
	else
	{
		int			k = 0;

		for (int i = 0; i < expected; i++)
		{
			if (nulls[i / 8] & (1 << (i % 8)))
				out[i] = nids_map_value(values[k++]);
			else
				out[i] = NAN;
		}
	}
}
