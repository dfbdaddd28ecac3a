/*-------------------------------------------------------------------------
 *
 * admin.c
 *	  The catalogue's SQL entry points: nids_import_xgboost,
 *	  nids_export_xgboost, nids_deploy, nids_drop_model, and the whole
 *	  version's bundle (model_bundle.c): nids_export_model and
 *	  nids_import_model.
 *
 * A version holds the XGBoost document as given (JSON or UBJSON) and its
 * native form, converted and validated once, at import.  Every read and
 * write of the tables is model_catalog.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/jsonb.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "model.h"
#include "report.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(nids_import_xgboost);
PG_FUNCTION_INFO_V1(nids_export_xgboost);
PG_FUNCTION_INFO_V1(nids_deploy);
PG_FUNCTION_INFO_V1(nids_drop_model);
PG_FUNCTION_INFO_V1(nids_export_model);
PG_FUNCTION_INFO_V1(nids_import_model);

static void
check_not_null(FunctionCallInfo fcinfo, int arg, const char *what)
{
	if (PG_ARGISNULL(arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
}

/*
 * The names of a text[] (one dimension, no NULL: CheckNameArray) are
 * non-empty, at most NIDS_MAX_NAME_BYTES long and distinct.  Linear in the
 * names but for one sort: thousands of names take milliseconds.
 */
static void
check_unique_names(ArrayType *array, const char *what)
{
	int			n;
	char	  **names = catalog_strings(array, &n);
	const char *dup;

	for (int i = 0; i < n; i++)
	{
		size_t		len = strlen(names[i]);

		if (len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain an empty name", what)));
		if (len > NIDS_MAX_NAME_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s holds a name of %zu bytes; names may have at most %d",
							what, len, NIDS_MAX_NAME_BYTES)));
		nids_check_interrupts(i);
	}
	CHECK_FOR_INTERRUPTS();
	dup = names_first_duplicate(names, n);
	if (dup != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s names \"%s\" twice", what, dup)));
}

/* a document larger than nids.max_model_bytes is refused before parsing */
static inline void
CheckModelSize(bytea *booster)
{
	if (VARSIZE_ANY_EXHDR(booster) > (Size) nids_max_model_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("booster has %zu bytes, more than nids.max_model_bytes (%d)",
						(Size) VARSIZE_ANY_EXHDR(booster), nids_max_model_bytes),
				 errhint("A superuser can raise nids.max_model_bytes; importing takes memory proportional to the document.")));
}

/* what import needs of a converted booster */
typedef struct ConvertedBooster
{
	bytea	   *native;			/* the native form, to store */
	int			num_features;
	int			num_outputs;
	int			num_trees;
	NidsObjective objective;
	double	   *gain;			/* importance per feature */
	double	   *cover;
	int64	   *splits;
} ConvertedBooster;

/*
 * Parse, convert and serialise an XGBoost document once; raise 22P03 when
 * it is not one we can score.  The document tree lives in a temporary
 * context: only the native bytes are copied out.
 */
static void
convert_booster(bytea *booster, ConvertedBooster *out)
{
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext,
											  "nids booster parse",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	DocFormat	format;
	char	   *error = NULL;
	DocValue   *doc;
	NidsForest *forest = NULL;

	doc = doc_parse(VARDATA_ANY(booster), VARSIZE_ANY_EXHDR(booster), &format, &error);
	if (doc != NULL)
		forest = forest_from_xgboost(doc, &error);
	MemoryContextSwitchTo(old);
	if (forest == NULL)
	{
		char	   *msg = pstrdup(error ? error : "unknown error");

		MemoryContextDelete(tmp);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("booster is not an XGBoost model nids can use"),
				 errdetail("XGBoost model document: %s.", msg),
				 errhint("Save the booster with XGBoost's save_model or save_raw as JSON or UBJSON.")));
	}
	out->native = forest_serialize(forest);
	out->gain = palloc(sizeof(double) * forest->num_features);
	out->cover = palloc(sizeof(double) * forest->num_features);
	out->splits = palloc(sizeof(int64) * forest->num_features);
	forest_importance(forest, out->gain, out->cover, out->splits);
	out->num_features = forest->num_features;
	out->num_outputs = forest_num_outputs(forest);
	out->num_trees = forest->num_trees;
	out->objective = forest->objective;
	MemoryContextDelete(tmp);
}

/* the metrics of an imported version */
static Jsonb *
import_report(const ConvertedBooster *conv, bytea *booster, ArrayType *features)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	  **names;
	JsonbParseState *st = NULL;
	DocFormat	format = DOC_FORMAT_JSON;

	(void) doc_format(VARDATA_ANY(booster), VARSIZE_ANY_EXHDR(booster), &format);
	report_begin(&st, NULL);
	report_string(&st, "source", "import");
	report_string(&st, "objective", objective_name(conv->objective));
	report_int(&st, "trees", conv->num_trees);
	report_string(&st, "format", format == DOC_FORMAT_JSON ? "json" : "ubjson");
	deconstruct_array(features, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	names = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		names[i] = TextDatumGetCString(elems[i]);
	report_importance(&st, names, Min(n, conv->num_features), conv->gain, conv->cover,
					  conv->splits);
	return report_finish(&st);
}

Datum
nids_import_xgboost(PG_FUNCTION_ARGS)
{
	char	   *name;
	bytea	   *booster;
	ArrayType  *features;
	ArrayType  *classes;
	ConvertedBooster conv;
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

	CheckNewModelName(name);
	CheckNameArray(features, "feature_names");
	CheckNameArray(classes, "class_labels");
	CheckModelSize(booster);
	check_unique_names(features, "feature_names");
	check_unique_names(classes, "class_labels");
	convert_booster(booster, &conv);
	nfeatures = ARR_DIMS(features)[0];
	nclasses = ARR_DIMS(classes)[0];
	if (conv.num_features != nfeatures)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("booster has %d features, but feature_names has %d",
						conv.num_features, nfeatures)));
	if (conv.num_outputs != nclasses)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("booster predicts %d classes, but class_labels has %d",
						conv.num_outputs, nclasses),
				 errhint("A binary:logistic model has two labels: the negative class, then the positive one.")));

	memset(&rec, 0, sizeof(rec));
	rec.name = name;
	rec.booster = DatumGetByteaPP(PointerGetDatum(booster));
	rec.native = conv.native;
	rec.feature_names = features;
	rec.class_labels = classes;
	rec.metrics = import_report(&conv, booster, features);
	rec.deployed = PG_GETARG_BOOL(4);
	rec.anomaly_threshold = NAN;
	PG_RETURN_INT32(catalog_register(&rec));
}

/* a DOC_ARRAY of n strings, each the same when same is set */
static DocValue
doc_string_array(char **names, int n, const char *same)
{
	DocValue	v = {.type = DOC_ARRAY,.len = n};

	v.u.items = palloc0(sizeof(DocValue) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		const char *s = same ? same : names[i];

		v.u.items[i].type = DOC_STRING;
		v.u.items[i].u.string = pstrdup(s);
		v.u.items[i].len = strlen(s);
	}
	return v;
}

/*
 * Give the document's learner the model's feature names (and float
 * types), as XGBoost writes them for a booster trained on named columns,
 * so that XGBoost's own bindings know the columns.  A learner that names
 * its features already keeps them.  Names with a control character other
 * than newline, return and tab cannot be written so that XGBoost (and so
 * nids) reads them back: then the document names none, and the names go
 * to nids_import_xgboost as its argument, as they always do.
 */
static void
export_feature_names(DocValue *doc, NidsModel *model)
{
	DocValue   *learner = doc_get(doc, "learner");

	if (learner == NULL || learner->type != DOC_OBJECT)
		return;
	for (int f = 0; f < model->num_features; f++)
		for (const unsigned char *c = (const unsigned char *) model->feature_names[f]; *c; c++)
			if (*c < 0x20 && *c != '\n' && *c != '\r' && *c != '\t')
				return;
	for (int i = 0; i < learner->len; i++)
	{
		const char *key = learner->u.object.keys[i];
		DocValue   *value = &learner->u.object.values[i];

		if (value->type != DOC_ARRAY || value->len != 0)
			continue;
		if (strcmp(key, "feature_names") == 0)
			*value = doc_string_array(model->feature_names, model->num_features, NULL);
		else if (strcmp(key, "feature_types") == 0)
			*value = doc_string_array(NULL, model->num_features, "float");
	}
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

	doc = doc_parse(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes), &format, &error);
	if (doc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored booster of model \"%s\" version %d does not parse",
						model->name, model->version),
				 errdetail("%s", error)));
	export_feature_names(doc, model);
	json = doc_to_json(doc, &len);
	out = palloc_extended(VARHDRSZ + len, MCXT_ALLOC_HUGE);
	SET_VARSIZE(out, VARHDRSZ + len);
	memcpy(VARDATA(out), json, len);
	PG_RETURN_BYTEA_P(out);
}

Datum
nids_deploy(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model and version must not be NULL")));
	catalog_deploy(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_INT32(1));
	PG_RETURN_VOID();
}

Datum
nids_drop_model(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model must not be NULL")));
	catalog_drop(text_to_cstring(PG_GETARG_TEXT_PP(0)),
				 PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1), PG_ARGISNULL(1));
	PG_RETURN_VOID();
}

/*
 * nids_export_model: everything a version is, as one bundle.
 */
Datum
nids_export_model(PG_FUNCTION_ARGS)
{
	char	   *spec = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		name[NIDS_MAX_SPEC];
	int32		version;
	ModelRecord rec;
	ModelBundle b;

	model_spec_parse(spec, name, &version);
	if (!catalog_read(name, version, CATALOG_READ_MODEL | CATALOG_READ_BOOSTER |
					  CATALOG_READ_REFERENCE | CATALOG_READ_BENIGN_REFERENCE |
					  CATALOG_READ_METRICS, &rec))
		model_no_such_version(name, version);
	memset(&b, 0, sizeof(b));
	b.name = name;
	b.booster = rec.booster;
	b.native = rec.native;
	b.features = catalog_strings(rec.feature_names, &b.num_features);
	b.classes = catalog_strings(rec.class_labels, &b.num_classes);
	b.metrics = JsonbToCString(NULL, &rec.metrics->root, VARSIZE(rec.metrics));
	b.iforest = rec.iforest;
	b.anomaly_threshold = rec.anomaly_threshold;
	b.reference = rec.reference;
	b.benign_reference = rec.benign_reference;
	b.benign_label = (char *) rec.benign_label;
	b.novelty = rec.novelty;
	b.benign_threshold = rec.benign_threshold;
	PG_RETURN_BYTEA_P(bundle_build(&b));
}

/* a bundle's string must be text of this database's encoding */
static void
check_encoding(const char *s)
{
	(void) pg_verifymbstr(s, strlen(s), false);
}

static void
bad_metrics(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("bundle is not a model version nids can import"),
			 errdetail("The bundle: its metrics %s.", what),
			 errhint("Make bundles with nids_export_model.")));
}

/* the value at path (keys) in m, or NULL */
static JsonbValue *
metrics_get(Jsonb *m, const char *key1, const char *key2)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&m->root, key1, strlen(key1), NULL);

	if (v != NULL && key2 != NULL)
	{
		if (v->type != jbvBinary)
			return NULL;
		v = getKeyJsonValueFromContainer(v->val.binary.data, key2, strlen(key2), NULL);
	}
	return v;
}

/* where present, the value at path is a number (or null) */
static void
metrics_number(Jsonb *m, const char *key1, const char *key2, bool integer)
{
	JsonbValue *v = metrics_get(m, key1, key2);
	const char *path = key2 ? psprintf("%s.%s", key1, key2) : key1;

	if (v == NULL || v->type == jbvNull)
		return;
	if (v->type != jbvNumeric)
		bad_metrics(psprintf("hold \"%s\" that is not a number", path));
	if (integer)
	{
		Datum		n = NumericGetDatum(v->val.numeric);
		Datum		lo = DirectFunctionCall1(int8_numeric, Int64GetDatum(PG_INT64_MIN));
		Datum		hi = DirectFunctionCall1(int8_numeric, Int64GetDatum(PG_INT64_MAX));

		if (!DatumGetBool(DirectFunctionCall2(numeric_eq, DirectFunctionCall2(numeric_trunc, n, Int32GetDatum(0)), n)))
			bad_metrics(psprintf("hold \"%s\" that is not an integer", path));
		if (DatumGetBool(DirectFunctionCall2(numeric_lt, n, lo)) ||
			DatumGetBool(DirectFunctionCall2(numeric_gt, n, hi)))
			bad_metrics(psprintf("hold \"%s\" beyond the bigint range", path));
	}
}

/*
 * A bundle's metrics as jsonb: JSON (no NaN), an object, and every value
 * the catalogue's views read of the right type, so that one bad row
 * cannot break nids.model_summary or nids.feature_importance for everyone.
 */
static Jsonb *
bundle_metrics(const char *text)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen((char *) text, strlen(text),
													   GetDatabaseEncoding(), true);
	Jsonb	   *m;
	JsonbValue *v;

	if (pg_parse_json(lex, &nullSemAction) != JSON_SUCCESS)
		bad_metrics("are not JSON");
	m = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	if (!JB_ROOT_IS_OBJECT(m))
		bad_metrics("are not a JSON object");
	metrics_number(m, "rows", "train", true);
	metrics_number(m, "macro_f1", NULL, false);
	metrics_number(m, "accuracy", NULL, false);
	metrics_number(m, "novelty", "benign_fpr", false);
	metrics_number(m, "iforest", "benign_fpr", false);
	v = metrics_get(m, "novelty", "method");
	if (v != NULL && v->type != jbvString && v->type != jbvNull)
		bad_metrics("hold \"novelty.method\" that is not a string");
	v = metrics_get(m, "importance", NULL);
	if (v != NULL && v->type != jbvNull)
	{
		JsonbIterator *it;
		JsonbValue	key,
					val;
		JsonbIteratorToken tok;

		if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
			bad_metrics("hold \"importance\" that is not an object");
		it = JsonbIteratorInit(v->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
		{
			Jsonb	   *entry;

			if (tok != WJB_KEY)
				continue;
			tok = JsonbIteratorNext(&it, &val, true);
			if (val.type != jbvBinary || !JsonContainerIsObject(val.val.binary.data))
				bad_metrics("hold an \"importance\" entry that is not an object");
			entry = JsonbValueToJsonb(&val);
			metrics_number(entry, "gain", NULL, false);
			metrics_number(entry, "cover", NULL, false);
			metrics_number(entry, "splits", NULL, true);
		}
	}
	return m;
}

/*
 * nids_import_model: a bundle, validated whole, registered as the next
 * version of its model name.
 */
Datum
nids_import_model(PG_FUNCTION_ARGS)
{
	bytea	   *bundle;
	ModelBundle b;
	ModelRecord rec;
	char	   *error;

	check_not_null(fcinfo, 0, "bundle");
	check_not_null(fcinfo, 1, "deploy");
	bundle = PG_GETARG_BYTEA_PP(0);
	CheckModelSize(bundle);
	if (!bundle_parse(VARDATA_ANY(bundle), VARSIZE_ANY_EXHDR(bundle), &b, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("bundle is not a model version nids can import"),
				 errdetail("The bundle: %s.", error),
				 errhint("Make bundles with nids_export_model.")));
	check_encoding(b.name);
	check_encoding(b.metrics);
	for (int i = 0; i < b.num_features; i++)
		check_encoding(b.features[i]);
	for (int i = 0; i < b.num_classes; i++)
		check_encoding(b.classes[i]);
	if (b.benign_label)
		check_encoding(b.benign_label);
	CheckNewModelName(b.name);

	memset(&rec, 0, sizeof(rec));
	rec.name = b.name;
	rec.booster = b.booster;
	rec.native = b.native;
	rec.feature_names = catalog_text_array(b.features, b.num_features);
	rec.class_labels = catalog_text_array(b.classes, b.num_classes);
	rec.metrics = bundle_metrics(b.metrics);
	rec.deployed = PG_GETARG_BOOL(1);
	rec.iforest = b.iforest;
	rec.anomaly_threshold = b.anomaly_threshold;
	rec.reference = b.reference;
	rec.benign_reference = b.benign_reference;
	rec.benign_label = b.benign_label;
	rec.novelty = b.novelty;
	rec.benign_threshold = b.benign_threshold;
	PG_RETURN_INT32(catalog_register(&rec));
}
