/*-------------------------------------------------------------------------
 *
 * train_adapt.h
 *	  The adaptation's rooms (nids_adapt): train_adapt.c runs the steps,
 *	  train_adapt_local.c owns the local flows (reading, judging, features,
 *	  the decision threshold, measuring), train_adapt_report.c the options,
 *	  the version's record and the result.  Training code only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_TRAIN_ADAPT_H
#define NIDS_TRAIN_ADAPT_H

#include "postgres.h"

#include "train.h"

#define ADAPT_MIN_FLOWS		40
#define ADAPT_MISSING_SHARE	0.9		/* a feature missing in more of the local
										 * flows is one they lack */
#define ADAPT_CONTAMINATED_P	0.99	/* a quiet flow the model calls an attack
										 * this surely is set aside (default of
										 * options.attack_probability) */
#define ADAPT_CONTAMINATION_WARN	0.05
#define ADAPT_SCREEN_BENIGN	0.5		/* ... unless a classifier that learnt the
									 * other quiet flows as benign finds it
									 * likelier benign than this */
#define ADAPT_GATE_SHARE	0.25	/* the novelty gate is set for this share
									 * of options.target_flagged; tau fills
									 * the rest */
#define ADAPT_GUARD_FLOWS	10		/* the deploy guard: classes with as many
									 * held-out flows ... */
#define ADAPT_GUARD_LOSS	0.20	/* ... may lose at most this much recall */

typedef struct AdaptOptions
{
	double		drop_ks;
	int64		seed;
	bool		deploy;
	bool		keep_source_benign;
	int			reference;		/* DRIFT_REFERENCE_ALL or _BENIGN */
	double		target_flagged;
	double		attack_probability;	/* quiet flows at least this surely
									 * attacks are set aside; 1: none */
	char	   *training;		/* NULL: the version's own source */
	double		local_share;	/* the local training flows' share of the
								 * benign class's weight; 0: as counted */
} AdaptOptions;

/* rows of d features, row-major, and a text of each (labels) when asked */
typedef struct Rows
{
	int			d;
	int64		n;
	int64		cap;
	float	   *x;
	char	  **labels;			/* NULL: not kept */
} Rows;

typedef struct AdaptResult
{
	int32		version;
	char	   *adapted_from;
	bool		retrained;
	bool		keep_source_benign;
	char	   *training_source;
	int64		n_train;
	int64		n_calibrate;
	int64		n_measure;
	int64		n_empty;
	char	  **dropped;
	double	   *dropped_ks;
	int			ndropped;
	double		drop_ks;
	double		flagged_before;
	double		flagged_after;
	double		recall_before;
	double		recall_after;
	int64		n_attack;
	bool		deployed;
	/* 1.3 */
	const char *reference;		/* what KS compared with: 'all' or 'benign' */
	char	  **missing;		/* features the local flows lack */
	int			nmissing;
	char	  **categorical;	/* kept whatever their KS */
	int			ncategorical;
	double		target_flagged;
	double		attack_probability;
	double		local_share;	/* the local training flows' share of the
								 * benign class's weight (NaN: none trained) */
	double		benign_threshold;	/* tau */
	bool		tau_storable;	/* the catalogue is 1.3's */
	int64		calibration_flows;
	int64		calibration_flagged;
	int64		contaminated;	/* quiet flows set aside */
	int64		quiet_flows;	/* ... of these */
	char	  **top_sources;
	int64	   *top_counts;
	int			ntop;
	int			nclasses;		/* the held-out fifth, per attack class */
	char	  **classes;
	int64	   *class_flows;
	double	   *class_before;
	double	   *class_after;
} AdaptResult;

/* ---- options, the version's record, the result (train_adapt_report.c) ---- */
extern void adapt_options(Jsonb *options, AdaptOptions *o);
extern char *adapt_metric_text(Jsonb *metrics, const char *k1, const char *k2);
extern char *adapt_xgboost_options(Jsonb *metrics);
extern Oid adapt_relation_by_name(const char *name);
extern char *adapt_qualified_name(Oid relid);
extern Jsonb *adapt_report(const AdaptResult *r, const char *label_col,
						const char *xgboost, int64 seed, bool internal);
extern Jsonb *adapt_jsonb_merge(Jsonb *a, Jsonb *b);
extern Jsonb *adapt_jsonb_without(Jsonb *a, const char *key);
extern void adapt_store_report(const char *name, int32 version, Jsonb *adaptation);
extern Jsonb *adapt_carried_metrics(Jsonb *metrics);

/* ---- the local flows (train_adapt_local.c) ---- */
extern float *adapt_rows_part(const Rows *src, char **src_names, const int64 *order,
						int64 from, int64 to, char **dst_names, int dd);
extern void adapt_read_local(const char *query, NidsModel *model, Rows *local,
						int64 *n_empty);
extern double adapt_flagged_share(NidsModel *model, const float *x, int64 n, bool *flags);
extern void adapt_set_aside(Rows *local, const double *pb, double p, const char *model,
						AdaptResult *r);
extern double *adapt_benign_probability(NidsModel *model, const Rows *local);
extern void adapt_read_fifth(NidsModel *model, const char *qualified,
						const char *label_col, const char *benign, Rows *out);
extern double adapt_calibrate_tau(const NidsForest *forest, int nclasses, int benign,
						const AttachFit *fit, const float *x, int d, const int64 *rows, int64 m,
						double target, int64 *flagged);
extern int64 adapt_count_flagged(const NidsForest *forest, int nclasses, int benign,
						const AttachFit *fit, double tau, const float *x, int d,
						const int64 *rows, int64 m);
extern int64 *adapt_local_missing(NidsModel *model, const Rows *local, AdaptResult *r);
extern int adapt_features(NidsModel *model, const Rows *local, const AdaptOptions *o,
						AdaptResult *r, char **keep);
extern void adapt_per_class_recall(const Rows *before, const bool *fb, const Rows *after,
						const bool *fa, AdaptResult *r);

#endif							/* NIDS_TRAIN_ADAPT_H */
