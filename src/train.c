/*-------------------------------------------------------------------------
 *
 * train.c
 *	  nids_train: read labelled flows, preprocess, train the XGBoost
 *	  classifier, the isolation forest and the drift reference, evaluate on
 *	  a stratified hold-out split, and register a new model version.
 *
 * nids_train is a list of steps over one TrainState, each a short
 * function: the data (train_data.c), the booster (train_xgboost.c), the
 * report (train_report.c).  Everything allocated lives in one memory
 * context, and every XGBoost handle is owned by it: an ERROR, a cancel or
 * a statement_timeout in the middle of training frees everything and
 * registers nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "drift.h"
#include "miscadmin.h"
#include "train.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(nids_train);

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
	double		threshold_train;	/* novelty threshold on training rows */
	double		threshold;
	bytea	   *reference;
	float	   *scratch;

	/* hold-out results */
	int		   *pred;
	int64	   *confusion;
	double		auc;
	int64		verdicts[NIDS_NUM_VERDICTS];
} TrainState;

static void
train_init(TrainState *ts, FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source, label_column and model must not be NULL")));
	memset(ts, 0, sizeof(*ts));
	ts->relid = PG_GETARG_OID(0);
	ts->label = NameStr(*PG_GETARG_NAME(1));
	ts->model = text_to_cstring(PG_GETARG_TEXT_PP(2));
	CheckModelName(ts->model);
	train_options_parse(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &ts->opt);
	INSTR_TIME_SET_CURRENT(ts->start);
	ts->cxt = AllocSetContextCreate(CurrentMemoryContext, "nids train", ALLOCSET_DEFAULT_SIZES);
	ts->td.cxt = ts->cxt;
	ts->benign = -1;
	ts->threshold = NAN;
	ts->threshold_train = NAN;
}

/* the labelled rows of the source, classes in name order */
static void
train_read(TrainState *ts)
{
	TrainData  *td = &ts->td;

	train_data_columns(td, ts->relid, ts->label, &ts->opt, &ts->qualified);
	train_data_read(td, ts->qualified, ts->label);
	if (td->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has no labelled rows", ts->qualified)));
	if (td->nclasses < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has %d class in column \"%s\"; at least two are needed",
						ts->qualified, td->nclasses, ts->label)));
	train_data_order_classes(td);
	ts->timings[T_READ] = elapsed_since(ts->start);
}

/* the split, then the feature selection on the training rows */
static void
train_preprocess(TrainState *ts)
{
	TrainData  *td = &ts->td;

	ts->ntrain = train_data_split(td, ts->opt.test_size, ts->opt.seed);
	ts->ntest = td->n - ts->ntrain;
	preprocess_select(td->x, td->n, td->d, ts->ntrain, td->colnames,
					  ts->opt.correlation_threshold, &ts->pre);
	ts->k = ts->pre.nkept;
	if (ts->k == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("every feature column of %s is constant", ts->qualified)));
	preprocess_compact(td->x, td->n, td->d, &ts->pre);
	td->x = repalloc_huge(td->x, sizeof(float) * td->n * ts->k);
	ts->kept = palloc(sizeof(char *) * ts->k);
	for (int j = 0; j < ts->k; j++)
		ts->kept[j] = td->features[ts->pre.kept[j]];
	ts->timings[T_PREPROCESS] = elapsed_since(ts->start);
}

/*
 * What needs the training rows comes before boosting, which gives them
 * back: the isolation forest on the benign ones (and its threshold on
 * them, used when the hold-out has no benign flow), and the training
 * distribution for ks_drift.
 */
static void
train_gate_and_reference(TrainState *ts)
{
	TrainData  *td = &ts->td;
	int64	   *rows = palloc_extended(sizeof(int64) * Max(ts->ntrain, 1), MCXT_ALLOC_HUGE);

	for (int c = 0; c < td->nclasses; c++)
		if (pg_strcasecmp(td->classes[c], ts->opt.benign_label) == 0)
			ts->benign = c;
	if (ts->benign >= 0)
	{
		for (int64 r = 0; r < ts->ntrain; r++)
			if (td->y[r] == ts->benign)
				rows[ts->nbenign++] = r;
		ts->iforest = iforest_train(td->x, ts->k, rows, ts->nbenign, &ts->opt.iforest);
		ts->scratch = palloc(sizeof(float) * forest_scratch_size(ts->iforest));
		ts->threshold_train = iforest_threshold(ts->iforest, td->x, ts->k, rows, ts->nbenign,
												ts->opt.benign_fpr, ts->scratch);
	}
	for (int64 r = 0; r < ts->ntrain; r++)
		rows[r] = r;
	ts->reference = drift_reference_build(td->x, ts->k, rows, ts->ntrain, ts->opt.seed);
	pfree(rows);
	ts->timings[T_IFOREST] = elapsed_since(ts->start);
}

/* the booster, and its native form; td keeps the test rows only */
static void
train_classifier(TrainState *ts)
{
	DocFormat	format;
	DocValue   *doc;
	char	   *error;

	ts->booster_json = xgb_train(&ts->td, ts->ntrain, ts->k, &ts->opt, &ts->booster_len);
	doc = doc_parse(ts->booster_json, ts->booster_len, &format, &error);
	ts->forest = doc ? forest_from_xgboost(doc, &error) : NULL;
	if (ts->forest == NULL)
		elog(ERROR, "XGBoost's own model did not convert: %s", error);
	ts->timings[T_TRAIN] = elapsed_since(ts->start);
}

/* hold-out predictions with the native evaluator that will score */
static void
train_evaluate(TrainState *ts)
{
	TrainData  *td = &ts->td;
	int			nclasses = td->nclasses;
	float	   *margin = palloc(sizeof(float) * ts->forest->num_groups);
	double	   *proba = palloc(sizeof(double) * nclasses);

	ts->confusion = palloc0(sizeof(int64) * nclasses * nclasses);
	ts->pred = palloc_extended(sizeof(int) * Max(ts->ntest, 1), MCXT_ALLOC_HUGE);
	/* one scratch area for both forests */
	ts->scratch = palloc(sizeof(float) * Max(forest_scratch_size(ts->forest),
											 ts->iforest ? forest_scratch_size(ts->iforest) : 0));
	for (int64 r = 0; r < ts->ntest; r++)
	{
		int			best = 0;

		forest_predict_margin(ts->forest, td->x + r * ts->k, margin, ts->scratch);
		forest_transform(ts->forest, margin, proba);
		for (int c = 1; c < nclasses; c++)
			if (proba[c] > proba[best])
				best = c;
		ts->pred[r] = best;
		ts->confusion[td->y[r] * nclasses + best]++;
		if ((r & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The novelty threshold: the (1 - benign_fpr) quantile of the held-out
 * benign flows' scores; the forest's ROC-AUC and the ensemble's verdicts on
 * the hold-out.
 */
static void
train_novelty(TrainState *ts)
{
	TrainData  *td = &ts->td;
	int64		nheld = 0;
	int64	   *held = palloc_extended(sizeof(int64) * Max(ts->ntest, 1), MCXT_ALLOC_HUGE);
	double	   *pairs = palloc_extended(sizeof(double) * 2 * Max(ts->ntest, 1), MCXT_ALLOC_HUGE);

	for (int64 r = 0; r < ts->ntest; r++)
	{
		pairs[r * 2] = iforest_score(ts->iforest, td->x + r * ts->k, ts->scratch);
		pairs[r * 2 + 1] = td->y[r] != ts->benign;
		if (td->y[r] == ts->benign)
			held[nheld++] = r;
		if ((r & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	ts->threshold = nheld > 0
		? iforest_threshold(ts->iforest, td->x, ts->k, held, nheld, ts->opt.benign_fpr, ts->scratch)
		: ts->threshold_train;
	for (int64 r = 0; r < ts->ntest; r++)
		ts->verdicts[nids_verdict(ts->pred[r], ts->benign, pairs[r * 2], ts->threshold)]++;
	ts->auc = roc_auc(pairs, ts->ntest);
	pfree(held);
	pfree(pairs);
}

static void
report_novelty(TrainState *ts, JsonbParseState **st)
{
	const IForestParams *p = &ts->opt.iforest;

	if (ts->iforest == NULL)
	{
		report_key(st, "iforest");
		pushJsonbValue(st, WJB_VALUE, &(JsonbValue) {.type = jbvNull});
		report_string(st, "iforest_note",
					  psprintf("no class matches benign_label \"%s\"; the model has no isolation forest",
							   ts->opt.benign_label));
		return;
	}
	report_begin(st, "iforest");
	report_int(st, "trees", ts->iforest->num_trees);
	report_int(st, "sample_size", ts->iforest->sample_size);
	report_int(st, "max_depth", p->max_depth > 0 ? p->max_depth
			   : (int) ceil(log2(Max(ts->iforest->sample_size, 2))));
	report_string(st, "scale", iforest_scale_names[p->scale]);
	report_int(st, "benign_training_rows", ts->nbenign);
	report_number(st, "benign_fpr", ts->opt.benign_fpr);
	report_number(st, "threshold", ts->threshold);
	report_number(st, "roc_auc", ts->auc);
	report_end(st);
	report_begin(st, "ensemble");
	report_int(st, "attack", ts->verdicts[NIDS_VERDICT_ATTACK]);
	report_int(st, "anomaly", ts->verdicts[NIDS_VERDICT_ANOMALY]);
	report_int(st, "benign", ts->verdicts[NIDS_VERDICT_BENIGN]);
	report_end(st);
}

static void
report_training(TrainState *ts, JsonbParseState **st)
{
	const TrainOptions *opt = &ts->opt;

	report_begin(st, "params");
	report_string(st, "objective", "multi:softprob");
	report_int(st, "num_class", ts->td.nclasses);
	report_int(st, "rounds", opt->rounds);
	for (int i = 0; i < opt->nparams; i++)
		report_string(st, opt->param_keys[i], opt->param_values[i]);
	report_end(st);
	report_int(st, "seed", (int64) opt->seed);
	report_number(st, "test_size", opt->test_size);
	report_number(st, "correlation_threshold", opt->correlation_threshold);
	report_begin(st, "timings");
	report_number(st, "read_s", ts->timings[T_READ]);
	report_number(st, "preprocess_s", ts->timings[T_PREPROCESS] - ts->timings[T_READ]);
	report_number(st, "iforest_and_reference_s", ts->timings[T_IFOREST] - ts->timings[T_PREPROCESS]);
	report_number(st, "train_s", ts->timings[T_TRAIN] - ts->timings[T_IFOREST]);
	report_number(st, "total_s", ts->timings[T_TOTAL]);
	report_end(st);
}

static Jsonb *
train_report(TrainState *ts)
{
	JsonbParseState *st = NULL;
	TrainData  *td = &ts->td;

	ts->timings[T_TOTAL] = elapsed_since(ts->start);
	report_begin(&st, NULL);
	report_string(&st, "source", "nids_train");
	report_string(&st, "relation", ts->qualified);
	report_string(&st, "label_column", ts->label);
	report_names(&st, "feature_names", ts->kept, ts->k);
	report_names(&st, "class_labels", td->classes, td->nclasses);
	report_key(&st, "dropped");
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < ts->pre.ndropped; i++)
	{
		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		report_string(&st, "column", td->colnames[ts->pre.dropped[i]]);
		report_string(&st, "reason", ts->pre.reasons[i]);
		report_end(&st);
	}
	pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	report_begin(&st, "rows");
	report_int(&st, "total", ts->ntrain + ts->ntest);
	report_int(&st, "train", ts->ntrain);
	report_int(&st, "test", ts->ntest);
	report_int(&st, "null_label_skipped", td->skipped);
	report_end(&st);
	report_classifier(&st, ts->confusion, td->classes, td->nclasses, ts->ntest);
	report_novelty(ts, &st);
	report_training(ts, &st);
	return report_finish(&st);
}

/* register the version; returns its metrics, with the version */
static Jsonb *
train_register(TrainState *ts, Jsonb *metrics)
{
	ModelRecord rec;
	bytea	   *booster = palloc_extended(VARHDRSZ + ts->booster_len, MCXT_ALLOC_HUGE);

	SET_VARSIZE(booster, VARHDRSZ + ts->booster_len);
	memcpy(VARDATA(booster), ts->booster_json, ts->booster_len);
	memset(&rec, 0, sizeof(rec));
	rec.name = ts->model;
	rec.booster = booster;
	rec.native = forest_serialize(ts->forest);
	rec.feature_names = catalog_text_array(ts->kept, ts->k);
	rec.class_labels = catalog_text_array(ts->td.classes, ts->td.nclasses);
	rec.metrics = metrics;
	rec.deployed = ts->opt.deploy;
	rec.iforest = ts->iforest ? forest_serialize(ts->iforest) : NULL;
	rec.anomaly_threshold = ts->threshold;
	rec.reference = ts->reference;
	rec.benign_label = ts->opt.benign_label;
	catalog_register(&rec);
	return rec.metrics;
}

Datum
nids_train(PG_FUNCTION_ARGS)
{
	TrainState	ts;
	MemoryContext old;
	Jsonb	   *metrics;
	Jsonb	   *result;

	train_init(&ts, fcinfo);
	old = MemoryContextSwitchTo(ts.cxt);
	train_read(&ts);
	train_preprocess(&ts);
	train_gate_and_reference(&ts);
	train_classifier(&ts);
	train_evaluate(&ts);
	if (ts.iforest != NULL)
		train_novelty(&ts);
	metrics = train_register(&ts, train_report(&ts));
	MemoryContextSwitchTo(old);
	result = (Jsonb *) palloc(VARSIZE(metrics));
	memcpy(result, metrics, VARSIZE(metrics));
	MemoryContextDelete(ts.cxt);
	PG_RETURN_JSONB_P(result);
}
