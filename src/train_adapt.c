/*-------------------------------------------------------------------------
 *
 * train_adapt.c
 *	  nids_adapt(model, benign_query, options): a new version of a model
 *	  fitted to the local network from flows of a period believed benign.
 *
 * Adaptation is a training step, in C over the training rooms' entry
 * points (train_begin/train_steps/train_register, attach_fit), with one
 * error path and one memory context; it never calls nids' own functions
 * through SQL.  The steps:
 *	- the local flows: the benign query read as ks_drift reads a window
 *	  (one read-only SELECT, the caller's privileges and search_path) as
 *	  the model's feature vectors; flows without any feature value left
 *	  out; a seeded split into a half that trains, a quarter that
 *	  calibrates the novelty gate and a quarter that measures the result;
 *	- retrained (the version's training source is known and there): the
 *	  features whose local distribution is far from the training flows
 *	  (KS above options.drop_ks) are dropped, and the classifier is trained
 *	  again on the source without a seeded fifth, kept to measure attack
 *	  recall, its benign flows dropped or kept (options.source_benign), with
 *	  the local training half as benign flows;
 *	- recalibrated (no source: an imported version): the classifier stays;
 *	- either way the gate and the drift references are fitted to the local
 *	  calibration quarter (attach_fit), and one version is registered:
 *	  version numbers follow each other, and the version's metrics carry
 *	  its hold-out quality and the adaptation's report.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "drift.h"
#include "executor/spi.h"
#include "flow.h"
#include "funcapi.h"
#include "random.h"
#include "report.h"
#include "scoring.h"
#include "train.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/regproc.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

PG_FUNCTION_INFO_V1(nids_window_vectors);
PG_FUNCTION_INFO_V1(nids_adapt);

#define ADAPT_MIN_FLOWS		40

typedef struct AdaptOptions
{
	double		drop_ks;
	int64		seed;
	bool		deploy;
	bool		keep_source_benign;
	char	   *training;		/* NULL: the version's own source */
} AdaptOptions;

/* rows of d features, row-major */
typedef struct Rows
{
	int			d;
	int64		n;
	int64		cap;
	float	   *x;
} Rows;

static void
rows_init(Rows *r, int d)
{
	r->d = d;
	r->n = 0;
	r->cap = 1024;
	r->x = palloc_extended(sizeof(float) * r->cap * Max(d, 1), MCXT_ALLOC_HUGE);
}

static void
rows_add(void *arg, const float *x, Datum label, bool label_isnull)
{
	Rows	   *r = (Rows *) arg;

	if (r->n == r->cap)
	{
		r->cap *= 2;
		r->x = repalloc_huge(r->x, sizeof(float) * r->cap * Max(r->d, 1));
	}
	memcpy(r->x + r->n * r->d, x, sizeof(float) * r->d);
	r->n++;
}

/* ---- options ---- */

static double
option_number(JsonbValue *v, const char *key)
{
	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options.%s must be a number, not %s", key,
						JsonbToCString(NULL, &JsonbValueToJsonb(v)->root, 0))));
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

static void
adapt_options(Jsonb *options, AdaptOptions *o)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	memset(o, 0, sizeof(*o));
	o->drop_ks = 0.3;
	o->seed = 42;
	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;
		char	   *shown;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		shown = v.type == jbvBinary ? JsonbToCString(NULL, v.val.binary.data, 0)
			: JsonbToCString(NULL, &JsonbValueToJsonb(&v)->root, 0);
		if (strcmp(key, "drop_ks") == 0)
		{
			o->drop_ks = option_number(&v, key);
			if (!(o->drop_ks > 0 && o->drop_ks <= 1))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options.drop_ks must be between 0 and 1, not %g", o->drop_ks)));
		}
		else if (strcmp(key, "seed") == 0)
		{
			double		s = v.type == jbvNumeric ? option_number(&v, key) : NAN;

			if (!(s >= 0 && s <= PG_INT32_MAX && s == floor(s)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options.seed must be an integer between 0 and 2147483647, not %s", shown)));
			o->seed = (int64) s;
		}
		else if (strcmp(key, "deploy") == 0)
		{
			if (v.type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options.deploy must be true or false, not %s", shown)));
			o->deploy = v.val.boolean;
		}
		else if (strcmp(key, "training") == 0)
		{
			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options.training must be a table name as a string, not %s", shown)));
			o->training = pnstrdup(v.val.string.val, v.val.string.len);
		}
		else if (strcmp(key, "source_benign") == 0)
		{
			if (v.type != jbvString ||
				(strcmp(shown, "\"drop\"") != 0 && strcmp(shown, "\"keep\"") != 0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options.source_benign must be \"drop\" or \"keep\", not %s", shown)));
			o->keep_source_benign = strcmp(shown, "\"keep\"") == 0;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\"", key),
					 errhint("Accepted: drop_ks, seed, training, deploy, source_benign.")));
	}
}

/* ---- the version's own record ---- */

/* metrics -> k1 (-> k2) as text, or NULL */
static char *
metric_text(Jsonb *metrics, const char *k1, const char *k2)
{
	JsonbValue	v;
	JsonbContainer *c = &metrics->root;

	if (metrics == NULL || !getKeyJsonValueFromContainer(c, k1, strlen(k1), &v))
		return NULL;
	if (k2 != NULL)
	{
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			return NULL;
		c = v.val.binary.data;
		if (!getKeyJsonValueFromContainer(c, k2, strlen(k2), &v))
			return NULL;
	}
	if (v.type == jbvString)
		return pnstrdup(v.val.string.val, v.val.string.len);
	if (v.type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
	if (v.type == jbvBinary)
		return JsonbToCString(NULL, v.val.binary.data, 0);
	return NULL;
}

/*
 * The XGBoost parameters the version was trained with, as nids_train's
 * options.xgboost: an adapted version's own, or the params it reports
 * (numbers as numbers), with its rounds.
 */
static char *
xgboost_options(Jsonb *metrics)
{
	char	   *own = metric_text(metrics, "adaptation", "xgboost");
	JsonbValue	v;
	StringInfoData buf;
	JsonbIterator *it;
	JsonbValue	k,
				pv;
	JsonbIteratorToken tok;
	char	   *rounds = NULL;
	bool		first = true;

	if (own != NULL && own[0] == '{')
		return own;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	if (metrics != NULL && getKeyJsonValueFromContainer(&metrics->root, "params", 6, &v) &&
		v.type == jbvBinary && JsonContainerIsObject(v.val.binary.data))
	{
		it = JsonbIteratorInit(v.val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			char	   *key;
			char	   *value;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(k.val.string.val, k.val.string.len);
			(void) JsonbIteratorNext(&it, &pv, true);
			if (pv.type == jbvString)
				value = pnstrdup(pv.val.string.val, pv.val.string.len);
			else if (pv.type == jbvNumeric)
				value = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(pv.val.numeric)));
			else
				continue;
			if (strcmp(key, "rounds") == 0)
				rounds = value;
			if (strcmp(key, "objective") == 0 || strcmp(key, "num_class") == 0 ||
				strcmp(key, "rounds") == 0)
				continue;
			if (!first)
				appendStringInfoString(&buf, ", ");
			first = false;
			escape_json(&buf, key);
			appendStringInfoString(&buf, ": ");
			if (strspn(value, "-0123456789.eE+") == strlen(value) && value[0] != '\0' &&
				(isdigit((unsigned char) value[0]) || (value[0] == '-' && isdigit((unsigned char) value[1]))))
				appendStringInfoString(&buf, value);
			else
				escape_json(&buf, value);
		}
	}
	if (rounds != NULL)
		appendStringInfo(&buf, "%s\"num_boost_round\": %s", first ? "" : ", ", rounds);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* a relation by name, resolved with the current search_path; InvalidOid if none */
static Oid
relation_by_name(const char *name)
{
	List	   *names;

	if (name == NULL)
		return InvalidOid;
	PG_TRY();
	{
		names = stringToQualifiedNameList(name);
	}
	PG_CATCH();
	{
		FlushErrorState();
		names = NIL;
	}
	PG_END_TRY();
	if (names == NIL)
		return InvalidOid;
	return RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
}

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* ---- the steps ---- */

/* rows[order[from .. to-1]] of src, with their features in dst_names' order */
static float *
rows_part(const Rows *src, char **src_names, const int64 *order, int64 from, int64 to,
		  char **dst_names, int dd)
{
	float	   *x = palloc_extended(sizeof(float) * Max(to - from, 1) * Max(dd, 1), MCXT_ALLOC_HUGE);
	int		   *map = palloc(sizeof(int) * Max(dd, 1));

	for (int j = 0; j < dd; j++)
	{
		map[j] = -1;
		for (int f = 0; f < src->d && map[j] < 0; f++)
			if (strcmp(src_names[f], dst_names[j]) == 0)
				map[j] = f;
	}
	for (int64 i = from; i < to; i++)
		for (int j = 0; j < dd; j++)
			x[(i - from) * dd + j] = map[j] >= 0 ? src->x[order[i] * src->d + map[j]] : NAN;
	pfree(map);
	return x;
}

/* the local flows: the benign query's rows as model's features, none empty */
static void
read_local(const char *query, NidsModel *model, Rows *local, int64 *n_empty)
{
	FlowQuery	fq;
	int64		kept = 0;

	rows_init(local, model->num_features);
	model_window_query(&fq, query, model);
	flow_read(&fq, rows_add, local);
	/* flows without any feature value say nothing of the network */
	for (int64 i = 0; i < local->n; i++)
	{
		bool		any = false;

		for (int j = 0; j < local->d && !any; j++)
			any = !isnan(local->x[i * local->d + j]);
		if (any)
			memmove(local->x + kept++ * local->d, local->x + i * local->d, sizeof(float) * local->d);
	}
	*n_empty = local->n - kept;
	local->n = kept;
	if (*n_empty > 0 && kept < ADAPT_MIN_FLOWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the benign query has %lld rows with a value of model \"%s\"'s features; adapting needs at least %d",
						(long long) kept, model->name, ADAPT_MIN_FLOWS),
				 errdetail("%lld of its %lld rows have no value in any of the model's features.",
						   (long long) *n_empty, (long long) (kept + *n_empty)),
				 errhint("Check that the query's columns carry the model's feature names.")));
	if (kept < ADAPT_MIN_FLOWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the benign query has %lld rows; adapting needs at least %d",
						(long long) kept, ADAPT_MIN_FLOWS),
				 errdetail("Half of them train, a quarter calibrate the novelty gate, a quarter measure the result; none is used twice.")));
}

/* each feature's KS distance between the local flows and the reference */
static double *
local_ks(NidsModel *model, const Rows *local, int kind, const char **refname)
{
	DriftReference *ref = drift_reference_of(model, kind, refname);
	FeatureCounts *fc = drift_counts_create(ref);
	double	   *ks = palloc(sizeof(double) * Max(model->num_features, 1));

	for (int64 i = 0; i < local->n; i++)
		for (int j = 0; j < local->d; j++)
		{
			float		v = local->x[i * local->d + j];

			if (!isnan(v))
				drift_count_value(&ref->features[j], &fc[j], v);
		}
	for (int j = 0; j < model->num_features; j++)
		ks[j] = fc[j].m > 0 && ref->features[j].n > 0 ? ks_statistic(&ref->features[j], &fc[j]) : NAN;
	return ks;
}

/* the share of rows x (model's features) with a verdict other than benign */
static double
flagged_share(NidsModel *model, const float *x, int64 n)
{
	ScoreState	st;
	int64		flagged = 0;

	if (n == 0)
		return NAN;
	memset(&st, 0, sizeof(st));
	score_state_for(&st, model, CurrentMemoryContext);
	for (int64 i = 0; i < n; i++)
	{
		memcpy(st.x, x + i * model->num_features, sizeof(float) * model->num_features);
		flagged += score_verdict_only(&st) != NIDS_VERDICT_BENIGN;
		nids_check_interrupts(i);
	}
	return (double) flagged / n;
}

/* the held-out fifth's attack flows of the source, as model's features */
static void
read_attack_fifth(NidsModel *model, const char *qualified, const char *label_col,
				  const char *benign, Rows *out)
{
	FlowQuery	fq;

	rows_init(out, model->num_features);
	memset(&fq, 0, sizeof(fq));
	fq.sql = psprintf("SELECT * FROM %s nids_src WHERE pg_catalog.abs(pg_catalog.hashtext(nids_src::pg_catalog.text)) "
					  "OPERATOR(pg_catalog.%%) 5 OPERATOR(pg_catalog.=) 0 AND %s::pg_catalog.text OPERATOR(pg_catalog.<>) %s",
					  qualified, quote_identifier(label_col), quote_literal_cstr(benign));
	fq.features = model->feature_names;
	fq.num_features = model->num_features;
	fq.model = model->name;
	flow_read(&fq, rows_add, out);
}

/* ---- the result ---- */

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
} AdaptResult;

/* a JSON text as the value of key */
static void
report_json(JsonbParseState **st, const char *key, const char *json)
{
	Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	JsonbValue	v;

	report_key(st, key);
	v.type = jbvBinary;
	v.val.binary.data = &j->root;
	v.val.binary.len = VARSIZE(j) - VARHDRSZ;
	pushJsonbValue(st, WJB_VALUE, &v);
}

static Jsonb *
adapt_report(const AdaptResult *r, const char *label_col, const char *xgboost, int64 seed,
			 bool internal)
{
	JsonbParseState *st = NULL;

	report_begin(&st, NULL);
	report_int(&st, "version", r->version);
	report_string(&st, "adapted_from", r->adapted_from);
	report_string(&st, "method", r->retrained ? "retrained" : "recalibrated");
	report_string(&st, "why", !r->retrained
				  ? "the training source is not known or gone (an imported version, or options.training): only the novelty gate and the benign reference were fitted to the local flows"
				  : r->keep_source_benign
				  ? "retrained from the training source with half of the local flows added to its benign flows, without the features whose local distribution is far from the benign training flows"
				  : "retrained from the training source's attack flows with half of the local flows as its benign flows, without the features whose local distribution is far from the benign training flows");
	if (r->training_source)
		report_string(&st, "training_source", r->training_source);
	else
		report_number(&st, "training_source", NAN);
	report_begin(&st, "local_flows");
	report_int(&st, "train", r->retrained ? r->n_train : 0);
	report_int(&st, "calibrate", r->n_calibrate);
	report_int(&st, "measure", r->n_measure);
	report_end(&st);
	report_array_begin(&st, "features_dropped");
	for (int i = 0; i < r->ndropped; i++)
	{
		report_element_begin(&st);
		report_string(&st, "feature", r->dropped[i]);
		report_number(&st, "ks_statistic", round(r->dropped_ks[i] * 1000) / 1000);
		report_end(&st);
	}
	report_array_end(&st);
	report_number(&st, "drop_ks", r->drop_ks);
	if (r->retrained)
		report_string(&st, "source_benign", r->keep_source_benign ? "keep" : "drop");
	else
		report_number(&st, "source_benign", NAN);
	report_number(&st, "local_flagged_before", r->flagged_before);
	report_number(&st, "local_flagged_after", r->flagged_after);
	report_number(&st, "attack_recall_before", r->recall_before);
	report_number(&st, "attack_recall_after", r->recall_after);
	if (r->retrained)
		report_int(&st, "attack_flows_measured", r->n_attack);
	else
		report_number(&st, "attack_flows_measured", NAN);
	report_int(&st, "local_flows_without_features", r->n_empty);
	report_bool(&st, "deployed", r->deployed);
	if (internal)
	{
		/* what the next adaptation of this version starts from */
		if (label_col)
			report_string(&st, "label_column", label_col);
		if (xgboost)
			report_json(&st, "xgboost", xgboost);
		report_int(&st, "seed", seed);
	}
	return report_finish(&st);
}

/* the version's metrics with more merged in (jsonb's ||) */
static Jsonb *
jsonb_merge(Jsonb *a, Jsonb *b)
{
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(a), JsonbPGetDatum(b)));
}

static Jsonb *
jsonb_without(Jsonb *a, const char *key)
{
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(a),
											  CStringGetTextDatum(key)));
}

/* the metrics of a version as adaptation registers them */
static void
set_adaptation(const char *name, int32 version, Jsonb *adaptation)
{
	JsonbParseState *st = NULL;
	Jsonb	   *wrap;
	JsonbValue	v;

	report_begin(&st, NULL);
	report_key(&st, "adaptation");
	v.type = jbvBinary;
	v.val.binary.data = &adaptation->root;
	v.val.binary.len = VARSIZE(adaptation) - VARHDRSZ;
	pushJsonbValue(&st, WJB_VALUE, &v);
	wrap = report_finish(&st);
	catalog_merge_metrics(name, version, wrap);
}

/* the gate's options: half of the calibration flows learn, half calibrate */
static void
attach_options(const char *benign, TrainOptions *opt)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"deploy\": false, \"test_size\": 0.5, \"benign_label\": ");
	escape_json(&buf, benign);
	appendStringInfoChar(&buf, '}');
	train_options_parse(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data))), opt);
}

/*
 * Train the classifier again (see the header comment): the source without
 * its held-out fifth, local training flows as benign, only the kept
 * features; then the gate on the local calibration flows.  Registers one
 * version and returns it.
 */
static int32
adapt_retrain(NidsModel *model, Oid src, const char *label_col, const char *benign,
			  Jsonb *metrics, const AdaptOptions *o, const Rows *local, const int64 *order,
			  int64 n_train, int64 n_cal_end, char **keep, int nkeep, char **xgb, int64 *seed)
{
	TrainState	ts;
	StringInfoData topts;
	Relation	rel;
	TupleDesc	desc;
	char	   *model_seed = metric_text(metrics, "adaptation", "seed");
	NidsModel	tm;
	TrainOptions aopt;
	AttachFit	fit;
	float	   *cal;
	Jsonb	   *gate_report;
	int32		version;
	MemoryContext old;

	if (model_seed == NULL)
		model_seed = metric_text(metrics, "seed", NULL);
	*xgb = xgboost_options(metrics);
	*seed = model_seed ? strtoi64(model_seed, NULL, 10) : 42;

	/* the kept features only: every other numeric column is excluded */
	initStringInfo(&topts);
	appendStringInfoString(&topts, "{\"exclude\": [");
	rel = relation_open(src, AccessShareLock);
	desc = RelationGetDescr(rel);
	for (int a = 0, first = 1; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		bool		kept = false;

		if (att->attisdropped || !nids_numeric_type(getBaseType(att->atttypid)) ||
			strcmp(NameStr(att->attname), label_col) == 0)
			continue;
		for (int k = 0; k < nkeep && !kept; k++)
			kept = strcmp(keep[k], NameStr(att->attname)) == 0;
		if (kept)
			continue;
		if (!first)
			appendStringInfoString(&topts, ", ");
		first = 0;
		escape_json(&topts, NameStr(att->attname));
	}
	relation_close(rel, AccessShareLock);
	appendStringInfoString(&topts, "], \"deploy\": false, \"benign_label\": ");
	escape_json(&topts, benign);
	appendStringInfo(&topts, ", \"xgboost\": %s", *xgb);
	if (model_seed != NULL)
		appendStringInfo(&topts, ", \"seed\": %s", model_seed);
	appendStringInfoChar(&topts, '}');

	train_begin(&ts, src, label_col, model->name,
				DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(topts.data))));
	ts.filter = psprintf("pg_catalog.abs(pg_catalog.hashtext(nids_src::pg_catalog.text)) "
						 "OPERATOR(pg_catalog.%%) 5 OPERATOR(pg_catalog.<>) 0%s",
						 o->keep_source_benign ? ""
						 : psprintf(" AND %s::pg_catalog.text OPERATOR(pg_catalog.<>) %s",
									quote_identifier(label_col), quote_literal_cstr(benign)));
	ts.extra_x = rows_part(local, model->feature_names, order, 0, n_train,
						   model->feature_names, model->num_features);
	ts.extra_d = model->num_features;
	ts.extra_names = model->feature_names;
	ts.extra_n = n_train;
	ts.extra_label = benign;
	old = MemoryContextSwitchTo(ts.cxt);
	train_steps(&ts);

	/* the new classifier, not yet registered, for the gate's calibration */
	memset(&tm, 0, sizeof(tm));
	tm.name = model->name;
	tm.num_features = ts.k;
	tm.feature_names = ts.kept;
	tm.num_classes = ts.td.nclasses;
	tm.class_labels = ts.td.classes;
	tm.forest = ts.forest;
	tm.benign_class = ts.benign;
	attach_options(benign, &aopt);
	cal = rows_part(local, model->feature_names, order, n_train, n_cal_end, ts.kept, ts.k);
	attach_fit(&tm, cal, n_cal_end - n_train, &aopt, &fit);
	ts.iforest = fit.iforest;
	ts.gate = fit.gate;
	ts.calibration = fit.cal;
	ts.reference = fit.reference;
	ts.benign_reference = fit.reference;
	ts.deploy = false;
	gate_report = attach_report(&tm, "the local calibration flows", &fit, &aopt);
	gate_report = jsonb_without(jsonb_without(jsonb_without(gate_report, "source"),
											  "from_version"), "benign_relation");
	version = train_register(&ts, jsonb_merge(train_report(&ts), gate_report));
	MemoryContextSwitchTo(old);
	return version;
}

/* the hold-out quality of metrics (of the same classifier), or NULL */
static Jsonb *
metrics_subset(Jsonb *metrics)
{
	static const char *const keys[] = {"rows", "macro_f1", "macro_f1_judged", "accuracy",
	"per_class", "confusion_matrix"};
	JsonbParseState *st = NULL;
	int			found = 0;

	if (metrics == NULL || !JB_ROOT_IS_OBJECT(metrics))
		return NULL;
	report_begin(&st, NULL);
	for (int i = 0; i < lengthof(keys); i++)
	{
		JsonbValue	v;

		if (!getKeyJsonValueFromContainer(&metrics->root, keys[i], strlen(keys[i]), &v))
			continue;
		report_key(&st, keys[i]);
		pushJsonbValue(&st, WJB_VALUE, &v);
		found++;
	}
	return found > 0 ? report_finish(&st) : NULL;
}

/*
 * Recalibrate: the version's classifier with a gate and references fitted
 * to the local calibration flows; its hold-out quality carried over, since
 * the classifier is the same.  Registers one version and returns it.
 */
static int32
adapt_recalibrate(NidsModel *model, const char *benign, Jsonb *metrics_of_version, const Rows *local,
				  const int64 *order, int64 n_train, int64 n_cal_end)
{
	TrainOptions aopt;
	AttachFit	fit;
	Jsonb	   *metrics;
	float	   *cal = rows_part(local, model->feature_names, order, n_train, n_cal_end,
								model->feature_names, model->num_features);
	Jsonb	   *carried;

	attach_options(benign, &aopt);
	attach_fit(model, cal, n_cal_end - n_train, &aopt, &fit);
	metrics = attach_report(model, "the local calibration flows", &fit, &aopt);
	/* the same classifier: the same hold-out quality, where the version has one */
	carried = metrics_subset(metrics_of_version);
	if (carried != NULL)
		metrics = jsonb_merge(carried, metrics);
	return attach_register(model, &fit, &aopt, metrics, false);
}

/*
 * The features whose local distribution is far from the benign training
 * flows (KS above drop_ks) into r, farthest first; the others into keep.
 * Returns how many are kept.
 */
static int
adapt_features(NidsModel *model, const Rows *local, double drop_ks, AdaptResult *r, char **keep)
{
	const char *refname;
	double	   *ks = local_ks(model, local, DRIFT_REFERENCE_BENIGN, &refname);
	int			nkeep = 0;
	int		   *idx = palloc(sizeof(int) * Max(model->num_features, 1));

	r->dropped = palloc(sizeof(char *) * Max(model->num_features, 1));
	r->dropped_ks = palloc(sizeof(double) * Max(model->num_features, 1));
	for (int j = 0; j < model->num_features; j++)
		if (ks[j] > drop_ks)
			idx[r->ndropped++] = j;
		else
			keep[nkeep++] = model->feature_names[j];
	for (int a = 1; a < r->ndropped; a++)
		for (int b = a; b > 0 && ks[idx[b]] > ks[idx[b - 1]]; b--)
		{
			int			t = idx[b];

			idx[b] = idx[b - 1];
			idx[b - 1] = t;
		}
	for (int i = 0; i < r->ndropped; i++)
	{
		r->dropped[i] = model->feature_names[idx[i]];
		r->dropped_ks[i] = ks[idx[i]];
	}
	if (nkeep == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("every feature of model \"%s\" is far from the local flows (KS above %g)",
						model->name, drop_ks),
				 errhint("Raise options.drop_ks, or train on flows of this network.")));
	return nkeep;
}

/*
 * What version r->version changes against model: the share flagged of the
 * local measuring quarter, and, retrained, the attack recall on the fifth
 * of the source neither saw.
 */
static void
adapt_measure(NidsModel *model, const Rows *local, const int64 *order, const char *label_col,
			  const char *benign, AdaptResult *r)
{
	NidsModel  *adapted;
	int64		n = local->n;

	/* the statement's snapshot, seeing the version just registered */
	CommandCounterIncrement();
	PushCopiedSnapshot(GetActiveSnapshot());
	UpdateActiveSnapshotCommandId();
	adapted = model_lookup_ready(psprintf("%s@%d", model->name, r->version), MODEL_READY_PREDICTOR);
	model_pin(adapted, CurrentMemoryContext);
	r->flagged_before = flagged_share(model, rows_part(local, model->feature_names, order,
													   n - r->n_measure, n, model->feature_names,
													   model->num_features), r->n_measure);
	r->flagged_after = flagged_share(adapted, rows_part(local, model->feature_names, order,
														n - r->n_measure, n, adapted->feature_names,
														adapted->num_features), r->n_measure);
	if (r->retrained)
	{
		Rows		before,
					after;

		read_attack_fifth(model, r->training_source, label_col, benign, &before);
		read_attack_fifth(adapted, r->training_source, label_col, benign, &after);
		r->n_attack = before.n;
		r->recall_before = flagged_share(model, before.x, before.n);
		r->recall_after = flagged_share(adapted, after.x, after.n);
	}
	PopActiveSnapshot();
}

/*
 * nids_adapt(model, benign_query, options): see the header comment.
 */
Datum
nids_adapt(PG_FUNCTION_ARGS)
{
	char	   *spec = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	AdaptOptions o;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext cxt;
	NidsModel  *model;
	ModelRecord cur;
	Rows		local;
	int64	   *order;
	int64		n;
	AdaptResult r;
	Oid			src = InvalidOid;
	char	   *source;
	char	   *label_col;
	const char *benign;
	char	   *xgb = NULL;
	int64		seed = 42;
	int			nest;
	Jsonb	   *report;
	Jsonb	   *result;

	adapt_options(PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), &o);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "nids adapt", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);
	model = model_lookup_ready(spec, MODEL_READY_REFERENCES | MODEL_READY_PREDICTOR);
	model_pin(model, cxt);
	memset(&r, 0, sizeof(r));
	r.adapted_from = psprintf("%s@%d", model->name, model->version);
	r.drop_ks = o.drop_ks;
	r.keep_source_benign = o.keep_source_benign;
	r.deployed = o.deploy;
	r.flagged_before = r.flagged_after = r.recall_before = r.recall_after = NAN;

	/* options.training names a table as the caller sees it */
	if (o.training != NULL && !OidIsValid(src = relation_by_name(o.training)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("options.training: relation \"%s\" does not exist", o.training),
				 errhint("Name the table the model was trained on, schema-qualified if need be.")));
	/* the local flows, read with the caller's search_path and privileges */
	read_local(query, model, &local, &r.n_empty);

	nest = nids_pin_search_path();
	if (!catalog_read(model->name, model->version, CATALOG_READ_METRICS, &cur))
		model_no_such_version(model->name, model->version);
	n = local.n;
	order = nids_random_permutation(n, (uint64) o.seed);
	r.n_train = n / 2;
	r.n_calibrate = (3 * n) / 4 - n / 2;
	r.n_measure = n - (3 * n) / 4;
	source = o.training ? qualified_name(src) : metric_text(cur.metrics, "adaptation", "training_source");
	if (source == NULL)
		source = metric_text(cur.metrics, "relation", NULL);
	src = o.training ? src : relation_by_name(source);
	label_col = metric_text(cur.metrics, "adaptation", "label_column");
	if (label_col == NULL)
		label_col = metric_text(cur.metrics, "label_column", NULL);
	benign = cur.benign_label ? cur.benign_label : "BENIGN";
	r.retrained = OidIsValid(src) && label_col != NULL &&
		model_reference(model, DRIFT_REFERENCE_ALL, NULL, true) != NULL;
	r.training_source = OidIsValid(src) ? qualified_name(src) : NULL;

	if (r.retrained)
	{
		char	  **keep = palloc(sizeof(char *) * Max(model->num_features, 1));
		int			nkeep = adapt_features(model, &local, o.drop_ks, &r, keep);

		r.version = adapt_retrain(model, src, label_col, benign, cur.metrics, &o, &local, order,
								  r.n_train, r.n_train + r.n_calibrate, keep, nkeep, &xgb, &seed);
	}
	else
		r.version = adapt_recalibrate(model, benign, cur.metrics, &local, order, r.n_train,
									  r.n_train + r.n_calibrate);

	adapt_measure(model, &local, order, label_col, benign, &r);
	set_adaptation(model->name, r.version, adapt_report(&r, label_col, xgb, seed, true));
	if (o.deploy)
		catalog_deploy(model->name, r.version);
	nids_unpin_search_path(nest);

	report = adapt_report(&r, NULL, NULL, 0, false);
	MemoryContextSwitchTo(caller);
	result = (Jsonb *) palloc(VARSIZE(report));
	memcpy(result, report, VARSIZE(report));
	MemoryContextDelete(cxt);
	PG_RETURN_JSONB_P(result);
}

/*
 * nids._window_vectors(window_query, model, caller_path): the query's rows
 * as the model's feature vectors (NULL elements missing), in the order
 * read.  1.2's nids._adapt used it; the 1.3 library keeps it for a
 * catalogue of 1.2 until ALTER EXTENSION nids UPDATE drops it.
 */
typedef struct VectorSink
{
	ReturnSetInfo *rsinfo;
	int			d;
	Datum	   *elems;
	bool	   *nulls;
} VectorSink;

static void
put_vector(void *arg, const float *x, Datum label, bool label_isnull)
{
	VectorSink *vs = (VectorSink *) arg;
	Datum		value;
	bool		isnull = false;
	int			dims[1] = {vs->d};
	int			lbs[1] = {1};

	for (int j = 0; j < vs->d; j++)
	{
		vs->nulls[j] = isnan(x[j]);
		vs->elems[j] = Float8GetDatum(vs->nulls[j] ? 0 : (double) x[j]);
	}
	value = PointerGetDatum(construct_md_array(vs->elems, vs->nulls, 1, dims, lbs, FLOAT8OID,
											   sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	tuplestore_putvalues(vs->rsinfo->setResult, vs->rsinfo->setDesc, &value, &isnull);
	pfree(DatumGetPointer(value));
}

Datum
nids_window_vectors(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	NidsModel  *model = model_lookup(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(2));
	FlowQuery	fq;
	VectorSink	vs;
	int			nest;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	model_pin(model, CurrentMemoryContext);
	vs.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	vs.d = model->num_features;
	vs.elems = palloc(sizeof(Datum) * Max(vs.d, 1));
	vs.nulls = palloc(sizeof(bool) * Max(vs.d, 1));
	model_window_query(&fq, query, model);
	/* the caller's search_path for the caller's query, and only for it */
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	flow_read(&fq, put_vector, &vs);
	AtEOXact_GUC(true, nest);
	return (Datum) 0;
}
