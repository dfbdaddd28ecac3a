/*-------------------------------------------------------------------------
 *
 * train.h
 *	  The train_* family: nids_train (train.c) as a short list of steps
 *	  over one TrainState, the training data (train_data.c), the novelty
 *	  gate's calibration (train_novelty.c), preprocessing
 *	  (train_preprocess.c), the options (train_options.c), the metrics
 *	  report (train_report.c) and nids_attach_benign (train_attach.c).
 *	  Only training code includes it: the XGBoost boundary (xgb.h), the
 *	  generator (random.h) and report building (report.h) are services
 *	  with headers of their own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_TRAIN_H
#define NIDS_TRAIN_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "model.h"
#include "nids.h"
#include "portability/instr_time.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"

#define NIDS_MAX_CLASSES	1000
#define NIDS_MAX_PARAMS		48

/* ---- options (train_options.c) ---- */
typedef enum TrainDeploy
{
	DEPLOY_DEFAULT,				/* not given: if_better when the name has a
								 * deployed version, else deploy */
	DEPLOY_NEVER,
	DEPLOY_ALWAYS,
	DEPLOY_IF_BETTER
} TrainDeploy;

typedef struct TrainOptions
{
	char	  **exclude;
	int			nexclude;
	char	  **include;
	int			ninclude;
	double		correlation_threshold;
	double		test_size;
	uint64		seed;
	TrainDeploy deploy;
	char	   *benign_label;
	int			rounds;
	int			nparams;
	char	   *param_keys[NIDS_MAX_PARAMS];
	char	   *param_values[NIDS_MAX_PARAMS];
	IForestParams iforest;
	double		benign_fpr;
	NoveltyMethod novelty_method;
	int			prototypes;
} TrainOptions;

/* chosen by bench/zeroday.sh: see README, "Novelty" */
#define NOVELTY_DEFAULT_METHOD		NOVELTY_JOINT
#define NOVELTY_DEFAULT_PROTOTYPES	192

extern void train_options_parse(Jsonb *options, TrainOptions *opt);
extern const char *train_param(const TrainOptions *opt, const char *key);

/* ---- the novelty gate (train_novelty.c) ---- */
/* what calibrating a gate found (gate_calibrate), for its report */
typedef struct GateCalibration
{
	const char *calibrated_on;
	double		benign_fpr;
	int64		rows;			/* calibration flows */
	int64		alarms;			/* ... the classifier called attacks */
	int64		flagged;		/* ... with a verdict other than benign */
	double		iforest_threshold;	/* the isolation forest's own */
} GateCalibration;

extern void novelty_report(JsonbParseState **st, const NoveltyGate *g,
						   const GateCalibration *c);
/* the gate's inputs of the calibration flows, and which are false alarms */
typedef struct GateSamples
{
	int64		n;
	double	   *anomaly;
	double	   *uncertainty;
	double	   *distance;
	bool	   *alarm;
} GateSamples;

extern void gate_samples_init(GateSamples *s, int64 cap);
extern void gate_samples_add(GateSamples *s, const NoveltyInputs *in, bool alarm);
extern void gate_calibrate(NoveltyGate *g, NoveltyMethod method, const GateSamples *s,
						   double fpr, const char *calibrated_on, GateCalibration *out);
extern NoveltyGate *novelty_train(const float *x, int d, const int64 *rows, int64 n,
								  int k, uint64 seed);
extern double novelty_threshold(const double *score, const bool *alarm, int64 n,
								double fpr);
extern void novelty_calibrate(NoveltyGate *g, NoveltyMethod method,
							  const double *anomaly, const double *uncertainty,
							  const double *distance, const bool *alarm, int64 n,
							  double fpr);

/* ---- a gate fitted to a model's classifier (train_attach.c) ---- */
typedef struct AttachFit
{
	NidsForest *iforest;
	NoveltyGate *gate;
	GateCalibration cal;
	int64		ntrain;			/* rows the forest and prototypes learnt */
	int64		ntest;			/* rows the gate was calibrated on */
	bytea	   *reference;		/* the drift reference of every row */
	int64	   *rows;			/* the seeded order: ntrain learnt, then ntest */
	double		benign_threshold;	/* tau to register with; 0: none */
} AttachFit;

extern void attach_fit(NidsModel *model, const float *x, int64 n, int64 nlearn,
					   const TrainOptions *opt, AttachFit *fit);
extern Jsonb *attach_report(NidsModel *model, const char *qualified, const AttachFit *fit,
							const TrainOptions *opt);
extern int32 attach_register(NidsModel *model, const AttachFit *fit, const TrainOptions *opt,
							 Jsonb *metrics, bool deployed);

/* ---- preprocessing (train_preprocess.c) ---- */
#define NIDS_CORR_SAMPLE	100000

typedef struct Preprocessing
{
	int			nkept;
	int		   *kept;			/* column indices, in column order */
	int			ndropped;
	int		   *dropped;		/* column indices, in column order */
	char	  **reasons;		/* why each was dropped */
} Preprocessing;

extern void preprocess_select(const float *x, int64 n, int d, int64 ntrain,
							  char **colnames, double threshold,
							  Preprocessing *out);
extern void preprocess_compact(float *x, int64 n, int d, const Preprocessing *pre);

/* ---- the training data (train_data.c) ---- */
typedef struct TrainData
{
	int			d;				/* feature columns */
	char	  **colnames;		/* relation column names */
	char	  **features;		/* canonical feature names */
	int			dextra;			/* columns read for another model only */
	char	  **extra_colnames;
	char	  **extra_features;
	float	   *xextra;			/* row-major n x dextra, permuted with x */
	int			nleft_out;		/* numeric columns that are not features */
	char	  **left_out;
	const char **left_out_reasons;
	int64		n;
	int64		cap;
	float	   *x;				/* row-major n x d */
	int32	   *y;				/* class per row */
	float	   *w;				/* weight per row within its class, permuted
								 * with x (NULL: every row 1) */
	int			nclasses;
	char	  **classes;
	int64		skipped;		/* rows with a NULL label */
	HTAB	   *class_ids;		/* label -> class, while reading */
	MemoryContext cxt;			/* where x, y and the classes live */
	instr_time	start;
	double		last_notice;
} TrainData;

extern void train_data_columns(TrainData *td, Oid relid, const char *label,
							   const TrainOptions *opt, char **qualified);
extern void train_data_extra_columns(TrainData *td, Oid relid, char **wanted, int nwanted);
extern void train_data_read(TrainData *td, const char *qualified, const char *label,
							const char *filter);
extern void train_data_append(TrainData *td, const float *x, int d, char **names, int64 n,
							  const char *label);
extern void train_data_order_classes(TrainData *td);
extern double train_data_share_class(TrainData *td, int64 from, int cls, double share);
extern int64 train_data_split(TrainData *td, double test_size, uint64 seed);
extern void train_data_keep_test_rows(TrainData *td, int64 ntrain, int k);
extern double elapsed_since(instr_time start);

/* ---- nids_train's steps (train.c), over one TrainState ---- */
/* timings, in seconds from the start */
enum
{
	T_READ,
	T_PREPROCESS,
	T_IFOREST,
	T_TRAIN,
	T_TOTAL,
	NUM_TIMINGS
};

typedef struct TrainState
{
	/* arguments */
	Oid			relid;
	const char *label;
	const char *model;
	TrainOptions opt;
	const char *filter;			/* NULL, or a condition on its rows as nids_src */
	const float *extra_x;		/* extra_n rows of extra_d features named */
	int			extra_d;		/* extra_names, added with label extra_label */
	char	  **extra_names;	/* (the adaptation's local flows) */
	int64		extra_n;
	const char *extra_label;
	double		extra_share;	/* the extra rows' share of their class's
								 * weight; 0: as many as they are; then the
								 * share they carried */
	double		benign_threshold;	/* tau to register with (nids_adapt); 0: none */

	MemoryContext cxt;
	instr_time	start;
	double		timings[NUM_TIMINGS];
	char	   *qualified;		/* the source, quoted */

	TrainData	td;				/* all rows, then the test rows only */
	int64		ntrain;
	int64		ntest;
	Preprocessing pre;
	int			k;				/* features kept */
	char	  **kept;			/* their canonical names */

	/* the models */
	char	   *booster_json;
	size_t		booster_len;
	NidsForest *forest;
	int			benign;			/* the benign class, or -1 */
	int64		nbenign;		/* benign training rows */
	NidsForest *iforest;
	NoveltyGate *gate;
	float	   *calib_x;		/* benign training rows kept for calibration
								 * when the hold-out has no benign row */
	int64		ncalib;
	GateCalibration calibration;
	double	   *uncertainty;	/* the classifier's, of each test row */
	bytea	   *benign_reference;
	bytea	   *reference;
	float	   *scratch;

	/* the deployed version, for options.deploy "if_better" */
	NidsModel  *current;		/* pinned; NULL when not compared */
	float	   *current_x;		/* the test rows in its feature order */
	double		current_coverage;	/* the share of its features the source has */
	bool		deploy;
	char	   *deploy_reason;

	/* hold-out results */
	int		   *pred;
	int64	   *confusion;
	double		auc;
	int64		verdicts[NIDS_NUM_VERDICTS];
} TrainState;

extern void train_begin(TrainState *ts, Oid relid, const char *label, const char *model,
						Jsonb *options);
extern void train_steps(TrainState *ts);
extern int32 train_register(TrainState *ts, Jsonb *metrics);

/* ---- the report (train_report.c) ---- */
extern Jsonb *train_report(TrainState *ts);
extern Jsonb *train_short_result(TrainState *ts, int32 version);
extern void report_classifier(JsonbParseState **st, const int64 *confusion,
							  char **classes, int nclasses, int64 ntest);
extern double macro_f1(const int64 *confusion, int nclasses);
extern double macro_f1_judged(const int64 *confusion, int nclasses, int64 min_support);

/* a class with fewer hold-out rows is too few to judge (if_better ignores it) */
#define NIDS_MIN_JUDGED_SUPPORT	10
extern double roc_auc(double *pairs, int64 n);

#endif							/* NIDS_TRAIN_H */
