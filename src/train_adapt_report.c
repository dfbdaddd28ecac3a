/*-------------------------------------------------------------------------
 *
 * train_adapt_report.c
 *	  nids_adapt's options, what it reads of the version's own record
 *	  (its training source, label column, XGBoost parameters), and its
 *	  result, stored with the new version (train_adapt.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "catalog/namespace.h"
#include "report.h"
#include "train_adapt.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/varlena.h"

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

/*
 * options.key as a number from lo to hi, each end included or not
 * (range: how the error says it)
 */
static double
option_in_range(JsonbValue *v, const char *key, double lo, bool lo_in, double hi, bool hi_in,
				const char *range)
{
	double		x = option_number(v, key);

	if (!((lo_in ? x >= lo : x > lo) && (hi_in ? x <= hi : x < hi)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options.%s must be %s, not %g", key, range, x)));
	return x;
}

void
adapt_options(Jsonb *options, AdaptOptions *o)
{
	JsonbIterator *it;
	JsonbValue	v;
	char	   *key;

	memset(o, 0, sizeof(*o));
	o->drop_ks = 0.3;
	o->seed = 42;
	o->keep_source_benign = true;
	o->reference = DRIFT_REFERENCE_ALL;
	o->target_flagged = 0.01;
	o->attack_probability = ADAPT_CONTAMINATED_P;
	if (options == NULL)
		return;
	it = options_begin(options);
	while (options_next(&it, &key, &v))
	{
		char	   *shown;

		shown = v.type == jbvBinary ? JsonbToCString(NULL, v.val.binary.data, 0)
			: JsonbToCString(NULL, &JsonbValueToJsonb(&v)->root, 0);
		if (strcmp(key, "drop_ks") == 0)
			o->drop_ks = option_in_range(&v, key, 0, false, 1, true, "between 0 and 1");
		else if (strcmp(key, "target_flagged") == 0)
			o->target_flagged = option_in_range(&v, key, 0, false, 0.5, true,
												"above 0 and at most 0.5");
		else if (strcmp(key, "attack_probability") == 0)
			o->attack_probability = option_in_range(&v, key, 0.5, true, 1, true,
													"between 0.5 and 1");
		else if (strcmp(key, "local_share") == 0)
			o->local_share = option_in_range(&v, key, 0, false, 1, false, "above 0 and below 1");
		else if (strcmp(key, "reference") == 0)
		{
			if (v.type != jbvString ||
				(strcmp(shown, "\"all\"") != 0 && strcmp(shown, "\"benign\"") != 0))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options.reference must be \"all\" or \"benign\", not %s", shown)));
			o->reference = strcmp(shown, "\"all\"") == 0 ? DRIFT_REFERENCE_ALL : DRIFT_REFERENCE_BENIGN;
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
					 errhint("Accepted: drop_ks, reference, source_benign, local_share, target_flagged, attack_probability, seed, training, deploy.")));
	}
}

/* metrics -> k1 (-> k2) as text, or NULL */
char *
adapt_metric_text(Jsonb *metrics, const char *k1, const char *k2)
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
char *
adapt_xgboost_options(Jsonb *metrics)
{
	char	   *own = adapt_metric_text(metrics, "adaptation", "xgboost");
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

/*
 * A relation by name, resolved with the current search_path; InvalidOid
 * if none.  A name that is not one (options.training '"x') is the caller's
 * error: 42602, as to_regclass gives.
 */
Oid
adapt_relation_by_name(const char *name)
{
	List	   *names;

	if (name == NULL)
		return InvalidOid;
	names = stringToQualifiedNameList(name);
	return RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
}

char *
adapt_qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

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

Jsonb *
adapt_report(const AdaptResult *r, const char *label_col, const char *xgboost, int64 seed,
			 bool internal)
{
	JsonbParseState *st = NULL;

	report_begin(&st, NULL);
	report_int(&st, "version", r->version);
	report_string(&st, "adapted_from", r->adapted_from);
	report_string(&st, "method", r->retrained ? "retrained" : "recalibrated");
	report_string(&st, "why", !r->retrained
				  ? "the training source is not known or gone (an imported version, or options.training): only the novelty gate, the decision threshold and the benign reference were fitted to the local flows"
				  : r->keep_source_benign
				  ? "retrained from the training source with two thirds of the local flows added to its benign flows, without the features the local flows lack or whose local distribution is far from the training flows; the gate and the decision threshold fitted to the other third"
				  : "retrained from the training source's attack flows with two thirds of the local flows as its benign flows, without the features the local flows lack or whose local distribution is far from the training flows; the gate and the decision threshold fitted to the other third");
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
	report_names(&st, "features_missing_locally", r->missing, r->nmissing);
	report_names(&st, "categorical_kept", r->categorical, r->ncategorical);
	if (r->reference)
		report_string(&st, "reference", r->reference);
	else
		report_number(&st, "reference", NAN);
	report_number(&st, "drop_ks", r->drop_ks);
	report_number(&st, "benign_threshold", r->benign_threshold > 0 ? r->benign_threshold : NAN);
	report_number(&st, "target_flagged", r->target_flagged);
	report_begin(&st, "calibration");
	report_int(&st, "flows", r->calibration_flows);
	report_int(&st, "flagged", r->calibration_flagged);
	report_end(&st);
	report_begin(&st, "contamination");
	report_int(&st, "quiet_flows", r->quiet_flows);
	report_int(&st, "set_aside", r->contaminated);
	report_number(&st, "share", r->quiet_flows > 0 ? (double) r->contaminated / r->quiet_flows : NAN);
	report_number(&st, "attack_probability", r->attack_probability);
	report_array_begin(&st, "top_sources");
	for (int i = 0; i < r->ntop; i++)
	{
		report_element_begin(&st);
		report_string(&st, "source", r->top_sources[i]);
		report_int(&st, "flows", r->top_counts[i]);
		report_end(&st);
	}
	report_array_end(&st);
	report_end(&st);
	if (r->retrained)
		report_string(&st, "source_benign", r->keep_source_benign ? "keep" : "drop");
	else
		report_number(&st, "source_benign", NAN);
	report_number(&st, "local_share", r->local_share);
	report_number(&st, "local_flagged_before", r->flagged_before);
	report_number(&st, "local_flagged_after", r->flagged_after);
	report_number(&st, "attack_recall_before", r->recall_before);
	report_number(&st, "attack_recall_after", r->recall_after);
	if (r->retrained)
		report_int(&st, "attack_flows_measured", r->n_attack);
	else
		report_number(&st, "attack_flows_measured", NAN);
	report_begin(&st, "per_class");
	for (int c = 0; c < r->nclasses; c++)
	{
		report_begin(&st, r->classes[c]);
		report_int(&st, "flows", r->class_flows[c]);
		report_number(&st, "recall_before", r->class_before[c]);
		report_number(&st, "recall_after", r->class_after[c]);
		report_end(&st);
	}
	report_end(&st);
	report_string(&st, "not_measured",
				  "local attack recall: the local flows carry no labels, so how many local attacks the new version catches is not known here; attack_recall_* and per_class are the training source's held-out fifth, local_flagged_* the local measuring flows (all taken as benign)");
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
Jsonb *
adapt_jsonb_merge(Jsonb *a, Jsonb *b)
{
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(a), JsonbPGetDatum(b)));
}

Jsonb *
adapt_jsonb_without(Jsonb *a, const char *key)
{
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(a),
											  CStringGetTextDatum(key)));
}

/* the metrics of a version as adaptation registers them */
void
adapt_store_report(const char *name, int32 version, Jsonb *adaptation)
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

/* the hold-out quality of metrics (of the same classifier), or NULL */
Jsonb *
adapt_carried_metrics(Jsonb *metrics)
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
