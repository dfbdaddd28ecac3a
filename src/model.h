/*-------------------------------------------------------------------------
 *
 * model.h
 *	  The model_* family: XGBoost documents (model_doc.c), their conversion
 *	  into native forests (model_convert.c), the evaluator (model_eval.c),
 *	  the isolation forest (model_iforest.c), the byte formats
 *	  (model_format.c), the catalogue tables (model_catalog.c) and the
 *	  per-backend cache (model_cache.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_MODEL_H
#define NIDS_MODEL_H

#include "postgres.h"

#include "nids.h"
#include "datatype/timestamp.h"
#include "storage/itemptr.h"
#include "utils/array.h"
#include "utils/jsonb.h"

/* ---- model documents: XGBoost JSON / UBJSON (model_doc.c) ---- */
typedef enum DocType
{
	DOC_NULL,
	DOC_BOOL,
	DOC_NUMBER,
	DOC_STRING,
	DOC_ARRAY,
	DOC_OBJECT,
	DOC_NUMARRAY				/* homogeneous array of numbers, stored flat */
} DocType;

typedef struct DocValue DocValue;

struct DocValue
{
	DocType		type;
	bool		is_integer;		/* number(s) written as integers: all of them */
	bool		any_integer;	/* DOC_NUMARRAY: one or more written as integers */
	bool		is_float32;		/* number(s) stored as float32 in UBJSON */
	int			len;			/* string bytes, array/object members */
	union
	{
		bool		boolean;
		double		number;
		char	   *string;		/* not NUL-terminated; see len */
		DocValue   *items;		/* DOC_ARRAY */
		double	   *numbers;	/* DOC_NUMARRAY */
		struct
		{
			char	  **keys;	/* NUL-terminated */
			DocValue   *values;
		}			object;
	}			u;
};

typedef enum DocFormat
{
	DOC_FORMAT_JSON,
	DOC_FORMAT_UBJSON
} DocFormat;

extern bool doc_format(const char *data, size_t len, DocFormat *format);

/* parse; on malformed input returns NULL and sets *error (palloc'd) */
extern DocValue *doc_parse(const char *data, size_t len, DocFormat *format,
						   char **error);
extern DocValue *doc_get(const DocValue *object, const char *key);
extern char *doc_to_json(const DocValue *value, size_t *len);

/* ---- native forest (model_eval.c, model_convert.c) ---- */
typedef enum NidsObjective
{
	NIDS_OBJ_SOFTPROB,
	NIDS_OBJ_SOFTMAX,
	NIDS_OBJ_LOGISTIC,
	NIDS_OBJ_ISOLATION			/* an isolation forest: leaves hold path lengths */
} NidsObjective;

/*
 * One internal node or leaf.  Children of a node are adjacent: right is
 * left + 1.  A leaf points at itself and has threshold +Inf with default
 * left, so a traversal step on a leaf never moves; its value is in
 * leaf_value[].  Indices are relative to the tree's first node.
 */
typedef struct NidsNode
{
	float		threshold;
	uint32		feature_dl;		/* feature index | NIDS_DEFAULT_LEFT */
	int32		left;
} NidsNode;

#define NIDS_DEFAULT_LEFT	0x80000000U
#define NIDS_FEATURE_MASK	0x7FFFFFFFU

/*
 * The compact form the evaluator walks when every tree has at most 65536
 * nodes and the model at most 32767 features (nearly always): 8 bytes a
 * node, the leaf value in the node itself, and no test for missing values.
 * The input is laid out twice: slot f holds x[f] with a missing value as
 * +Inf (so it goes right), slot num_features + f holds it as -Inf (so it
 * goes left); a node reads the copy that sends a missing value its default
 * way.  A node holds the distance to its left child, so a walk keeps one
 * pointer per tree and a step is node += skip + !(input < value).  Slot
 * 2 * num_features is -Inf and a leaf's skip is 0: a leaf reads that slot
 * and stays where it is.  Real infinities never reach the trees (flow_map.c
 * maps them to +/-FLT_MAX).
 */
typedef struct NidsNodeC
{
	float		value;			/* threshold, or the leaf value */
	uint16		skip;			/* left child = this node + skip, right =
								 * + skip + 1; 0 on a leaf */
	uint16		input;			/* slot of the doubled input */
} NidsNodeC;

typedef struct NidsForest
{
	NidsObjective objective;
	int32		num_features;
	int32		num_groups;		/* margins per row: classes, or 1 (binary) */
	int32		num_trees;
	int32		num_nodes;
	int32		sample_size;	/* isolation forest: rows per tree */
	float	   *base_margin;	/* [num_groups] */
	int32	   *tree_group;		/* [num_trees], XGBoost's tree order */
	int32	   *tree_offset;	/* [num_trees] first node of each tree */
	int32	   *tree_depth;		/* [num_trees] */
	int32	   *eval_order;		/* [num_trees] trees sorted by depth */
	int32	   *eval_offset;	/* [num_trees] tree_offset[eval_order[i]] */
	bool		round_robin;	/* tree i belongs to group i % num_groups */
	NidsNode   *nodes;			/* [num_nodes] */
	float	   *leaf_value;		/* [num_nodes] */
	float	   *cover;			/* [num_nodes] XGBoost's sum_hessian, or NULL
								 * (stored by nids 1.0; isolation forests) */
	float	   *node_mean;		/* [num_nodes] for TreeSHAP, made lazily */
	struct ShapTables *shap;	/* TreeSHAP's per-leaf tables, made lazily
								 * (model_shap.c) */
	float	   *gain;			/* [num_nodes] loss_changes: only just after
								 * conversion, for forest_importance */
	NidsNodeC  *cnodes;			/* [num_nodes] compact copy, or NULL */
	struct LabelBounds *bounds; /* for forest_predict_label, or NULL
								 * (model_eval.c) */
} NidsForest;

/*
 * The deepest tree nids accepts, in levels below the root.  XGBoost grows
 * trees to max_depth (default 6; 0, unlimited, only with lossguide, where
 * max_leaves bounds them); nothing real comes near this, while the exact
 * TreeSHAP's path buffers grow with its square.
 */
#define NIDS_MAX_TREE_DEPTH		256

extern NidsForest *forest_from_xgboost(const DocValue *doc, char **error);
extern void forest_importance(const NidsForest *f, double *gain, double *cover,
							  int64 *splits);
extern void forest_predict_margin(const NidsForest *forest, const float *x,
								  float *margin, float *scratch);
extern void forest_transform(const NidsForest *forest, const float *margin,
							 double *proba);
extern int	forest_predict_class(const NidsForest *f, int num_classes, const float *x,
								 float *margin, double *proba, float *scratch);
extern int	forest_pick_class(const NidsForest *f, int num_classes,
							  const float *margin, const double *proba);
extern int	forest_predict_label(const NidsForest *f, int num_classes, const float *x,
								 float *margin, double *proba, float *scratch);
extern int	forest_num_outputs(const NidsForest *forest);
extern bool forest_contributions(NidsForest *f, MemoryContext cxt, const float *x,
								 int g, double *phi);
extern int	forest_scratch_size(const NidsForest *forest);
extern const char *objective_name(NidsObjective objective);

/* ---- isolation forest (model_iforest.c) ---- */
#define IFOREST_SCALE_LINEAR	0	/* uniform between min and max */
#define IFOREST_SCALE_LOG		1	/* uniform on sign(v) log(1 + |v|) */
#define IFOREST_SCALE_MIXED		2	/* one or the other, by a coin per split */
#define IFOREST_NUM_SCALES		3

typedef struct IForestParams
{
	int			num_trees;
	int			sample_size;
	int			max_depth;		/* 0: ceil(log2(sample_size)) */
	int			scale;			/* IFOREST_SCALE_*: where split points are drawn */
	uint64		seed;
} IForestParams;

extern NidsForest *iforest_train(const float *x, int num_features,
								 const int64 *rows, int64 num_rows,
								 const IForestParams *params);
extern const char *const iforest_scale_names[IFOREST_NUM_SCALES];
extern double iforest_score(const NidsForest *forest, const float *x,
							float *scratch);

/* ---- the novelty gate (model_novelty.c) ---- */
typedef enum NoveltyMethod
{
	NOVELTY_IFOREST,
	NOVELTY_UNCERTAINTY,
	NOVELTY_PROTOTYPES,
	NOVELTY_COMBINED,
	NOVELTY_JOINT,
	NOVELTY_NUM_METHODS
} NoveltyMethod;

#define NOVELTY_LANES	8
#define NOVELTY_CLIP	5.0f		/* |z_j| at most: see model_novelty.c */
#define NOVELTY_PARTS	2			/* joint: 0 uncertainty, 1 distance */

/*
 * joint: one part's benign calibration distribution, for the tail
 * probability P(part >= x) of a benign flow: knots (value, rank), the
 * rank-th largest calibration value; values non-increasing, ranks
 * increasing from 1 to the number of calibration flows (model_novelty.c).
 */
typedef struct NoveltyTail
{
	int32		num_knots;
	double		beta;			/* scale of the decay above the largest value */
	double	   *value;
	double	   *count;
} NoveltyTail;

typedef struct NoveltyGate
{
	NoveltyMethod method;
	int32		num_features;
	int32		num_prototypes;
	double		benign_fpr;		/* the share of benign flows it was set for */
	double		threshold;		/* novel: the method's score above it */
	double		scale_uncertainty;	/* combined: max(u / su, d / sp) */
	double		scale_prototypes;
	float	   *center;			/* [num_features] median of g(x) */
	float	   *inv_scale;		/* [num_features] 1 / IQR of g(x) */
	float	   *prototypes;		/* [num_prototypes][num_features] */
	double		calibration_flows;	/* joint: flows the tails count */
	NoveltyTail tail[NOVELTY_PARTS];	/* joint */
	int32		padded_features;	/* novelty_pad: rows of padded */
	float	   *padded;			/* [num_prototypes][padded_features] */
} NoveltyGate;

extern const char *const novelty_method_names[NOVELTY_NUM_METHODS];
extern bool novelty_method_uses_prototypes(NoveltyMethod method);
extern bytea *novelty_serialize(const NoveltyGate *g);
extern NoveltyGate *novelty_deserialize(const char *data, size_t len,
										int num_features, char **error);
extern void novelty_pad(NoveltyGate *g);
extern void novelty_transform(const NoveltyGate *g, const float *x, float *z);
extern double novelty_prototype_distance(const NoveltyGate *g, const float *z,
										 int *nearest);
extern double novelty_method_score(const NoveltyGate *g, double anomaly,
								   double uncertainty, double distance);
extern double novelty_joint_score(const NoveltyGate *g, double uncertainty,
								  double distance, bool calibrating);
extern double novelty_value(const NoveltyGate *g, double anomaly,
							double uncertainty, double distance, bool *novel);
extern void novelty_tail_build(NoveltyTail *tail, double *sorted_desc, int64 n);

/* the gate's inputs for one classified flow (novelty_inputs) */
typedef struct NoveltyInputs
{
	double		anomaly;		/* the isolation forest's score, or NaN */
	double		uncertainty;	/* 1 - P(benign) */
	double		distance;		/* to the nearest benign prototype, or 0 */
} NoveltyInputs;

/* the classifier's uncertainty: 1 - P(benign), 1 without a benign class */
static inline double
classifier_uncertainty(const double *proba, int benign_class)
{
	return benign_class >= 0 ? 1.0 - proba[benign_class] : 1.0;
}

extern void novelty_inputs(const NoveltyGate *g, const NidsForest *iforest,
						   const float *x, double uncertainty, bool every_part,
						   float *z, float *scratch, NoveltyInputs *in);

/* ---- evaluator internals shared by the converter and the formats ---- */
extern void forest_finish(NidsForest *forest);

/* ---- byte formats (model_format.c) ---- */
extern bytea *forest_serialize(const NidsForest *forest);
extern NidsForest *forest_deserialize(const char *data, size_t len, char **error);
extern NidsForest *iforest_deserialize(const char *data, size_t len,
									   int num_features, char **error);

/* ---- a model version in the backend cache (model_cache.c) ---- */
typedef void *XgbBooster;		/* an XGBoost BoosterHandle (xgb.c) */
struct DriftReference;

typedef struct NidsModel
{
	char	   *name;
	int32		version;
	int32		num_features;
	int32		num_classes;
	char	  **feature_names;
	char	  **class_labels;
	Datum	   *feature_text;	/* the names as text, made lazily */
	NidsForest *forest;
	NidsForest *iforest;		/* NULL when the model has none */
	double		anomaly_threshold;
	NoveltyGate *novelty;		/* NULL: the isolation forest's (nids 1.0) */
	XgbBooster	xgb;			/* created lazily for the xgboost predictor */
	struct DriftReference *drift_reference; /* parsed lazily */
	struct DriftReference *benign_reference;	/* parsed lazily */
	bool		no_benign_reference;	/* a version stored by 1.0 */
	bool		no_reference;	/* a version without a training distribution */
	int			ready;			/* MODEL_READY_* loaded (model_prepare) */
	int			benign_class;	/* index of the benign label, -1 if none */
	double		benign_threshold;	/* tau: benign when P(benign) >= tau; 0: none */
	ItemPointerData tid;		/* the catalogue row it was built from */
	MemoryContext context;
	int			pins;			/* holders that may use it (model_pin) */
	bool		orphaned;		/* out of the cache: freed at the last unpin */
} NidsModel;

/* which top-level statement of which transaction */
typedef struct StatementStamp
{
	LocalTransactionId lxid;
	TimestampTz start;
} StatementStamp;

/*
 * What a scoring function keeps in fn_extra to find its model per call.
 * It pins the model it holds until its memory context goes (the end of
 * the query), so the model stays valid whatever the cache does meanwhile.
 */
typedef struct FnModelCache
{
	uint64		generation;		/* the cache generation it was found in */
	StatementStamp stmt;		/* ... and the statement */
	int			predictor;		/* ... and nids.predictor */
	NidsModel  *model;			/* pinned; NULL before the first call */
	bool		has_callback;	/* the unpin callback is registered */
	int			namelen;
	char		name[NIDS_MAX_SPEC];
} FnModelCache;

/*
 * Load before you compute: what a caller will use of a model is made ready
 * by the cache (model_prepare) before its first row is scored, so that the
 * evaluators below never reach back up to the cache or the catalogue.
 */
#define MODEL_READY_PREDICTOR	0x01	/* the booster inside XGBoost, when
										 * nids.predictor is xgboost */
#define MODEL_READY_REFERENCES	0x02	/* the drift references it has, parsed */
#define MODEL_READY_NAMES		0x04	/* the feature names as text */

extern void model_spec_parse(const char *spec, char *name, int32 *version);
extern NidsModel *model_lookup(const char *name);
extern NidsModel *model_prepare(NidsModel *model, int ready);
extern NidsModel *model_lookup_ready(const char *name, int ready);
struct FlowQuery;
extern void model_window_query(struct FlowQuery *q, const char *sql, NidsModel *model);
extern void model_no_such_version(const char *name, int32 version) pg_attribute_noreturn();
extern NidsModel *model_lookup_cached(FnModelCache *fc, MemoryContext mcxt, text *name,
									  int ready);
extern void model_pin(NidsModel *model, MemoryContext owner);
#define DRIFT_REFERENCE_ALL		0
#define DRIFT_REFERENCE_BENIGN	1

/*
 * What model_prepare made ready, read where it is used: these never load
 * (the evaluators below the cache call nothing above them).
 *
 * model_reference: the training distribution stored with the model, of
 * every training row (DRIFT_REFERENCE_ALL) or of the benign ones
 * (DRIFT_REFERENCE_BENIGN).  A version stored by nids 1.0 has only the
 * first (of the benign flows, when it came from nids_attach_benign): asked
 * for the benign one, it gives that, and *fallback says so.  NULL, not an
 * error, when the version has none and missing_ok.
 */
static inline struct DriftReference *
model_reference(NidsModel *model, int kind, bool *fallback, bool missing_ok)
{
	if (!(model->ready & MODEL_READY_REFERENCES))
		elog(ERROR, "nids: the references of model \"%s\" version %d were not made ready before use",
			 model->name, model->version);
	if (fallback)
		*fallback = false;
	if (kind == DRIFT_REFERENCE_BENIGN && model->benign_reference != NULL)
		return model->benign_reference;
	if (kind == DRIFT_REFERENCE_BENIGN && fallback)
		*fallback = true;
	if (model->drift_reference == NULL && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" version %d has no training distribution",
						model->name, model->version),
				 errhint("Train it with nids_train, or attach one with nids_attach_benign(model, benign_flows).")));
	return model->drift_reference;
}

/* the model's booster inside XGBoost, for nids.predictor = xgboost */
static inline XgbBooster
model_xgboost(NidsModel *model)
{
	if (model->xgb == NULL)
		elog(ERROR, "nids: the XGBoost booster of model \"%s\" version %d was not made ready before use",
			 model->name, model->version);
	return model->xgb;
}
extern bytea *model_booster_bytes(NidsModel *model);

/* ---- a whole version, as bytes (model_bundle.c) ---- */
typedef struct ModelBundle
{
	char	   *name;
	bytea	   *booster;
	bytea	   *native;
	char	  **features;
	int			num_features;
	char	  **classes;
	int			num_classes;
	char	   *metrics;		/* JSON text */
	bytea	   *iforest;
	double		anomaly_threshold;	/* NaN: none */
	bytea	   *reference;
	bytea	   *benign_reference;
	char	   *benign_label;
	bytea	   *novelty;
	double		benign_threshold;	/* 0: none */
} ModelBundle;

extern bytea *bundle_build(const ModelBundle *b);
extern bool bundle_parse(const char *data, size_t len, ModelBundle *b, char **error);
extern const char *names_first_duplicate(char **names, int n);

/* ---- the catalogue tables (model_catalog.c) ---- */

/* nids.model_versions, by attribute number */
#define Anum_model_versions_name				1
#define Anum_model_versions_version				2
#define Anum_model_versions_deployed			3
#define Anum_model_versions_created_at			4
#define Anum_model_versions_feature_names		5
#define Anum_model_versions_class_labels		6
#define Anum_model_versions_metrics				7
#define Anum_model_versions_booster				8
#define Anum_model_versions_native				9
#define Anum_model_versions_iforest				10
#define Anum_model_versions_anomaly_threshold	11
#define Anum_model_versions_reference			12
#define Anum_model_versions_benign_label		13
#define Anum_model_versions_novelty				14
#define Anum_model_versions_benign_reference	15
#define Anum_model_versions_model_id			16	/* 1.1 */
#define Anum_model_versions_benign_threshold	17	/* 1.3 */
#define Natts_model_versions					17

/* a version's row: what registration writes and the cache reads */
typedef struct ModelRecord
{
	const char *name;
	int32		version;		/* read: the version; register: assigned */
	bool		deployed;		/* register: deploy it */
	ItemPointerData tid;		/* read: the row's address */
	bytea	   *booster;		/* read: only when asked for */
	bytea	   *native;
	ArrayType  *feature_names;
	ArrayType  *class_labels;
	Jsonb	   *metrics;		/* register: NULL is {} */
	bytea	   *iforest;		/* NULL: none */
	double		anomaly_threshold;	/* NaN: none */
	bytea	   *reference;		/* NULL: none; read: only when asked for */
	const char *benign_label;	/* NULL: BENIGN */
	bytea	   *novelty;		/* NULL: none (the isolation forest's) */
	bytea	   *benign_reference;	/* NULL: none; read: only when asked for */
	bool		has_model_id;	/* read with the model: the stored id */
	int64		model_id;
	double		benign_threshold;	/* 1.3: tau on P(benign); 0: none */
} ModelRecord;

/* which of the large columns catalog_read fetches */
#define CATALOG_READ_MODEL		0x01	/* lists, native, iforest, threshold,
										 * novelty gate */
#define CATALOG_READ_BOOSTER	0x02
#define CATALOG_READ_REFERENCE	0x04
#define CATALOG_READ_BENIGN_REFERENCE	0x08
#define CATALOG_READ_METRICS	0x10

extern bool catalog_read(const char *name, int32 version, int what,
						 ModelRecord *rec);
extern int32 catalog_register(ModelRecord *rec);
extern int64 catalog_model_id(const ModelRecord *rec);
extern int64 catalog_node_id(int64 seq);
extern bool catalog_find_model_id(int64 id, char *spec, size_t specsize);
extern ArrayType *catalog_text_array(char **names, int n);
extern char **catalog_strings(ArrayType *arr, int *n);
extern void catalog_deploy(const char *name, int32 version);
extern void catalog_merge_metrics(const char *name, int32 version, Jsonb *more);
extern void catalog_drop(const char *name, int32 version, bool all_versions);
extern Oid	catalog_models_relid(void);
extern Oid	catalog_models_relid_if_known(void);
extern bool catalog_has_benign_threshold(void);
extern void catalog_forget(void);

struct DriftResult;
struct HealthRow;
extern bool catalog_has_health_reports(void);
extern int64 catalog_log_drift(const char *model, int32 version,
							   const struct DriftResult *result,
							   const struct HealthRow *health);

/* ---- input checks of the entry points ---- */
static inline void
CheckModelName(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > NIDS_MAX_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must have 1 to %d characters", NIDS_MAX_NAME)));
}

/* the name of a new model: also no '@' (it separates a version) */
static inline void
CheckNewModelName(const char *name)
{
	CheckModelName(name);
	if (strchr(name, '@') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name \"%s\" must not contain \"@\"", name),
				 errdetail("'name@N' names version N of model name.")));
}

/* a text[] of names: one dimension, no NULL */
static inline void
CheckNameArray(ArrayType *array, const char *what)
{
	if (ARR_NDIM(array) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a non-empty one-dimensional array", what)));
	if (array_contains_nulls(array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL", what)));
}

#endif							/* NIDS_MODEL_H */
