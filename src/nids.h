/*-------------------------------------------------------------------------
 *
 * nids.h
 *	  Declarations shared by the files of the nids extension.
 *
 * Each .c file owns one concern; this header lists only what the others
 * need from it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_H
#define NIDS_H

#include "postgres.h"

#include "fmgr.h"
#include "storage/itemptr.h"
#include "utils/array.h"

/* ---- GUCs (nids.c) ---- */
typedef enum NidsPredictor
{
	NIDS_PREDICTOR_NATIVE,
	NIDS_PREDICTOR_XGBOOST
} NidsPredictor;

extern int	nids_threads;
extern int	nids_predictor;
extern bool nids_compact_evaluator;

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
	bool		is_integer;		/* number(s) written as integers */
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

/* parse; on malformed input returns NULL and sets *error (palloc'd) */
extern DocValue *doc_parse(const char *data, size_t len, DocFormat *format,
						   char **error);
extern DocValue *doc_get(const DocValue *object, const char *key);
extern char *doc_to_json(const DocValue *value, size_t *len);

/* ---- native forest (forest.c) ---- */
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
 * and stays where it is.  Real infinities never reach the trees (vector.c
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
	NidsNodeC  *cnodes;			/* [num_nodes] compact copy, or NULL */
} NidsForest;

extern NidsForest *forest_from_xgboost(const DocValue *doc, char **error);
extern bytea *forest_serialize(const NidsForest *forest);
extern NidsForest *forest_deserialize(const char *data, size_t len, char **error);
extern void forest_predict_margin(const NidsForest *forest, const float *x,
								  float *margin, float *scratch);
extern void forest_transform(const NidsForest *forest, const float *margin,
							 double *proba);
extern int	forest_num_outputs(const NidsForest *forest);
extern int	forest_scratch_size(const NidsForest *forest);
extern const char *objective_name(NidsObjective objective);

/* ---- isolation forest (iforest.c) ---- */
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
extern double iforest_threshold(const NidsForest *forest, const float *x,
								int num_features, const int64 *rows, int64 n,
								double fpr, float *scratch);
extern NidsForest *iforest_deserialize(const char *data, size_t len,
									   int num_features, char **error);

/* ---- XGBoost C API wrapper (xgb.c) ---- */
typedef void *XgbBooster;
extern XgbBooster xgb_load(const char *data, size_t len);
extern void xgb_predict_proba(XgbBooster booster, const NidsForest *forest,
							  const float *x, int nrow, double *proba);
extern void xgb_check(int rc, const char *what);
extern const char *xgb_last_error(void);
extern void xgb_init_backend(void);

/* ---- feature vectors (vector.c) ---- */
extern float nids_map_value(double v);
extern void vector_from_array(ArrayType *array, int expected, const char *model,
							  float *out);

/* ---- the ensemble's verdict (nids_ensemble, the trigger, training) ---- */
typedef enum NidsVerdict
{
	NIDS_VERDICT_ATTACK,		/* the classifier's label is not benign */
	NIDS_VERDICT_ANOMALY,		/* a benign label, but a novel flow */
	NIDS_VERDICT_BENIGN,
	NIDS_NUM_VERDICTS
} NidsVerdict;

extern const char *const nids_verdict_names[NIDS_NUM_VERDICTS];

/* novel: an anomaly score above the model's threshold */
static inline bool
nids_is_novel(double anomaly, double threshold)
{
	return anomaly > threshold;
}

static inline NidsVerdict
nids_verdict(int label, int benign_class, double anomaly, double threshold)
{
	if (label != benign_class)
		return NIDS_VERDICT_ATTACK;
	return nids_is_novel(anomaly, threshold) ? NIDS_VERDICT_ANOMALY : NIDS_VERDICT_BENIGN;
}

/* ---- model catalogue and backend cache (model_cache.c) ---- */
typedef struct NidsModel
{
	char	   *name;
	int32		version;
	int32		num_features;
	int32		num_classes;
	char	  **feature_names;
	char	  **class_labels;
	NidsForest *forest;
	NidsForest *iforest;		/* NULL when the model has none */
	double		anomaly_threshold;
	bytea	   *booster_bytes;	/* loaded only for the xgboost predictor */
	XgbBooster	xgb;			/* created lazily for the xgboost predictor */
	void	   *drift_reference;	/* parsed lazily by drift.c */
	int			benign_class;	/* index of the benign label, -1 if none */
	uint64		generation;
	ItemPointerData tid;		/* the catalogue row it was built from */
	MemoryContext context;
} NidsModel;

/* what a scoring function keeps in fn_extra to find its model per call */
typedef struct FnModelCache
{
	uint64		generation;
	NidsModel  *model;
	int			namelen;
	char		name[NAMEDATALEN];
} FnModelCache;

extern NidsModel *model_lookup(const char *name);
extern NidsModel *model_lookup_cached(FnModelCache *fc, text *name);
extern void model_cache_init(void);
extern XgbBooster model_xgboost(NidsModel *model);
extern bytea *model_booster_bytes(NidsModel *model);
extern struct DriftReference *model_drift_reference(NidsModel *model);

/* ---- model registration (catalog.c) ---- */
typedef struct ModelRecord
{
	const char *name;
	bytea	   *booster;
	bytea	   *native;
	ArrayType  *feature_names;
	ArrayType  *class_labels;
	const char *metrics_json;	/* NULL: {} */
	bool		deploy;
	bytea	   *iforest;		/* NULL: none */
	double		anomaly_threshold;	/* NaN: none */
	bytea	   *reference;		/* NULL: none */
	const char *benign_label;	/* NULL: BENIGN */
} ModelRecord;

extern int32 catalog_register(const ModelRecord *rec);
extern bool booster_is_json(const char *data, size_t len);

#endif							/* NIDS_H */
