/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The model catalogue's SQL entry points: nids_import_xgboost,
 *	  nids_export_xgboost, and the registration of a new model version.
 *
 * The catalogue is the table nids.model_versions (see nids--1.0.sql).  A
 * version holds the XGBoost document as given (JSON or UBJSON) and its
 * native form, converted and validated once, at import.  Versions are
 * numbered and deployed by nids._register_model in SQL, under an advisory
 * lock per model name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "checks.h"
#include "executor/spi.h"
#include "nids.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(nids_import_xgboost);
PG_FUNCTION_INFO_V1(nids_export_xgboost);

bool
booster_is_json(const char *data, size_t len)
{
	size_t		i = 0;

	while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t'))
		i++;
	if (i < len && data[i] == '{')
		i++;
	while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t'))
		i++;
	return i < len && (data[i] == '"' || data[i] == '}');
}

/*
 * Insert a new version through nids._register_model; returns its number.
 */
int32
catalog_register(const ModelRecord *rec)
{
	Oid			types[11] = {TEXTOID, BYTEAOID, BYTEAOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTOID, BOOLOID, BYTEAOID, FLOAT8OID, BYTEAOID, TEXTOID};
	Datum		values[11];
	char		nulls[11];
	bool		isnull;
	int32		version;
	int			rc;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(rec->name);
	values[1] = PointerGetDatum(rec->booster);
	values[2] = PointerGetDatum(rec->native);
	values[3] = PointerGetDatum(rec->feature_names);
	values[4] = PointerGetDatum(rec->class_labels);
	values[5] = CStringGetTextDatum(rec->metrics_json ? rec->metrics_json : "{}");
	values[6] = BoolGetDatum(rec->deploy);
	values[7] = PointerGetDatum(rec->iforest);
	if (rec->iforest == NULL)
		nulls[7] = 'n';
	values[8] = Float8GetDatum(rec->anomaly_threshold);
	if (isnan(rec->anomaly_threshold))
		nulls[8] = 'n';
	values[9] = PointerGetDatum(rec->reference);
	if (rec->reference == NULL)
		nulls[9] = 'n';
	values[10] = rec->benign_label ? CStringGetTextDatum(rec->benign_label) : (Datum) 0;
	if (rec->benign_label == NULL)
		nulls[10] = 'n';

	SPI_connect();
	rc = SPI_execute_with_args("SELECT nids._register_model($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11)",
							   11, types, values, nulls, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "nids._register_model failed: %s", SPI_result_code_string(rc));
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return version;
}

static void
check_not_null(FunctionCallInfo fcinfo, int arg, const char *what)
{
	if (PG_ARGISNULL(arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
}

static void
check_unique_names(ArrayType *array, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *a = TextDatumGetCString(elems[i]);

		if (a[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain an empty name", what)));
		for (int j = i + 1; j < n; j++)
			if (strcmp(a, TextDatumGetCString(elems[j])) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s names \"%s\" twice", what, a)));
	}
}

/*
 * Parse and convert an XGBoost document; raise 22P03 when it is not one we
 * can score.  The document tree is built in a temporary context.
 */
static NidsForest *
convert_booster(bytea *booster)
{
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext,
											  "nids booster parse",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	DocFormat	format;
	char	   *error = NULL;
	DocValue   *doc;
	NidsForest *forest = NULL;
	bytea	   *native = NULL;

	doc = doc_parse(VARDATA_ANY(booster), VARSIZE_ANY_EXHDR(booster), &format, &error);
	if (doc != NULL)
		forest = forest_from_xgboost(doc, &error);
	if (forest != NULL)
		native = forest_serialize(forest);
	MemoryContextSwitchTo(old);
	if (native == NULL)
	{
		char	   *msg = pstrdup(error ? error : "unknown error");

		MemoryContextDelete(tmp);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("booster is not an XGBoost model nids can use"),
				 errdetail("XGBoost model document: %s.", msg),
				 errhint("Save the booster with XGBoost's save_model or save_raw as JSON or UBJSON.")));
	}
	/* copy the result out of the temporary context */
	{
		bytea	   *copy = (bytea *) palloc_extended(VARSIZE(native), MCXT_ALLOC_HUGE);
		NidsForest *result;

		memcpy(copy, native, VARSIZE(native));
		MemoryContextDelete(tmp);
		result = forest_deserialize(VARDATA(copy), VARSIZE(copy) - VARHDRSZ, &error);
		if (result == NULL)
			elog(ERROR, "converted model failed validation: %s", error);
		return result;
	}
}

Datum
nids_import_xgboost(PG_FUNCTION_ARGS)
{
	char	   *name;
	bytea	   *booster;
	ArrayType  *features;
	ArrayType  *classes;
	NidsForest *forest;
	ModelRecord rec;
	int			nfeatures,
				nclasses;

	check_not_null(fcinfo, 0, "model");
	check_not_null(fcinfo, 1, "booster");
	check_not_null(fcinfo, 2, "feature_names");
	check_not_null(fcinfo, 3, "class_labels");
	check_not_null(fcinfo, 4, "deploy");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	booster = PG_GETARG_BYTEA_PP(1);
	features = PG_GETARG_ARRAYTYPE_P(2);
	classes = PG_GETARG_ARRAYTYPE_P(3);

	CheckModelName(name);
	CheckNameArray(features, "feature_names");
	CheckNameArray(classes, "class_labels");
	check_unique_names(features, "feature_names");
	check_unique_names(classes, "class_labels");

	forest = convert_booster(booster);
	nfeatures = ARR_DIMS(features)[0];
	nclasses = ARR_DIMS(classes)[0];
	if (forest->num_features != nfeatures)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("booster has %d features, but feature_names has %d",
						forest->num_features, nfeatures)));
	if (forest_num_outputs(forest) != nclasses)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("booster predicts %d classes, but class_labels has %d",
						forest_num_outputs(forest), nclasses),
				 errhint("A binary:logistic model has two labels: the negative class, then the positive one.")));

	memset(&rec, 0, sizeof(rec));
	rec.name = name;
	rec.booster = DatumGetByteaPP(PointerGetDatum(booster));
	rec.native = forest_serialize(forest);
	rec.feature_names = features;
	rec.class_labels = classes;
	rec.metrics_json = psprintf("{\"source\": \"import\", \"objective\": \"%s\", \"trees\": %d, \"format\": \"%s\"}",
								objective_name(forest->objective), forest->num_trees,
								booster_is_json(VARDATA_ANY(booster), VARSIZE_ANY_EXHDR(booster)) ? "json" : "ubjson");
	rec.deploy = PG_GETARG_BOOL(4);
	rec.anomaly_threshold = NAN;
	PG_RETURN_INT32(catalog_register(&rec));
}

Datum
nids_export_xgboost(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	NidsModel  *model = model_lookup(name);
	bytea	   *bytes = model_booster_bytes(model);
	DocFormat	format;
	char	   *error;
	DocValue   *doc;
	char	   *json;
	size_t		len;
	bytea	   *out;

	if (booster_is_json(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes)))
		PG_RETURN_BYTEA_P(bytes);
	doc = doc_parse(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes), &format, &error);
	if (doc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored booster of model \"%s\" version %d does not parse",
						model->name, model->version),
				 errdetail("%s", error)));
	json = doc_to_json(doc, &len);
	out = palloc_extended(VARHDRSZ + len, MCXT_ALLOC_HUGE);
	SET_VARSIZE(out, VARHDRSZ + len);
	memcpy(VARDATA(out), json, len);
	PG_RETURN_BYTEA_P(out);
}
