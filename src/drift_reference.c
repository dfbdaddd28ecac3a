/*-------------------------------------------------------------------------
 *
 * drift_reference.c
 *	  The training distribution stored with a model, for ks_drift.
 *
 * For each feature the reference keeps at most NIDS_REF_POINTS (4096) points
 * (v_i, F(v_i)) of the training split's empirical distribution function,
 * the count of non-missing values and of missing ones.  Points are chosen
 * along the sorted values so that the training mass strictly between two
 * consecutive points is below 1/NIDS_REF_POINTS; a value that holds more
 * mass than that (a port, a flag count) is always a point of its own, with
 * its exact F.  A two-sample KS statistic evaluated on these points is then
 * within 1/NIDS_REF_POINTS of the statistic against the full training data
 * (drift_stats.c): 0.00025.  The size is bounded whatever the training size:
 * 8 bytes per point, at most 32 KiB per feature (2.5 MiB for 80 features).
 * 4096 rather than fewer points because a p-value on a small window is
 * steep in the statistic: with 300 flows, an error of 1/1024 in D moves
 * p by 0.01.
 *
 * Features with more than NIDS_REF_SAMPLE training values are summarised
 * from a seeded uniform sample of that many (Dvoretzky-Kiefer-Wolfowitz:
 * the sample's distribution function is within 0.004 of the full one with
 * 99% confidence), which keeps training time linear.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "drift.h"
#include "random.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"

#define REF_MAGIC	0x4E494452	/* "NIDR" */
#define REF_FORMAT	1

static int
float_cmp(const void *a, const void *b)
{
	float		x = *(const float *) a;
	float		y = *(const float *) b;

	return (x > y) - (x < y);
}

/*
 * Build the reference of the d columns of the row-major matrix x over rows.
 * Layout: header {magic, format, d}, then per feature
 * {int64 n, int64 missing, int32 npoints, float values[], float cdf[]}.
 */
bytea *
drift_reference_build(const float *x, int d, const int64 *rows, int64 nrows,
					  uint64 seed)
{
	StringInfoData buf;
	int64		take = Min(nrows, (int64) NIDS_REF_SAMPLE);
	float	   *vals = palloc_extended(sizeof(float) * Max(take, 1), MCXT_ALLOC_HUGE);
	int64	   *pick = palloc_extended(sizeof(int64) * Max(take, 1), MCXT_ALLOC_HUGE);
	uint32		header[3] = {REF_MAGIC, REF_FORMAT, (uint32) d};
	NidsRandom	rng;
	bytea	   *out;

	/* the same sample of rows for every feature: uniform without replacement */
	if (take == nrows)
		memcpy(pick, rows, sizeof(int64) * take);
	else
	{
		/* selection sampling (Knuth's algorithm S), in row order */
		int64		chosen = 0;

		nids_random_init(&rng, seed ^ UINT64CONST(0x5DEECE66D));
		for (int64 i = 0; i < nrows && chosen < take; i++)
		{
			double		u = nids_random_unit(&rng);

			if ((double) (nrows - i) * u < (double) (take - chosen))
				pick[chosen++] = rows[i];
		}
		take = chosen;
	}

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (char *) header, sizeof(header));
	for (int j = 0; j < d; j++)
	{
		int64		n = 0,
					missing = 0,
					full_n = 0,
					full_missing = 0;
		int32		npoints = 0;
		float	   *pv = palloc(sizeof(float) * NIDS_REF_POINTS);
		float	   *pc = palloc(sizeof(float) * NIDS_REF_POINTS);
		double		step = 1.0 / NIDS_REF_POINTS;
		double		last_kept = 0.0;

		CHECK_FOR_INTERRUPTS();
		for (int64 i = 0; i < nrows; i++)
		{
			if (isnan(x[rows[i] * d + j]))
				full_missing++;
			else
				full_n++;
		}
		for (int64 i = 0; i < take; i++)
		{
			float		v = x[pick[i] * d + j];

			if (isnan(v))
				missing++;
			else
				vals[n++] = v;
		}
		if (n > 0)
			qsort(vals, n, sizeof(float), float_cmp);
		for (int64 i = 0; i < n;)
		{
			int64		k = i;
			double		cdf;

			while (k < n && vals[k] == vals[i])
				k++;
			cdf = (double) k / n;
			/* keep a point when the mass since the last one reaches 1/K */
			if (cdf - last_kept >= step - 1e-12 || k == n)
			{
				if (npoints == NIDS_REF_POINTS)
				{
					/* cannot happen: each point takes >= 1/K of the mass */
					npoints--;
				}
				pv[npoints] = vals[i];
				pc[npoints] = (float) cdf;
				npoints++;
				last_kept = cdf;
			}
			i = k;
		}
		appendBinaryStringInfo(&buf, (char *) &full_n, sizeof(int64));
		appendBinaryStringInfo(&buf, (char *) &full_missing, sizeof(int64));
		appendBinaryStringInfo(&buf, (char *) &npoints, sizeof(int32));
		appendBinaryStringInfo(&buf, (char *) pv, sizeof(float) * npoints);
		appendBinaryStringInfo(&buf, (char *) pc, sizeof(float) * npoints);
		pfree(pv);
		pfree(pc);
		(void) missing;
	}
	pfree(vals);
	pfree(pick);
	out = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(out, VARHDRSZ + buf.len);
	memcpy(VARDATA(out), buf.data, buf.len);
	pfree(buf.data);
	return out;
}

/*
 * Parse and validate stored reference bytes (they may have been edited).
 */
DriftReference *
drift_reference_parse(const char *data, size_t len, int d, char **error)
{
	uint32		header[3];
	const char *p = data;
	const char *end = data + len;
	DriftReference *ref;

	*error = NULL;
	if (len < sizeof(header))
	{
		*error = pstrdup("drift reference is truncated");
		return NULL;
	}
	memcpy(header, p, sizeof(header));
	p += sizeof(header);
	if (header[0] != REF_MAGIC || header[1] != REF_FORMAT || (int) header[2] != d)
	{
		*error = psprintf("drift reference has an unknown format or %u features, not %d",
						  header[2], d);
		return NULL;
	}
	ref = palloc0(sizeof(DriftReference));
	ref->num_features = d;
	ref->features = palloc0(sizeof(DriftFeatureRef) * d);
	for (int j = 0; j < d; j++)
	{
		DriftFeatureRef *f = &ref->features[j];

		if (end - p < (ptrdiff_t) (2 * sizeof(int64) + sizeof(int32)))
		{
			*error = pstrdup("drift reference is truncated");
			return NULL;
		}
		memcpy(&f->n, p, sizeof(int64));
		p += sizeof(int64);
		memcpy(&f->missing, p, sizeof(int64));
		p += sizeof(int64);
		memcpy(&f->npoints, p, sizeof(int32));
		p += sizeof(int32);
		if (f->n < 0 || f->missing < 0 || f->npoints < 0 ||
			f->npoints > NIDS_REF_POINTS || (f->npoints == 0) != (f->n == 0) ||
			end - p < (ptrdiff_t) (2 * sizeof(float) * f->npoints))
		{
			*error = psprintf("drift reference of feature %d is inconsistent", j + 1);
			return NULL;
		}
		f->values = palloc(sizeof(float) * Max(f->npoints, 1));
		f->cdf = palloc(sizeof(float) * Max(f->npoints, 1));
		memcpy(f->values, p, sizeof(float) * f->npoints);
		p += sizeof(float) * f->npoints;
		memcpy(f->cdf, p, sizeof(float) * f->npoints);
		p += sizeof(float) * f->npoints;
		for (int i = 0; i < f->npoints; i++)
		{
			if (isnan(f->values[i]) || !(f->cdf[i] > 0.0f && f->cdf[i] <= 1.0f) ||
				(i > 0 && (!(f->values[i] > f->values[i - 1]) || f->cdf[i] < f->cdf[i - 1])))
			{
				*error = psprintf("drift reference of feature %d is not sorted", j + 1);
				return NULL;
			}
		}
	}
	if (p != end)
	{
		*error = pstrdup("drift reference has trailing bytes");
		return NULL;
	}
	return ref;
}
