/*-------------------------------------------------------------------------
 *
 * flow_map.c
 *	  The map from a row's columns to a model's features, and the one
 *	  mapping from SQL values to model inputs.
 *
 * Columns are matched to features by canonical name (flow_names.c): a
 * feature the row type lacks, or a NULL, is a missing value.  A map is
 * built once per call site, row type and model version by its user
 * (nids_features, the trigger, the reader) and kept: nothing is looked up
 * per row, and a row is deformed in one pass.
 *
 * Every vector that enters a model, at training or at scoring time, goes
 * through nids_map_value:
 *	- NULL and NaN are missing values (XGBoost's default direction; the
 *	  isolation forest's side, see model_iforest.c);
 *	- +/-Infinity, which CICFlowMeter writes for rates over a zero duration,
 *	  and finite values beyond float32's range become +/-FLT_MAX, the largest
 *	  float32 of that sign: they stay extreme, comparable and finite, which
 *	  XGBoost requires (it refuses Inf in its input);
 *	- everything else is rounded to float32, as XGBoost does.
 * A numeric beyond float8's range is +/-Infinity first (never an error),
 * so it becomes +/-FLT_MAX in training and in scoring alike.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "flow.h"
#include "lib/stringinfo.h"
#include "nids.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

static inline float
nids_map_value(double v)
{
	if (isnan(v))
		return NAN;
	if (v >= FLT_MAX)
		return FLT_MAX;
	if (v <= -FLT_MAX)
		return -FLT_MAX;
	return (float) v;
}

/*
 * Fill out[expected] from a float8[] argument, after checking its shape;
 * raw[expected], when not NULL, receives the values as given (NULL as
 * NaN), for explanations.
 */
void
vector_from_array_raw(ArrayType *array, int expected, const char *model, float *out,
					  double *raw)
{
	const double *values;
	bits8	   *nulls;

	CheckFeatureArray(array, expected, model);
	values = (const double *) ARR_DATA_PTR(array);
	nulls = ARR_NULLBITMAP(array);
	if (nulls == NULL)
	{
		for (int i = 0; i < expected; i++)
			out[i] = nids_map_value(values[i]);
		if (raw)
			memcpy(raw, values, sizeof(double) * expected);
	}
	else
	{
		int			k = 0;

		for (int i = 0; i < expected; i++)
		{
			bool		present = (nulls[i / 8] & (1 << (i % 8))) != 0;
			double		v = present ? values[k++] : NAN;

			out[i] = present ? nids_map_value(v) : NAN;
			if (raw)
				raw[i] = v;
		}
	}
}

void
vector_from_array(ArrayType *array, int expected, const char *model, float *out)
{
	vector_from_array_raw(array, expected, model, out, NULL);
}

/* the canonical name of a column name, in buf */
const char *
canonical_attname(const char *attname, char *buf, size_t bufsize)
{
	CanonicalKind kind;

	canonical_normalise(attname, strlen(attname), buf, bufsize);
	return canonical_name(buf, &kind);
}

/* the columns nids_score_trigger writes: never features unless included */
bool
nids_is_output_column(const char *attname)
{
	static const char *const outputs[] = {
		"predicted_label", "probability", "anomaly_score", "novel", "novelty", "verdict"
	};

	for (int i = 0; i < lengthof(outputs); i++)
		if (strcmp(attname, outputs[i]) == 0)
			return true;
	return false;
}

bool
nids_numeric_type(Oid t)
{
	return t == FLOAT8OID || t == FLOAT4OID || t == INT2OID || t == INT4OID ||
		t == INT8OID || t == NUMERICOID;
}

/*
 * Map features[num_features] (canonical names) onto the columns of desc:
 * the first column whose canonical name is the feature's.  A matched
 * column must be numeric.  Everything lives in cxt.
 */
void
feature_map_build(FeatureMap *map, char *const *features, int num_features,
				  const char *model, TupleDesc desc, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	const char **canon = palloc(sizeof(char *) * Max(desc->natts, 1));

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		char		norm[NAMEDATALEN * 2];

		canon[i] = att->attisdropped ? NULL
			: pstrdup(canonical_attname(NameStr(att->attname), norm, sizeof(norm)));
	}
	map->num_features = num_features;
	map->desc = CreateTupleDescCopy(desc);
	map->attnum = palloc(sizeof(int) * Max(num_features, 1));
	map->atttype = palloc(sizeof(Oid) * Max(num_features, 1));
	map->matched = 0;
	for (int f = 0; f < num_features; f++)
	{
		map->attnum[f] = -1;
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (canon[i] == NULL || strcmp(canon[i], features[f]) != 0)
				continue;
			map->atttype[f] = getBaseType(att->atttypid);
			if (!nids_numeric_type(map->atttype[f]))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" holds feature \"%s\" of model \"%s\" but has type %s",
								NameStr(att->attname), features[f], model,
								format_type_be(att->atttypid)),
						 errhint("Feature columns must be numeric (float8, float4, integer or numeric).")));
			map->attnum[f] = i;
			map->matched++;
			break;
		}
	}
	map->values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	map->nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	MemoryContextSwitchTo(old);
}

/*
 * Rows of map's type lack some of the model's features: a WARNING naming
 * them (the caller calls this once per statement), or, below
 * nids.min_feature_coverage, an ERROR (42703).
 */
void
feature_map_check_coverage(const FeatureMap *map, char *const *features,
						   const char *model)
{
	StringInfoData missing;
	StringInfoData exclude;
	int			nmissing = map->num_features - map->matched;
	double		coverage;

	if (nmissing == 0 || map->num_features == 0)
		return;
	coverage = (double) map->matched / map->num_features;
	/* every missing feature, named: a retraining can exclude exactly these */
	initStringInfo(&missing);
	initStringInfo(&exclude);
	for (int f = 0, shown = 0; f < map->num_features; f++)
		if (map->attnum[f] < 0)
		{
			appendStringInfo(&missing, "%s%s", shown > 0 ? ", " : "", features[f]);
			appendStringInfo(&exclude, "%s", shown > 0 ? ", " : "");
			escape_json(&exclude, features[f]);
			shown++;
		}
	if (coverage < nids_min_feature_coverage)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("the rows have %d of the %d features of model \"%s\" (%.0f%%, below nids.min_feature_coverage %.0f%%)",
						map->matched, map->num_features, model, 100 * coverage,
						100 * nids_min_feature_coverage),
				 errdetail("Missing: %s.", missing.data),
				 errhint("Columns are matched by canonical name; nids-load and nids-flowmeter create them. To train a model on what these rows have: options => '{\"exclude\": [%s]}'.",
						 exclude.data)));
	ereport(WARNING,
			(errcode(ERRCODE_WARNING),
			 errmsg("the rows lack %d of the %d features of model \"%s\"; they are scored as missing values",
					nmissing, map->num_features, model),
			 errdetail("Missing: %s.", missing.data),
			 errhint("To train a model on what these rows have: options => '{\"exclude\": [%s]}'.",
					 exclude.data)));
	pfree(exclude.data);
	pfree(missing.data);
}

/* a numeric column's value as float8; type is its base type */
double
nids_datum_to_double(Datum d, Oid type)
{
	switch (type)
	{
		case FLOAT8OID:
			return DatumGetFloat8(d);
		case FLOAT4OID:
			return DatumGetFloat4(d);
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		case INT8OID:
			return (double) DatumGetInt64(d);
		default:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
	}
}

/*
 * The model input x[num_features] from a row's deformed values.
 */
void
feature_map_values(const FeatureMap *map, const Datum *values, const bool *nulls,
				   float *x)
{
	for (int f = 0; f < map->num_features; f++)
	{
		int			a = map->attnum[f];

		x[f] = (a < 0 || nulls[a]) ? NAN
			: nids_map_value(nids_datum_to_double(values[a], map->atttype[f]));
	}
}

/*
 * Deform tuple once into map->values/nulls, and give the model input x
 * and/or the raw values (raw, missing), each when not NULL.
 */
void
feature_map_fill(FeatureMap *map, HeapTuple tuple, float *x, double *raw,
				 bool *missing)
{
	int			nf = map->num_features;

	/* one pass over the tuple: heap_getattr per column is quadratic on wide rows */
	heap_deform_tuple(tuple, map->desc, map->values, map->nulls);
	if (raw == NULL)
	{
		feature_map_values(map, map->values, map->nulls, x);
		return;
	}
	for (int f = 0; f < nf; f++)
	{
		int			a = map->attnum[f];
		bool		isnull = (a < 0) || map->nulls[a];
		double		v = isnull ? NAN : nids_datum_to_double(map->values[a], map->atttype[f]);

		if (x)
			x[f] = nids_map_value(v);
		raw[f] = v;
		missing[f] = isnull;
	}
}
