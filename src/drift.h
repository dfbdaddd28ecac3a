/*-------------------------------------------------------------------------
 *
 * drift.h
 *	  The drift_* family: the training distribution stored with a model
 *	  (drift_reference.c), the KS statistics over it (drift_stats.c), and
 *	  the SQL functions ks_drift, nids_log_drift and nids_schedule_drift
 *	  (drift.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_DRIFT_H
#define NIDS_DRIFT_H

#include "postgres.h"

#include "fmgr.h"

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

/* ---- the reference (drift_reference.c) ---- */
extern bytea *drift_reference_build(const float *x, int d, const int64 *rows,
									int64 nrows, uint64 seed);
extern DriftReference *drift_reference_parse(const char *data, size_t len, int d,
											 char **error);

/* ---- statistics (drift_stats.c) ---- */

/* a window's counts at one feature's reference points */
typedef struct FeatureCounts
{
	int64		m;				/* window values */
	int64	   *at;				/* [npoints] values equal to point i */
	int64	   *between;		/* [npoints + 1] values in (v[i-1], v[i]) */
} FeatureCounts;

/*
 * The number of reference points below v: a binary search without
 * data-dependent branches (the comparison becomes a conditional move),
 * which a window of millions of values repays.
 */
static inline int
drift_points_below(const float *values, int npoints, float v)
{
	const float *base = values;
	int			n = npoints;

	if (n == 0)
		return 0;
	while (n > 1)
	{
		int			half = n >> 1;

		base = (base[half] < v) ? base + half : base;
		n -= half;
	}
	return (int) (base - values) + (*base < v);
}

/* count one window value against a feature's reference points */
static inline void
drift_count_value(const DriftFeatureRef *ref, FeatureCounts *fc, float v)
{
	int			lo = drift_points_below(ref->values, ref->npoints, v);

	if (lo < ref->npoints && ref->values[lo] == v)
		fc->at[lo]++;
	else
		fc->between[lo]++;
	fc->m++;
}

extern FeatureCounts *drift_counts_create(const DriftReference *ref);
extern double ks_statistic(const DriftFeatureRef *ref, const FeatureCounts *fc);
extern double ks_pvalue(double d, double n, double m);
extern const char *drift_level(double d, double p, int num_features);

/* ---- one drift report: a row per model feature (drift.c) ---- */
typedef struct DriftRow
{
	const char *feature;
	bool		tested;			/* false: no values on one side, no statistic */
	double		ks_statistic;
	double		p_value;
	int64		n_reference;
	int64		n_window;
	const char *drift_level;
} DriftRow;

typedef struct DriftResult
{
	int			num_rows;
	DriftRow   *rows;
	const char *reference;		/* 'benign' or 'all': what it was compared with */
} DriftResult;

/* ---- reports from counts (drift.c), and merging them (drift_merge.c) ---- */
struct NidsModel;
extern DriftReference *drift_reference_of(struct NidsModel *model, int kind,
										  const char **name);
extern FeatureCounts *drift_count_window(const char *window_query,
										 struct NidsModel *model,
										 const DriftReference *ref,
										 bool benign_called);
extern DriftResult *drift_result(struct NidsModel *model, const DriftReference *ref,
								 const FeatureCounts *counts, const char *reference);
extern void drift_put_rows(FunctionCallInfo fcinfo, const DriftResult *result);

/* ---- health (drift_health.c) ---- */
typedef enum HealthStatus
{
	HEALTH_OK,
	HEALTH_WARN,
	HEALTH_ALARM,				/* worst last: the overall is the maximum */
	HEALTH_NUM_STATUSES
} HealthStatus;

extern const char *const health_status_names[HEALTH_NUM_STATUSES];

typedef struct HealthRow
{
	const char *check_name;
	double		value;
	double		expected;		/* NaN: none */
	HealthStatus status;
} HealthRow;

#define NIDS_HEALTH_ROWS	5

extern void drift_health(const char *window_query, struct NidsModel *model,
						 HealthRow *rows);
extern int	drift_reference_kind(const char *reference);
extern void health_notify(const char *model, int32 version, int64 report_id,
						  const HealthRow *rows);

#endif							/* NIDS_DRIFT_H */
