/*-------------------------------------------------------------------------
 *
 * drift_stats.c
 *	  The statistics of ks_drift: a window's counts at the reference's
 *	  points, the two-sample Kolmogorov-Smirnov statistic, its p-value and
 *	  the drift level.
 *
 * The window query runs through a read-only cursor with the caller's
 * privileges, its rows handed from the executor to a receiver one by one;
 * it must be one SELECT (no data-modifying CTE, no FOR UPDATE).  Its
 * columns are matched to the model's features by canonical name as
 * nids_features matches them (feature_map_build), or it returns one
 * float8[] column in feature order.  No window column is sorted: each
 * value is placed by binary search among the reference's points (at most
 * 4096), counting values equal to a point and values strictly between two
 * points separately.  The statistic is then evaluated
 * at every point and just before it, which is exact when the reference
 * holds every distinct training value and within 1/4096 otherwise.
 *
 * p-values follow scipy's ks_2samp(method='asymp'): the distribution of
 * the one-sample statistic at en = round(n * m / (n + m)), n the training
 * count; computed exactly (Marsaglia, Tsang and Wang 2003) while en * D is
 * small, else by the Kolmogorov limit with Stephens' correction (tested
 * against scipy fixtures).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "drift.h"

/*
 * Kolmogorov's limiting distribution, P(K > lambda).
 */
static double
kolmogorov_sf(double lambda)
{
	double		sum = 0.0;

	if (lambda < 0.2)
		return 1.0;
	for (int k = 1; k <= 100; k++)
	{
		double		term = exp(-2.0 * k * k * lambda * lambda);

		sum += (k % 2 ? 1.0 : -1.0) * term;
		if (term < 1e-16)
			break;
	}
	return Max(0.0, Min(1.0, 2.0 * sum));
}

/* out = a b, m x m */
static void
matrix_multiply(const double *a, const double *b, double *out, int m)
{
	for (int i = 0; i < m; i++)
		for (int j = 0; j < m; j++)
		{
			double		s = 0;

			for (int k = 0; k < m; k++)
				s += a[i * m + k] * b[k * m + j];
			out[i * m + j] = s;
		}
}

static void
matrix_power(const double *a, int m, int n, double *out, int *exponent,
			 double *tmp, double *base)
{
	int			ebase = 0;

	/* out = identity, base = a */
	for (int i = 0; i < m * m; i++)
	{
		out[i] = (i / m == i % m) ? 1.0 : 0.0;
		base[i] = a[i];
	}
	*exponent = 0;
	while (n > 0)
	{
		if (n & 1)
		{
			matrix_multiply(out, base, tmp, m);
			memcpy(out, tmp, sizeof(double) * m * m);
			*exponent += ebase;
			if (out[(m / 2) * m + m / 2] > 1e140)
			{
				for (int i = 0; i < m * m; i++)
					out[i] *= 1e-140;
				*exponent += 140;
			}
		}
		n >>= 1;
		if (n == 0)
			break;
		matrix_multiply(base, base, tmp, m);
		memcpy(base, tmp, sizeof(double) * m * m);
		ebase *= 2;
		if (base[(m / 2) * m + m / 2] > 1e140)
		{
			for (int i = 0; i < m * m; i++)
				base[i] *= 1e-140;
			ebase += 140;
		}
	}
}

/*
 * P(D_n < d) for the one-sample two-sided statistic, exactly, by the
 * method of Marsaglia, Tsang and Wang (2003): the (k,k) entry of the n-th
 * power of a (2k-1)-square matrix, k = floor(n d) + 1, with the exponent
 * kept apart to avoid overflow.  Used when k is small, where the
 * asymptotic formula is least accurate.
 */
static double
kolmogorov_cdf_exact(int n, double d)
{
	int			k = (int) (n * d) + 1;
	int			m = 2 * k - 1;
	double		h = k - n * d;
	double	   *H = palloc0(sizeof(double) * m * m);
	double	   *Q = palloc(sizeof(double) * m * m);
	double	   *tmp = palloc(sizeof(double) * m * m);
	double	   *base = palloc(sizeof(double) * m * m);
	int			eQ;
	double		s;

	for (int i = 0; i < m; i++)
		for (int j = 0; j < m; j++)
			H[i * m + j] = (i - j + 1 < 0) ? 0.0 : 1.0;
	for (int i = 0; i < m; i++)
	{
		H[i * m] -= pow(h, i + 1);
		H[(m - 1) * m + i] -= pow(h, m - i);
	}
	H[(m - 1) * m] += (2 * h - 1 > 0) ? pow(2 * h - 1, m) : 0.0;
	for (int i = 0; i < m; i++)
		for (int j = 0; j < m; j++)
			if (i - j + 1 > 0)
				for (int g = 1; g <= i - j + 1; g++)
					H[i * m + j] /= g;
	matrix_power(H, m, n, Q, &eQ, tmp, base);
	s = Q[(k - 1) * m + k - 1];
	for (int i = 1; i <= n; i++)
	{
		s = s * i / n;
		if (s < 1e-140)
		{
			s *= 1e140;
			eQ -= 140;
		}
	}
	s *= pow(10.0, eQ);
	pfree(H);
	pfree(Q);
	pfree(tmp);
	pfree(base);
	return Max(0.0, Min(1.0, s));
}

/*
 * The p-value of a two-sample statistic d of sizes n and m, as scipy's
 * ks_2samp(method='asymp') defines it: the one-sample distribution at
 * en = round(n m / (n + m)).  Exact (above) while n d is small; otherwise
 * the Kolmogorov limit with Stephens' correction, which is then within a
 * few thousandths.
 */
double
ks_pvalue(double d, double n, double m)
{
	double		en,
				s;

	if (n <= 0 || m <= 0)
		return NAN;
	en = rint(n * m / (n + m));
	if (en < 1)
		en = 1;
	if (d >= 1.0)
		return 0.0;
	if (en * d < 40 && en <= 1e7)
		return 1.0 - kolmogorov_cdf_exact((int) en, d);
	s = sqrt(en);
	return kolmogorov_sf((s + 0.12 + 0.11 / s) * d);
}

double
ks_statistic(const DriftFeatureRef *ref, const FeatureCounts *fc)
{
	double		m = (double) fc->m;
	double		cum = 0;
	double		d = 0;
	double		fref = 0;

	for (int i = 0; i <= ref->npoints; i++)
	{
		/* values strictly below point i (and above point i-1) */
		cum += fc->between[i];
		d = Max(d, fabs(fref - cum / m));
		if (i == ref->npoints)
			break;
		/* just before point i the reference is still fref */
		cum += fc->at[i];
		fref = ref->cdf[i];
		d = Max(d, fabs(fref - cum / m));
	}
	return d;
}


/*
 * Zeroed counts for every feature of the reference, in the current context.
 */
FeatureCounts *
drift_counts_create(const DriftReference *ref)
{
	FeatureCounts *counts = palloc0(sizeof(FeatureCounts) * Max(ref->num_features, 1));

	for (int f = 0; f < ref->num_features; f++)
	{
		counts[f].at = palloc0(sizeof(int64) * Max(ref->features[f].npoints, 1));
		counts[f].between = palloc0(sizeof(int64) * (ref->features[f].npoints + 1));
	}
	return counts;
}

/*
 * Significant when p is below 0.05 / the number of features (Bonferroni);
 * 'high' when it is and the statistic is above 0.5 too (a large shift that
 * the sample size cannot explain: 1.0 said 'high' on five rows), else
 * 'significant', else 'none'.
 */
const char *
drift_level(double d, double p, int num_features)
{
	if (!(p < 0.05 / num_features))
		return "none";
	return d > 0.5 ? "high" : "significant";
}
