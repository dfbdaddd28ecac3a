/*-------------------------------------------------------------------------
 *
 * nids.h
 *	  The nids.* settings and the enums every family shares.
 *
 * src/ is flat, in families named by prefix, one header each (as pgvector
 * names its files hnswbuild.c, hnswinsert.c, ...):
 *	flow_*	  (flow.h)	 canonical column names, the feature map, the one
 *						 value mapping, the one reader of rows;
 *	model_*   (model.h)  XGBoost documents, conversion, the native
 *						 evaluator, the isolation forest, the novelty gate,
 *						 byte formats, the catalogue tables and the cache;
 *	train_*   (train.h)  nids_train and nids_attach_benign: data,
 *						 preprocessing, options, gate calibration, report;
 *	drift_*   (drift.h)  KS statistics, the stored reference, ks_drift, its
 *						 reports and schedule, health;
 *	alert_*   (alert.h)  incidents: the alert trigger, nids_alerts_from,
 *						 Community ID;
 *	scan_*	  (scan.h)	 per-source scan detection: the detector, the
 *						 trigger and nids_scans;
 *	explain*  (explain.h) contributions, the gate's terms, the verdict
 *						 in an analyst's terms;
 *	scoring.c, scoring_at.c, trigger.c, admin.c (scoring.h): the other SQL
 *						 entry points;
 * and the services every family may use, each with its own header:
 *	random.h (the seeded generator), report.h (jsonb reports), xgb.h (the
 *	XGBoost boundary: no other file calls XGBoost).
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_H
#define NIDS_H

#include "postgres.h"

#include "common/int.h"
#include "miscadmin.h"

/* ---- settings (nids.c) ---- */
typedef enum NidsPredictor
{
	NIDS_PREDICTOR_NATIVE,
	NIDS_PREDICTOR_XGBOOST
} NidsPredictor;

extern int	nids_threads;
extern int	nids_predictor;
extern bool nids_compact_evaluator;
extern bool nids_explain_tables;
extern bool nids_label_bounds;
extern int	nids_max_model_bytes;
extern double nids_min_feature_coverage;
extern int	nids_alert_gap;

/*
 * Flow time arithmetic that cannot overflow anywhere in the timestamp range:
 * t + d clamped to -infinity / infinity, and whether later - earlier
 * exceeds gap (a difference too large for int64 exceeds any gap)
 */
static inline int64
nids_time_add(int64 t, int64 d)
{
	int64		r;

	if (pg_add_s64_overflow(t, d, &r))
		return d > 0 ? PG_INT64_MAX : PG_INT64_MIN;
	return r;
}

static inline bool
nids_time_gap_exceeds(int64 later, int64 earlier, int64 gap)
{
	int64		d;

	if (pg_sub_s64_overflow(later, earlier, &d))
		return later > earlier;
	return d > gap;
}

/* nids' own SQL never follows the caller's search_path (nids.c) */
extern int	nids_pin_search_path(void);
extern void nids_unpin_search_path(int nest);

/* options.benign_label's default: CIC-IDS2017's label of normal traffic */
#define NIDS_DEFAULT_BENIGN_LABEL	"BENIGN"

/* long loops over rows check for a cancel every NIDS_CHECK_EVERY rows */
#define NIDS_CHECK_EVERY	4096

static inline void
nids_check_interrupts(int64 i)
{
	if ((i & (NIDS_CHECK_EVERY - 1)) == 0)
		CHECK_FOR_INTERRUPTS();
}

/*
 * The longest feature name, class label or benign label a version may
 * have, in bytes: what every way in (training, import, bundles) accepts,
 * so that every version that exports imports again.
 */
#define NIDS_MAX_NAME_BYTES	65536

/* model names: the catalogue's CHECK constraint */
#define NIDS_MAX_NAME	63
#define NIDS_MAX_SPEC	(NAMEDATALEN + 16)	/* 'name@N' */

/* ---- the ensemble's verdict (nids_ensemble, the trigger, training) ---- */
typedef enum NidsVerdict
{
	NIDS_VERDICT_ATTACK,		/* the classifier's label is not benign */
	NIDS_VERDICT_ANOMALY,		/* a benign label, but a novel flow */
	NIDS_VERDICT_BENIGN,
	NIDS_NUM_VERDICTS
} NidsVerdict;

extern const char *const nids_verdict_names[NIDS_NUM_VERDICTS];	/* nids.c */

/* novel (nids 1.0's gate): an anomaly score above the model's threshold */
static inline bool
nids_is_novel(double anomaly, double threshold)
{
	return anomaly > threshold;
}

/* the rule: attack when the label is not benign, anomaly when it is but novel */
static inline NidsVerdict
nids_verdict(int label, int benign_class, bool novel)
{
	if (label != benign_class)
		return NIDS_VERDICT_ATTACK;
	return novel ? NIDS_VERDICT_ANOMALY : NIDS_VERDICT_BENIGN;
}

#endif							/* NIDS_H */
