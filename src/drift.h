/*-------------------------------------------------------------------------
 *
 * drift.h
 *	  The stored training distribution and the KS statistics over it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_DRIFT_H
#define NIDS_DRIFT_H

#include "postgres.h"

#define NIDS_REF_POINTS		4096
#define NIDS_REF_SAMPLE		262144

typedef struct DriftFeatureRef
{
	int64		n;				/* non-missing training values */
	int64		missing;		/* missing training values */
	int32		npoints;
	float	   *values;			/* increasing */
	float	   *cdf;			/* F(values[i]) of the training split */
} DriftFeatureRef;

typedef struct DriftReference
{
	int			num_features;
	DriftFeatureRef *features;
} DriftReference;

extern bytea *drift_reference_build(const float *x, int d, const int64 *rows,
									int64 nrows, uint64 seed);
extern DriftReference *drift_reference_parse(const char *data, size_t len, int d,
											 char **error);

/* KS (drift.c) */
extern double ks_pvalue(double d, double n, double m);

#endif							/* NIDS_DRIFT_H */
