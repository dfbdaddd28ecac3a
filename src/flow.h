/*-------------------------------------------------------------------------
 *
 * flow.h
 *	  The flow_* family: from a row of flows to a model's float32 input.
 *
 *	flow_names.c	canonical CICFlowMeter column names (also compiled into
 *					the nids-load client: that part is plain C);
 *	flow_map.c		the map from a row type's columns to a model's
 *					features, and the one mapping of SQL values to inputs;
 *	flow_reader.c	the one reader of query rows into feature vectors, used
 *					by nids_train, nids_attach_benign and ks_drift.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_FLOW_H
#define NIDS_FLOW_H

#include <stddef.h>

/* ---- canonical names (flow_names.c): no PostgreSQL headers ---- */
typedef enum CanonicalKind
{
	CANON_FEATURE,				/* numeric flow feature: float8 */
	CANON_IDENTIFIER,			/* flow id, addresses, ports, time: text */
	CANON_LABEL,				/* the class label: text */
	CANON_UNKNOWN				/* not a known CICFlowMeter column */
} CanonicalKind;

/*
 * Normalise a column name into out (size outsize): trimmed, lower-cased,
 * runs of characters other than a-z and 0-9 become one '_', no leading or
 * trailing '_'.  Returns the length written.
 */
extern size_t canonical_normalise(const char *name, size_t len, char *out, size_t outsize);

/*
 * The canonical name of an already normalised name: the normalised name of
 * the CIC-IDS2017 original release for every naming variant (CIC-IDS2017
 * original and improved, CSE-CIC-IDS2018); a name no variant knows is
 * returned as it is.  *kind tells what the column holds.
 */
extern const char *canonical_name(const char *normalised, CanonicalKind *kind);

/*
 * The canonical spelling of a class label of any release (the CIC-IDS2017
 * original release's: "Botnet" and "Bot" are "Bot", "DoS attacks-Hulk" is
 * "DoS Hulk"), written to out; 0 when the label is not one nids knows.
 */
extern size_t canonical_label(const char *label, size_t len, char *out, size_t outsize);

/* the known name nearest to a normalised name, and its edit distance */
extern const char *canonical_nearest(const char *normalised, int *distance);

#ifndef FRONTEND

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"

/* ---- the feature map and the value mapping (flow_map.c) ---- */
typedef struct FeatureMap
{
	int			num_features;
	TupleDesc	desc;			/* copy, in the map's context */
	int		   *attnum;			/* [num_features] 0-based attribute, or -1 */
	Oid		   *atttype;		/* [num_features] its base type */
	int			matched;		/* features the row type has */
	Datum	   *values;			/* deform buffers [desc->natts] */
	bool	   *nulls;
} FeatureMap;

extern void feature_map_build(FeatureMap *map, char *const *features,
							  int num_features, const char *model,
							  TupleDesc desc, MemoryContext cxt);
extern void feature_map_check_coverage(const FeatureMap *map, char *const *features,
									   const char *model);
extern void feature_map_fill(FeatureMap *map, HeapTuple tuple, float *x,
							 double *raw, bool *missing);
extern void feature_map_values(const FeatureMap *map, const Datum *values,
							   const bool *nulls, float *x);
extern const char *canonical_attname(const char *attname, char *buf, size_t bufsize);
extern bool nids_is_output_column(const char *attname);
extern bool nids_numeric_type(Oid base_type);
extern double nids_datum_to_double(Datum d, Oid base_type);
extern void vector_from_array(ArrayType *array, int expected, const char *model,
							  float *out);
extern void vector_from_array_raw(ArrayType *array, int expected, const char *model,
								  float *out, double *raw);

/* ---- the one reader (flow_reader.c) ---- */

/* called once per row read; x holds the row's features, NaN where missing */
typedef void (*FlowRowFn) (void *arg, const float *x, Datum label, bool label_isnull);

typedef struct FlowQuery
{
	const char *sql;
	bool		window;			/* a user's query: must be one read-only
								 * SELECT; may return one float8[] column
								 * in feature order */
	char	   *const *features;	/* canonical names to read */
	int			num_features;
	const char *model;			/* for messages */
	int			label_attno;	/* result column of the label (1-based), or 0 */
	const char *label_column;	/* or the column of that canonical name, if
								 * the rows have one, as text */
	bool		no_coverage_check;	/* read rows that lack too many features */
	double	   *coverage;		/* if set: the share of features the rows have */
} FlowQuery;

extern int64 flow_read(const FlowQuery *query, FlowRowFn fn, void *arg);
extern void flow_check_window_query(const char *sql);

/* running a window query read-only, its settings undone (flow_reader.c) */
typedef void (*FlowWindowFn) (Portal portal, void *arg);
extern SPIPlanPtr flow_prepare_window(const char *sql);
extern void flow_run_window(SPIPlanPtr plan, FlowWindowFn fn, void *arg);

/* ---- input checks ---- */
static inline void
CheckFeatureArray(ArrayType *array, int expected, const char *model)
{
	if (ARR_ELEMTYPE(array) != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be a float8[] array")));
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("features must be a one-dimensional array, got %d dimensions",
						ARR_NDIM(array))));
	if (ARR_NDIM(array) == 0 || ARR_DIMS(array)[0] != expected)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("model \"%s\" expects %d features, got %d",
						model, expected,
						ARR_NDIM(array) == 0 ? 0 : ARR_DIMS(array)[0]),
				 errhint("Vectors are in the order of the model's feature_names in nids.models.")));
}

#endif							/* FRONTEND */

#endif							/* NIDS_FLOW_H */
