/*-------------------------------------------------------------------------
 *
 * train_preprocess.c
 *	  Deterministic feature selection: drop constant columns, then one of
 *	  each pair of highly correlated columns.
 *
 * Both decisions are made on the training split only (the first ntrain
 * rows of the matrix), so nothing of the hold-out leaks into the model.
 *
 * 1. A column is constant when its non-missing training values are all
 *	  equal (or it has none).
 * 2. Pearson's r is computed for every pair of remaining columns over
 *	  pairwise-complete rows, as pandas' DataFrame.corr does, leaving out
 *	  missing values and the +/-FLT_MAX that stand for Infinity (they would
 *	  swamp any correlation).  The upper triangle is scanned in the
 *	  relation's column order, and a column j is dropped when |r(i, j)| >
 *	  threshold for some earlier column i: the well-known recipe
 *	  "upper = corr.where(triu(k=1)); drop any column with upper > t".
 *	  On more than NIDS_CORR_SAMPLE training rows, r is computed on that
 *	  many rows evenly spaced through the training split.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "miscadmin.h"
#include "train.h"

static inline bool
usable(float v)
{
	return !isnan(v) && v < FLT_MAX && v > -FLT_MAX;
}

/* mark constant columns (over the training rows) for dropping */
static void
find_constant_columns(const float *x, int d, int64 ntrain, bool *constant,
					  bool *drop, char **why)
{
	for (int j = 0; j < d; j++)
	{
		bool		seen = false;
		float		first = 0;

		constant[j] = true;
		for (int64 r = 0; r < ntrain && constant[j]; r++)
		{
			float		v = x[r * d + j];

			if (isnan(v))
				continue;
			if (!seen)
			{
				first = v;
				seen = true;
			}
			else if (v != first)
				constant[j] = false;
		}
		if (constant[j])
		{
			drop[j] = true;
			why[j] = seen ? psprintf("constant (%g in every training row)", first)
				: pstrdup("constant (missing in every training row)");
		}
	}
}

/*
 * The correlation sample: s rows evenly spaced through the training split,
 * column-major, centred on the column means, unusable values as NaN.
 */
static double *
correlation_sample(const float *x, int d, int64 ntrain, int64 s)
{
	double	   *col = palloc_extended(sizeof(double) * Max(s, 1) * d, MCXT_ALLOC_HUGE);

	for (int64 i = 0; i < s; i++)
	{
		int64		r = (s == ntrain) ? i : (int64) ((double) i * ntrain / s);

		for (int j = 0; j < d; j++)
		{
			float		v = x[r * d + j];

			col[j * s + i] = usable(v) ? (double) v : NAN;
		}
	}
	for (int j = 0; j < d; j++)
	{
		double		sum = 0;
		int64		cnt = 0;

		for (int64 i = 0; i < s; i++)
			if (!isnan(col[j * s + i]))
			{
				sum += col[j * s + i];
				cnt++;
			}
		if (cnt > 0)
			for (int64 i = 0; i < s; i++)
				col[j * s + i] -= sum / cnt;
	}
	return col;
}

/* Pearson's r over pairwise-complete rows; NaN when undefined */
static double
pearson(const double *a, const double *b, int64 s)
{
	double		cnt = 0,
				sx = 0,
				sy = 0,
				sxx = 0,
				syy = 0,
				sxy = 0,
				vx,
				vy;

	for (int64 k = 0; k < s; k++)
	{
		double		u = a[k],
					v = b[k];

		if (isnan(u) || isnan(v))
			continue;
		cnt++;
		sx += u;
		sy += v;
		sxx += u * u;
		syy += v * v;
		sxy += u * v;
	}
	if (cnt < 2)
		return NAN;
	vx = cnt * sxx - sx * sx;
	vy = cnt * syy - sy * sy;
	if (!(vx > 0) || !(vy > 0))
		return NAN;
	return (cnt * sxy - sx * sy) / sqrt(vx * vy);
}

void
preprocess_select(const float *x, int64 n, int d, int64 ntrain,
				  char **colnames, double threshold, Preprocessing *out)
{
	bool	   *constant = palloc0(sizeof(bool) * d);
	bool	   *drop = palloc0(sizeof(bool) * d);
	char	  **why = palloc0(sizeof(char *) * d);
	int64		s = Min(ntrain, (int64) NIDS_CORR_SAMPLE);
	double	   *col;

	find_constant_columns(x, d, ntrain, constant, drop, why);
	col = correlation_sample(x, d, ntrain, s);

	/* the upper triangle, in column order */
	for (int i = 0; i < d; i++)
	{
		if (constant[i])
			continue;
		CHECK_FOR_INTERRUPTS();
		for (int j = i + 1; j < d; j++)
		{
			double		r;

			if (constant[j] || drop[j])
				continue;
			r = pearson(col + (int64) i * s, col + (int64) j * s, s);
			if (fabs(r) > threshold)
			{
				drop[j] = true;
				why[j] = psprintf("correlated with %s (r = %.4f)", colnames[i], r);
			}
		}
	}
	pfree(col);

	out->kept = palloc(sizeof(int) * d);
	out->dropped = palloc(sizeof(int) * d);
	out->reasons = palloc(sizeof(char *) * d);
	out->nkept = out->ndropped = 0;
	for (int j = 0; j < d; j++)
	{
		if (drop[j])
		{
			out->dropped[out->ndropped] = j;
			out->reasons[out->ndropped++] = why[j];
		}
		else
			out->kept[out->nkept++] = j;
	}
}

/*
 * Keep only the selected columns, in place: row r of the result starts at
 * x + r * nkept.  Destinations never overtake sources, so one pass works.
 */
void
preprocess_compact(float *x, int64 n, int d, const Preprocessing *pre)
{
	int			k = pre->nkept;

	if (k == d)
		return;
	for (int64 r = 0; r < n; r++)
	{
		const float *src = x + r * d;
		float	   *dst = x + r * k;

		for (int j = 0; j < k; j++)
			dst[j] = src[pre->kept[j]];
	}
}
