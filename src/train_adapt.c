/*-------------------------------------------------------------------------
 *
 * train_adapt.c
 *	  nids_adapt(model, benign_query, options): a new version of a model
 *	  fitted to the local network from flows of a period believed benign.
 *
 * Adaptation is a training step, in C over the training rooms' entry
 * points (train_begin/train_steps/train_register, attach_fit), with one
 * error path and one memory context; it never calls nids' own functions
 * through SQL.  The steps (doc/deploying.md):
 *	- the local flows: the benign query read as ks_drift reads a window
 *	  (one read-only SELECT, the caller's privileges and search_path) as
 *	  the model's feature vectors; flows without any feature value left
 *	  out; those the model calls attacks with probability
 *	  options.attack_probability (0.99) or more, and that a classifier
 *	  taught the other quiet flows as benign does not call benign, set
 *	  aside and counted;
 *	  a seeded split: two thirds train, a sixth calibrates the gate and
 *	  the decision threshold, a sixth measures;
 *	- retrained (the version's training source is known and there): the
 *	  features the local flows lack are dropped, and those whose local
 *	  distribution is far from the training flows (KS above drop_ks, all
 *	  training flows or the benign ones) but for the categorical ones, and
 *	  the classifier is trained again on the source without a seeded fifth,
 *	  kept to measure attack recall, its benign flows kept or dropped
 *	  (options.source_benign), with the local training flows as benign;
 *	- recalibrated (no source: an imported version): the classifier stays;
 *	- either way the gate and the drift references are fitted to the local
 *	  calibration flows (attach_fit), and tau, the threshold on P(benign)
 *	  every verdict of the version uses, is set so that the whole verdict
 *	  flags options.target_flagged of them; one version is registered:
 *	  version numbers follow each other, and the version's metrics carry
 *	  its hold-out quality and the adaptation's report;
 *	- measured: the local measuring flows before and after, the source's
 *	  held-out fifth per class; deploy is refused when a class loses much.
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
#define ADAPT_MISSING_SHARE	0.9		/* a feature missing in more of the local
										 * flows is one they lack */
#define ADAPT_CONTAMINATED_P	0.99	/* a quiet flow the model calls an attack
										 * this surely is set aside (default of
										 * options.attack_probability) */
#define ADAPT_CONTAMINATION_WARN	0.05
#define ADAPT_SCREEN_BENIGN	0.5		/* ... unless a classifier that learnt the
									 * other quiet flows as benign finds it
									 * likelier benign than this */
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

static void
rows_init(Rows *r, int d, bool labels)
{
	r->d = d;
	r->n = 0;
	r->cap = 1024;
	r->x = palloc_extended(sizeof(float) * r->cap * Max(d, 1), MCXT_ALLOC_HUGE);
	r->labels = labels ? palloc_extended(sizeof(char *) * r->cap, MCXT_ALLOC_HUGE) : NULL;
}

static void
rows_add(void *arg, const float *x, Datum label, bool label_isnull)
{
	Rows	   *r = (Rows *) arg;

	if (r->n == r->cap)
	{
		r->cap *= 2;
		r->x = repalloc_huge(r->x, sizeof(float) * r->cap * Max(r->d, 1));
		if (r->labels)
			r->labels = repalloc_huge(r->labels, sizeof(char *) * r->cap);
	}
	memcpy(r->x + r->n * r->d, x, sizeof(float) * r->d);
	/* the reader frees the row's memory: the label is copied */
	if (r->labels)
		r->labels[r->n] = label_isnull ? NULL
			: MemoryContextStrdup(GetMemoryChunkContext(r->labels), TextDatumGetCString(label));
	r->n++;
}

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

/* keep the rows where keep[i]: in place, in order */
static void
rows_keep(Rows *r, const bool *keep)
{
	int64		kept = 0;

	for (int64 i = 0; i < r->n; i++)
		if (keep[i])
		{
			memmove(r->x + kept * r->d, r->x + i * r->d, sizeof(float) * r->d);
			if (r->labels)
				r->labels[kept] = r->labels[i];
			kept++;
		}
	r->n = kept;
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
	o->keep_source_benign = true;
	o->reference = DRIFT_REFERENCE_ALL;
	o->target_flagged = 0.01;
	o->attack_probability = ADAPT_CONTAMINATED_P;
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
		else if (strcmp(key, "target_flagged") == 0)
		{
			o->target_flagged = option_number(&v, key);
			if (!(o->target_flagged > 0 && o->target_flagged <= 0.5))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options.target_flagged must be above 0 and at most 0.5, not %g",
								o->target_flagged)));
		}
		else if (strcmp(key, "attack_probability") == 0)
		{
			o->attack_probability = option_number(&v, key);
			if (!(o->attack_probability >= 0.5 && o->attack_probability <= 1))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options.attack_probability must be between 0.5 and 1, not %g",
								o->attack_probability)));
		}
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
					 errhint("Accepted: drop_ks, reference, source_benign, target_flagged, attack_probability, seed, training, deploy.")));
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
	int64		kept;
	bool	   *keep;

	rows_init(local, model->num_features, true);
	model_window_query(&fq, query, model);
	fq.label_column = "source_ip";	/* to name the sources of a contaminated period */
	flow_read(&fq, rows_add, local);
	/* flows without any feature value say nothing of the network */
	keep = palloc_extended(sizeof(bool) * Max(local->n, 1), MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < local->n; i++)
	{
		keep[i] = false;
		for (int j = 0; j < local->d && !keep[i]; j++)
			keep[i] = !isnan(local->x[i * local->d + j]);
	}
	kept = local->n;
	rows_keep(local, keep);
	*n_empty = kept - local->n;
	kept = local->n;
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
				 errdetail("Two thirds of them train, a sixth calibrate the novelty gate and the decision threshold, a sixth measure the result; none is used twice.")));
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

/*
 * The share of rows x (model's features) with a verdict other than benign;
 * each row's in flags[] when given.
 */
static double
flagged_share(NidsModel *model, const float *x, int64 n, bool *flags)
{
	ScoreState	st;
	int64		flagged = 0;

	if (n == 0)
		return NAN;
	memset(&st, 0, sizeof(st));
	score_state_for(&st, model, CurrentMemoryContext);
	for (int64 i = 0; i < n; i++)
	{
		bool		f;

		memcpy(st.x, x + i * model->num_features, sizeof(float) * model->num_features);
		f = score_verdict_only(&st) != NIDS_VERDICT_BENIGN;
		flagged += f;
		if (flags)
			flags[i] = f;
		nids_check_interrupts(i);
	}
	return (double) flagged / n;
}

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * A contaminated quiet period: the flows called an attack with
 * probability p or more (pb[i]: P(benign) of local flow i; NULL: none)
 * are set aside (they must not become the local benign class), counted
 * with their top sources; above ADAPT_CONTAMINATION_WARN of the flows, a
 * WARNING says so.
 */
static void
set_aside(Rows *local, const double *pb, double p, const char *model, AdaptResult *r)
{
	bool	   *keep = palloc_extended(sizeof(bool) * Max(local->n, 1), MCXT_ALLOC_HUGE);
	char	  **srcs = palloc_extended(sizeof(char *) * Max(local->n, 1), MCXT_ALLOC_HUGE);

	r->quiet_flows = local->n;
	for (int64 i = 0; i < local->n; i++)
	{
		keep[i] = p >= 1 || pb == NULL || pb[i] > 1.0 - p;
		if (!keep[i])
			srcs[r->contaminated++] = local->labels[i] ? local->labels[i] : "(no source_ip)";
	}
	rows_keep(local, keep);
	/* the sources most of them came from */
	qsort(srcs, r->contaminated, sizeof(char *), compare_strings);
	r->top_sources = palloc(sizeof(char *) * 3);
	r->top_counts = palloc(sizeof(int64) * 3);
	for (int64 i = 0; i < r->contaminated;)
	{
		int64		j = i;
		int			at;

		while (j < r->contaminated && strcmp(srcs[j], srcs[i]) == 0)
			j++;
		for (at = r->ntop; at > 0 && r->top_counts[at - 1] < j - i; at--)
			if (at < 3)
			{
				r->top_sources[at] = r->top_sources[at - 1];
				r->top_counts[at] = r->top_counts[at - 1];
			}
		if (at < 3)
		{
			r->top_sources[at] = srcs[i];
			r->top_counts[at] = j - i;
			r->ntop = Min(r->ntop + 1, 3);
		}
		i = j;
	}
	if (r->contaminated > ADAPT_CONTAMINATION_WARN * r->quiet_flows)
	{
		StringInfoData top;

		initStringInfo(&top);
		for (int i = 0; i < r->ntop; i++)
			appendStringInfo(&top, "%s%s (%lld)", i ? ", " : "", r->top_sources[i],
							 (long long) r->top_counts[i]);
		ereport(WARNING,
				(errmsg("%.1f%% of the quiet flows (%lld of %lld) are attacks to model \"%s\" with probability %g or more: they are set aside",
						100.0 * r->contaminated / r->quiet_flows, (long long) r->contaminated,
						(long long) r->quiet_flows, model, p),
				 errdetail("Their top sources: %s.", top.data),
				 errhint("A quiet period with attacks in it would teach the new version that they are benign: check those sources, or adapt from another period.")));
	}
}

/* P(benign) of each local flow by model's own classifier */
static double *
benign_probability(NidsModel *model, const Rows *local)
{
	ScoreState	st;
	double	   *pb = palloc_extended(sizeof(double) * Max(local->n, 1), MCXT_ALLOC_HUGE);

	memset(&st, 0, sizeof(st));
	score_state_for(&st, model, CurrentMemoryContext);
	for (int64 i = 0; i < local->n; i++)
	{
		memcpy(st.x, local->x + i * local->d, sizeof(float) * local->d);
		(void) score_classify(&st);
		pb[i] = model->benign_class >= 0 ? st.proba[model->benign_class] : 1.0;
		nids_check_interrupts(i);
	}
	return pb;
}

/* the held-out fifth's attack flows of the source, as model's features */
static void
read_attack_fifth(NidsModel *model, const char *qualified, const char *label_col,
				  const char *benign, Rows *out)
{
	FlowQuery	fq;

	rows_init(out, model->num_features, true);
	memset(&fq, 0, sizeof(fq));
	fq.sql = psprintf("SELECT * FROM %s nids_src WHERE pg_catalog.abs(pg_catalog.hashtext(nids_src::pg_catalog.text)) "
					  "OPERATOR(pg_catalog.%%) 5 OPERATOR(pg_catalog.=) 0 AND %s::pg_catalog.text OPERATOR(pg_catalog.<>) %s",
					  qualified, quote_identifier(label_col), quote_literal_cstr(benign));
	fq.features = model->feature_names;
	fq.num_features = model->num_features;
	fq.model = model->name;
	fq.label_column = label_col;
	flow_read(&fq, rows_add, out);
}

/* ---- the result ---- */


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
				  ? "the training source is not known or gone (an imported version, or options.training): only the novelty gate, the decision threshold and the benign reference were fitted to the local flows"
				  : r->keep_source_benign
				  ? "retrained from the training source with two thirds of the local flows added to its benign flows, without the features the local flows lack or whose local distribution is far from the training flows; the gate and the decision threshold fitted to a sixth of them"
				  : "retrained from the training source's attack flows with two thirds of the local flows as its benign flows, without the features the local flows lack or whose local distribution is far from the training flows; the gate and the decision threshold fitted to a sixth of them");
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

typedef struct TauFlow
{
	double		pb;				/* P(benign) */
	bool		novel;			/* the gate's */
} TauFlow;

static int
compare_tau_flows(const void *a, const void *b)
{
	double		x = ((const TauFlow *) a)->pb;
	double		y = ((const TauFlow *) b)->pb;

	return (x > y) - (x < y);
}

/*
 * tau: the largest threshold on P(benign) at which the whole verdict (the
 * classifier by tau, then the gate) flags at most target of the m
 * calibration flows x[rows[0 .. m-1]] (d features).  Setting tau alone
 * would only hand flows to the gate: the gate's flags count too.
 */
static double
calibrate_tau(const NidsForest *forest, int nclasses, int benign, const AttachFit *fit,
			  const float *x, int d, const int64 *rows, int64 m, double target,
			  int64 *flagged)
{
	TauFlow    *f = palloc_extended(sizeof(TauFlow) * Max(m, 1), MCXT_ALLOC_HUGE);
	int64	   *novel_from = palloc_extended(sizeof(int64) * (m + 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	float	   *scratch = palloc(sizeof(float) * Max(forest_scratch_size(forest),
												 forest_scratch_size(fit->iforest)));
	float	   *margin = palloc(sizeof(float) * forest->num_groups);
	double	   *proba = palloc(sizeof(double) * nclasses);
	float	   *z = palloc(sizeof(float) * fit->gate->padded_features);
	double		allowed = target * m;
	double		tau = -1;

	for (int64 i = 0; i < m; i++)
	{
		const float *xi = x + rows[i] * d;
		NoveltyInputs in;

		(void) forest_predict_class(forest, nclasses, xi, margin, proba, scratch);
		f[i].pb = proba[benign];
		novelty_inputs(fit->gate, fit->iforest, xi, classifier_uncertainty(proba, benign), true,
					   z, scratch, &in);
		(void) novelty_value(fit->gate, in.anomaly, in.uncertainty, in.distance, &f[i].novel);
		nids_check_interrupts(i);
	}
	/* P(benign) ascending; novel_from[k]: novel flows from the k-th on */
	qsort(f, m, sizeof(TauFlow), compare_tau_flows);
	for (int64 k = m - 1; k >= 0; k--)
		novel_from[k] = novel_from[k + 1] + f[k].novel;
	/*
	 * tau = the k-th P(benign): the k flows below it flagged, and the novel
	 * above.  When the gate alone flags more than the target, the
	 * classifier keeps its own share of it: tau flags at most target of the
	 * flows by itself (the gate's excess is the gate's, reported).
	 */
	for (int pass = 0; pass < 2 && tau < 0; pass++)
		for (int64 k = m - 1; k >= 0; k--)
		{
			int64		below = k;

			while (below > 0 && f[below - 1].pb == f[k].pb)
				below--;
			if (below + (pass == 0 ? novel_from[below] : 0) <= allowed)
			{
				tau = f[k].pb;
				*flagged = below + novel_from[below];
				break;
			}
		}
	if (tau < 0)
	{
		tau = m > 0 ? f[0].pb : 0.5;
		*flagged = novel_from[0];
	}
	/* the column holds (0, 1): the smallest P(benign) may be 0 or 1 */
	return Min(Max(tau, 1e-12), 1 - 1e-12);
}

/*
 * A training run of the classifier again (train_begin): the source without
 * its held-out fifth, its benign flows kept or not, only the kept features,
 * the version's own XGBoost parameters and seed (*xgb, *seed: as the
 * adapted version records them).
 */
static void
adapt_train_begin(TrainState *ts, NidsModel *model, Oid src, const char *label_col,
				  const char *benign, Jsonb *metrics, bool keep_source_benign, char **keep,
				  int nkeep, char **xgb, int64 *seed)
{
	StringInfoData topts;
	Relation	rel;
	TupleDesc	desc;
	char	   *model_seed = metric_text(metrics, "adaptation", "seed");

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

	train_begin(ts, src, label_col, model->name,
				DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(topts.data))));
	ts->filter = psprintf("pg_catalog.abs(pg_catalog.hashtext(nids_src::pg_catalog.text)) "
						 "OPERATOR(pg_catalog.%%) 5 OPERATOR(pg_catalog.<>) 0%s",
						 keep_source_benign ? ""
						 : psprintf(" AND %s::pg_catalog.text OPERATOR(pg_catalog.<>) %s",
									quote_identifier(label_col), quote_literal_cstr(benign)));
}

/*
 * Retraining: P(benign) of each local flow by a classifier trained as the
 * adapted one will be (the kept features, the source without its fifth,
 * local flows as benign), in two folds: each half of the local flows is
 * judged by the classifier that learnt the other half as benign.  What it
 * still calls an attack looks like the source's attacks on the features
 * the adaptation keeps, even beside local flows taught as benign: an
 * attack in the quiet period.  A flow the version's own classifier
 * misreads because the local exporter writes some features differently or
 * not at all is like the other half's, learnt as benign, and kept.
 */
static double *
screen_quiet_flows(NidsModel *model, Oid src, const char *label_col, const char *benign,
				   Jsonb *metrics, const AdaptOptions *o, const Rows *local, char **keep,
				   int nkeep)
{
	double	   *pb = palloc_extended(sizeof(double) * Max(local->n, 1), MCXT_ALLOC_HUGE);
	int64	   *order = nids_random_permutation(local->n, (uint64) o->seed + 1);
	int64		half = local->n / 2;

	for (int fold = 0; fold < 2; fold++)
	{
		TrainState	ts;
		char	   *xgb;
		int64		seed;
		MemoryContext old;
		const int64 *learn = fold == 0 ? order + half : order;
		int64		nlearn = fold == 0 ? local->n - half : half;
		const int64 *judge = fold == 0 ? order : order + half;
		int64		njudge = fold == 0 ? half : local->n - half;
		float	   *x;
		float	   *scratch;
		float	   *margin;
		double	   *proba;

		adapt_train_begin(&ts, model, src, label_col, benign, metrics, o->keep_source_benign,
						  keep, nkeep, &xgb, &seed);
		ts.extra_x = rows_part(local, model->feature_names, learn, 0, nlearn,
							   model->feature_names, model->num_features);
		ts.extra_d = model->num_features;
		ts.extra_names = model->feature_names;
		ts.extra_n = nlearn;
		ts.extra_label = benign;
		old = MemoryContextSwitchTo(ts.cxt);
		train_steps(&ts);
		x = rows_part(local, model->feature_names, judge, 0, njudge, ts.kept, ts.k);
		scratch = palloc(sizeof(float) * forest_scratch_size(ts.forest));
		margin = palloc(sizeof(float) * ts.forest->num_groups);
		proba = palloc(sizeof(double) * ts.td.nclasses);
		for (int64 i = 0; i < njudge; i++)
		{
			(void) forest_predict_class(ts.forest, ts.td.nclasses, x + i * ts.k, margin, proba,
										scratch);
			pb[judge[i]] = proba[ts.benign];
			nids_check_interrupts(i);
		}
		MemoryContextSwitchTo(old);
		MemoryContextDelete(ts.cxt);
	}
	return pb;
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
			  int64 n_train, int64 n_cal_end, char **keep, int nkeep, char **xgb, int64 *seed,
			  AdaptResult *r)
{
	TrainState	ts;
	NidsModel	tm;
	TrainOptions aopt;
	AttachFit	fit;
	float	   *cal;
	Jsonb	   *gate_report;
	int32		version;
	MemoryContext old;

	adapt_train_begin(&ts, model, src, label_col, benign, metrics, o->keep_source_benign,
					  keep, nkeep, xgb, seed);
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
	/* tau, on the calibration flows (the gate learnt from half of them) */
	if (r->tau_storable)
		ts.benign_threshold = calibrate_tau(ts.forest, ts.td.nclasses, ts.benign, &fit, cal, ts.k,
										fit.rows, fit.ntrain + fit.ntest, r->target_flagged,
										&r->calibration_flagged);
	r->benign_threshold = ts.benign_threshold;
	r->calibration_flows = fit.ntrain + fit.ntest;
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
				  const int64 *order, int64 n_train, int64 n_cal_end, AdaptResult *r)
{
	TrainOptions aopt;
	AttachFit	fit;
	Jsonb	   *metrics;
	float	   *cal = rows_part(local, model->feature_names, order, n_train, n_cal_end,
								model->feature_names, model->num_features);
	Jsonb	   *carried;

	attach_options(benign, &aopt);
	attach_fit(model, cal, n_cal_end - n_train, &aopt, &fit);
	if (model->benign_class >= 0 && r->tau_storable)
	{
		fit.benign_threshold = calibrate_tau(model->forest, model->num_classes, model->benign_class,
											 &fit, cal, model->num_features, fit.rows,
											 fit.ntrain + fit.ntest, r->target_flagged,
											 &r->calibration_flagged);
		r->benign_threshold = fit.benign_threshold;
		r->calibration_flows = fit.ntrain + fit.ntest;
	}
	metrics = attach_report(model, "the local calibration flows", &fit, &aopt);
	/* the same classifier: the same hold-out quality, where the version has one */
	carried = metrics_subset(metrics_of_version);
	if (carried != NULL)
		metrics = jsonb_merge(carried, metrics);
	return attach_register(model, &fit, &aopt, metrics, false);
}

/*
 * Each feature's missing values among the local flows; those the local
 * flows lack (missing in more than ADAPT_MISSING_SHARE of them) named in r.
 */
static int64 *
local_missing(NidsModel *model, const Rows *local, AdaptResult *r)
{
	int			nf = model->num_features;
	int64	   *missing = palloc0(sizeof(int64) * Max(nf, 1));

	for (int64 i = 0; i < local->n; i++)
		for (int j = 0; j < nf; j++)
			missing[j] += isnan(local->x[i * nf + j]);
	r->missing = palloc(sizeof(char *) * Max(nf, 1));
	r->nmissing = 0;
	for (int j = 0; j < nf; j++)
		if (missing[j] > ADAPT_MISSING_SHARE * local->n)
			r->missing[r->nmissing++] = model->feature_names[j];
	return missing;
}

/* features whose values are codes, not quantities: kept whatever their KS */
static bool
categorical_feature(const char *name)
{
	return strcmp(name, "destination_port") == 0 || strcmp(name, "protocol") == 0;
}

/*
 * Which features the retrained version keeps: not those the local flows
 * lack (missing in more than ADAPT_MISSING_SHARE of them: trained as the
 * local benign flows' trait, "missing" would mean "benign"), the
 * categorical ones they have whatever their KS, not those whose local
 * distribution is far from the reference (KS above drop_ks, farthest
 * first).  The kept ones into keep; returns how many.
 */
static int
adapt_features(NidsModel *model, const Rows *local, const AdaptOptions *o, AdaptResult *r,
			   char **keep)
{
	int			nf = model->num_features;
	double	   *ks = local_ks(model, local, o->reference, &r->reference);
	int64	   *missing = local_missing(model, local, r);
	int			nkeep = 0;
	int		   *idx = palloc(sizeof(int) * Max(nf, 1));

	r->nmissing = 0;
	r->dropped = palloc(sizeof(char *) * Max(nf, 1));
	r->dropped_ks = palloc(sizeof(double) * Max(nf, 1));
	r->categorical = palloc(sizeof(char *) * Max(nf, 1));
	for (int j = 0; j < nf; j++)
	{
		const char *name = model->feature_names[j];

		if (missing[j] > ADAPT_MISSING_SHARE * local->n)
			r->missing[r->nmissing++] = (char *) name;
		else if (categorical_feature(name))
			keep[nkeep++] = r->categorical[r->ncategorical++] = (char *) name;
		else if (ks[j] > o->drop_ks)
			idx[r->ndropped++] = j;
		else
			keep[nkeep++] = (char *) name;
	}
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
				 errmsg("no feature of model \"%s\" is both present in the local flows and close to its training flows (KS at most %g)",
						model->name, o->drop_ks),
				 errhint("Raise options.drop_ks, or train on flows of this network.")));
	return nkeep;
}


/*
 * Per class of the held-out fifth: its flows, and the share each version
 * flags (before, after).
 */
static void
per_class_recall(const Rows *before, const bool *fb, const Rows *after, const bool *fa,
				 AdaptResult *r)
{
	char	  **labels = palloc(sizeof(char *) * Max(before->n, 1));
	int64		n = 0;

	for (int64 i = 0; i < before->n; i++)
		if (before->labels[i])
			labels[n++] = before->labels[i];
	qsort(labels, n, sizeof(char *), compare_strings);
	r->classes = palloc(sizeof(char *) * Max(n, 1));
	for (int64 i = 0; i < n; i++)
		if (r->nclasses == 0 || strcmp(r->classes[r->nclasses - 1], labels[i]) != 0)
			r->classes[r->nclasses++] = labels[i];
	r->class_flows = palloc0(sizeof(int64) * Max(r->nclasses, 1));
	r->class_before = palloc0(sizeof(double) * Max(r->nclasses, 1));
	r->class_after = palloc0(sizeof(double) * Max(r->nclasses, 1));
	for (int pass = 0; pass < 2; pass++)
	{
		const Rows *rows = pass == 0 ? before : after;
		const bool *flags = pass == 0 ? fb : fa;
		int64	   *count = palloc0(sizeof(int64) * Max(r->nclasses, 1));
		double	   *share = pass == 0 ? r->class_before : r->class_after;

		for (int64 i = 0; i < rows->n; i++)
		{
			char	  **at;

			if (rows->labels[i] == NULL)
				continue;
			at = bsearch(&rows->labels[i], r->classes, r->nclasses, sizeof(char *), compare_strings);
			if (at == NULL)
				continue;
			count[at - r->classes]++;
			share[at - r->classes] += flags[i];
		}
		for (int c = 0; c < r->nclasses; c++)
		{
			share[c] = count[c] > 0 ? share[c] / count[c] : NAN;
			if (pass == 0)
				r->class_flows[c] = count[c];
		}
	}
}

/*
 * What version r->version changes against model: the share flagged of the
 * local measuring sixth, and, retrained, the attack recall on the fifth of
 * the source neither saw, per class.
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
													   model->num_features), r->n_measure, NULL);
	r->flagged_after = flagged_share(adapted, rows_part(local, model->feature_names, order,
														n - r->n_measure, n, adapted->feature_names,
														adapted->num_features), r->n_measure, NULL);
	if (r->retrained)
	{
		Rows		before,
					after;
		bool	   *fb,
				   *fa;

		read_attack_fifth(model, r->training_source, label_col, benign, &before);
		read_attack_fifth(adapted, r->training_source, label_col, benign, &after);
		fb = palloc_extended(sizeof(bool) * Max(before.n, 1), MCXT_ALLOC_HUGE);
		fa = palloc_extended(sizeof(bool) * Max(after.n, 1), MCXT_ALLOC_HUGE);
		r->n_attack = before.n;
		r->recall_before = flagged_share(model, before.x, before.n, fb);
		r->recall_after = flagged_share(adapted, after.x, after.n, fa);
		per_class_recall(&before, fb, &after, fa, r);
	}
	PopActiveSnapshot();
}

/*
 * deploy => true is refused when a class of the held-out fifth with
 * ADAPT_GUARD_FLOWS flows or more loses more than ADAPT_GUARD_LOSS of its
 * recall: what the local flows cannot show, the source can.
 */
static void
deploy_guard(const AdaptResult *r)
{
	StringInfoData lost;

	initStringInfo(&lost);
	for (int c = 0; c < r->nclasses; c++)
		if (r->class_flows[c] >= ADAPT_GUARD_FLOWS &&
			r->class_before[c] - r->class_after[c] > ADAPT_GUARD_LOSS)
			appendStringInfo(&lost, "%s%s (%.0f%% -> %.0f%% of %lld flows)", lost.len ? ", " : "",
							 r->classes[c], 100 * r->class_before[c], 100 * r->class_after[c],
							 (long long) r->class_flows[c]);
	if (lost.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the adapted version is not deployed: it loses more than %.0f points of recall on %s",
						100 * ADAPT_GUARD_LOSS, lost.data),
				 errdetail("Measured on the fifth of the training source that neither version learnt from; classes with at least %d of its flows are judged.",
						   ADAPT_GUARD_FLOWS),
				 errhint("Adapt without deploy to keep and study the version (its result has per_class), or deploy it yourself with nids_deploy.")));
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
	char	  **keep;
	int			nkeep = 0;
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
	r.target_flagged = o.target_flagged;
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
	r.attack_probability = o.attack_probability;
	r.tau_storable = catalog_has_benign_threshold();
	if (!r.tau_storable)
		ereport(NOTICE,
				(errmsg("the nids catalogue is older than 1.3: the adapted version gets no decision threshold"),
				 errhint("Run ALTER EXTENSION nids UPDATE.")));
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
	keep = palloc(sizeof(char *) * Max(model->num_features, 1));
	/*
	 * attacks in the quiet period: what the version's classifier calls an
	 * attack with probability attack_probability or more; retraining, not
	 * what a classifier that learnt the other quiet flows as benign calls
	 * benign (screen_quiet_flows): that is the local exporter's or
	 * network's way, which adapting must learn
	 */
	if (r.retrained)
	{
		nkeep = adapt_features(model, &local, &o, &r, keep);
		if (o.attack_probability < 1)
		{
			double	   *pb = benign_probability(model, &local);
			double	   *screen = screen_quiet_flows(model, src, label_col, benign, cur.metrics,
													&o, &local, keep, nkeep);

			/* a flow like the quiet flows taught as benign is not an attack */
			for (int64 i = 0; i < local.n; i++)
				if (screen[i] > ADAPT_SCREEN_BENIGN)
					pb[i] = 1.0;
			set_aside(&local, pb, o.attack_probability, model->name, &r);
		}
		else
			set_aside(&local, NULL, 1, model->name, &r);
	}
	else
	{
		(void) local_missing(model, &local, &r);	/* the classifier stays: only named */
		set_aside(&local, benign_probability(model, &local), o.attack_probability, model->name, &r);
	}
	n = local.n;
	if (n < ADAPT_MIN_FLOWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%lld quiet flows remain once the %lld the model calls attacks are set aside; adapting needs at least %d",
						(long long) n, (long long) r.contaminated, ADAPT_MIN_FLOWS),
				 errhint("Adapt from a period without attacks.")));
	/* two thirds train, a sixth calibrates the gate and tau, a sixth measures */
	order = nids_random_permutation(n, (uint64) o.seed);
	r.n_train = (2 * n) / 3;
	r.n_calibrate = (n - r.n_train) / 2;
	r.n_measure = n - r.n_train - r.n_calibrate;
	if (r.retrained)
		r.version = adapt_retrain(model, src, label_col, benign, cur.metrics, &o, &local, order,
								  r.n_train, r.n_train + r.n_calibrate, keep, nkeep, &xgb, &seed,
								  &r);
	else
		r.version = adapt_recalibrate(model, benign, cur.metrics, &local, order, r.n_train,
									  r.n_train + r.n_calibrate, &r);

	adapt_measure(model, &local, order, label_col, benign, &r);
	if (o.deploy)
		deploy_guard(&r);
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
