/*-------------------------------------------------------------------------
 *
 * scoring.c
 *	  SQL-callable scoring functions: nids_classify, nids_classify_proba,
 *	  nids_anomaly, nids_ensemble.
 *
 * Each call finds its model through fn_extra (model_cache.c), converts the
 * float8[] into float32 with the one value mapping (vector.c) and walks the
 * native trees (forest.c): no XGBoost call and no allocation per row but
 * the result.  Buffers live in fn_mcxt and are sized for the model.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "nids.h"
#include "scoring.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(nids_classify);
PG_FUNCTION_INFO_V1(nids_classify_proba);
PG_FUNCTION_INFO_V1(nids_anomaly);
PG_FUNCTION_INFO_V1(nids_ensemble);

static void *
score_buffer(FunctionCallInfo fcinfo, void *buf, int *cap, int need, size_t size)
{
	if (buf != NULL && *cap >= need)
		return buf;
	if (buf != NULL)
		pfree(buf);
	*cap = Max(need, 1);
	return MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, size * *cap);
}

/*
 * The per-call-site state: the model and buffers large enough for it.
 */
const char *const nids_verdict_names[NIDS_NUM_VERDICTS] = {
	"attack", "anomaly", "benign"
};

ScoreState *
score_state(FunctionCallInfo fcinfo, text *model_name)
{
	ScoreState *st = (ScoreState *) fcinfo->flinfo->fn_extra;
	NidsModel  *model;

	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ScoreState));
		fcinfo->flinfo->fn_extra = st;
	}
	model = model_lookup_cached(&st->cache, model_name);
	{
		int			trees = forest_scratch_size(model->forest);

		if (model->iforest)
			trees = Max(trees, forest_scratch_size(model->iforest));
		/* sizes are compared, not pointers: a new model may reuse an address */
		st->x = score_buffer(fcinfo, st->x, &st->cap_features,
							 model->num_features, sizeof(float));
		st->margin = score_buffer(fcinfo, st->margin, &st->cap_groups,
								  model->forest->num_groups, sizeof(float));
		st->scratch = score_buffer(fcinfo, st->scratch, &st->cap_trees,
								   trees, sizeof(float));
		st->proba = score_buffer(fcinfo, st->proba, &st->cap_classes,
								 model->num_classes, sizeof(double));
		st->model = model;
	}
	return st;
}

/*
 * Class probabilities of st->x into st->proba; returns the predicted class.
 */
int
score_classify(ScoreState *st)
{
	NidsModel  *model = st->model;
	NidsForest *f = model->forest;
	int			best = 0;

	if (nids_predictor == NIDS_PREDICTOR_XGBOOST)
		xgb_predict_proba(model_xgboost(model), f, st->x, 1, st->proba);
	else
	{
		forest_predict_margin(f, st->x, st->margin, st->scratch);
		forest_transform(f, st->margin, st->proba);
	}

	if (f->objective == NIDS_OBJ_LOGISTIC)
		return st->proba[1] > 0.5 ? 1 : 0;
	if (f->objective == NIDS_OBJ_SOFTMAX && nids_predictor == NIDS_PREDICTOR_NATIVE)
	{
		/* multi:softmax predicts the arg max of the margins */
		for (int g = 1; g < f->num_groups; g++)
			if (st->margin[g] > st->margin[best])
				best = g;
		return best;
	}
	for (int g = 1; g < model->num_classes; g++)
		if (st->proba[g] > st->proba[best])
			best = g;
	return best;
}

double
score_anomaly(ScoreState *st)
{
	NidsModel  *model = st->model;

	if (model->iforest == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" version %d has no isolation forest",
						model->name, model->version),
				 errhint("Train it with nids_train, or attach one with nids_attach_benign(model, benign_flows).")));
	return iforest_score(model->iforest, st->x, st->scratch);
}

static ScoreState *
score_args(FunctionCallInfo fcinfo)
{
	ArrayType  *features = PG_GETARG_ARRAYTYPE_P(0);
	text	   *name = PG_GETARG_TEXT_PP(1);
	ScoreState *st = score_state(fcinfo, name);

	vector_from_array(features, st->model->num_features, st->model->name, st->x);
	return st;
}

Datum
nids_classify(PG_FUNCTION_ARGS)
{
	ScoreState *st = score_args(fcinfo);
	int			label = score_classify(st);

	PG_RETURN_TEXT_P(cstring_to_text(st->model->class_labels[label]));
}

Datum
nids_classify_proba(PG_FUNCTION_ARGS)
{
	ScoreState *st = score_args(fcinfo);
	int			n = st->model->num_classes;
	Datum	   *elems = palloc(sizeof(Datum) * n);

	score_classify(st);
	for (int i = 0; i < n; i++)
		elems[i] = Float8GetDatum(st->proba[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, FLOAT8OID, sizeof(float8),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

Datum
nids_anomaly(PG_FUNCTION_ARGS)
{
	ScoreState *st = score_args(fcinfo);

	PG_RETURN_FLOAT8(score_anomaly(st));
}

/*
 * The verdict of the classifier and the novelty gate together.
 */
HeapTupleHeader
score_verdict(FunctionCallInfo fcinfo, ScoreState *st)
{
	NidsModel  *model = st->model;
	double		anomaly = score_anomaly(st);
	int			label = score_classify(st);
	NidsVerdict verdict = nids_verdict(label, model->benign_class, anomaly,
									   model->anomaly_threshold);
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	HeapTuple	tuple;

	if (st->verdict_desc == NULL)
	{
		TupleDesc	desc;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("function returning a verdict called in a context that cannot accept it")));
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		st->verdict_desc = BlessTupleDesc(CreateTupleDescCopy(desc));
		MemoryContextSwitchTo(old);
	}
	values[0] = CStringGetTextDatum(model->class_labels[label]);
	values[1] = Float8GetDatum(st->proba[label]);
	values[2] = Float8GetDatum(anomaly);
	values[3] = BoolGetDatum(nids_is_novel(anomaly, model->anomaly_threshold));
	values[4] = CStringGetTextDatum(nids_verdict_names[verdict]);
	tuple = heap_form_tuple(st->verdict_desc, values, nulls);
	return tuple->t_data;
}

Datum
nids_ensemble(PG_FUNCTION_ARGS)
{
	ScoreState *st = score_args(fcinfo);

	PG_RETURN_HEAPTUPLEHEADER(score_verdict(fcinfo, st));
}
