/*-------------------------------------------------------------------------
 *
 * scoring.c
 *	  SQL-callable scoring functions: nids_classify, nids_classify_proba,
 *	  nids_anomaly, nids_ensemble, and nids_features, which builds their
 *	  input from a row.
 *
 * Each call finds its model through fn_extra (model_cache.c), converts the
 * float8[] into float32 with the one value mapping (flow_map.c) and walks
 * the native trees (model_eval.c): no XGBoost call and no allocation per
 * row but the result.  Buffers live in fn_mcxt and are sized for the model.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "flow.h"
#include "scoring.h"
#include "xgb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(nids_classify);
PG_FUNCTION_INFO_V1(nids_classify_proba);
PG_FUNCTION_INFO_V1(nids_anomaly);
PG_FUNCTION_INFO_V1(nids_ensemble);
PG_FUNCTION_INFO_V1(nids_features);
PG_FUNCTION_INFO_V1(nids_class_probabilities);
PG_FUNCTION_INFO_V1(nids_novelty);

static void *
score_buffer(MemoryContext mcxt, void *buf, int *cap, int need, size_t size)
{
	if (buf != NULL && *cap >= need)
		return buf;
	if (buf != NULL)
		pfree(buf);
	*cap = Max(need, 1);
	return MemoryContextAlloc(mcxt, size * *cap);
}

/*
 * Find the model of this call and make st's buffers large enough for it
 * (in mcxt, which outlives the call: fn_mcxt).  st starts zeroed.
 */
void
score_prepare(ScoreState *st, MemoryContext mcxt, text *model_name, int ready)
{
	score_state_for(st, model_lookup_cached(&st->cache, mcxt, model_name,
											ready | MODEL_READY_PREDICTOR), mcxt);
}

/* st's buffers sized for model (which the caller holds), in mcxt */
void
score_state_for(ScoreState *st, NidsModel *model, MemoryContext mcxt)
{
	int			trees = forest_scratch_size(model->forest);

	if (model->iforest)
		trees = Max(trees, forest_scratch_size(model->iforest));
	/* sizes are compared, not pointers: a new model may reuse an address */
	st->x = score_buffer(mcxt, st->x, &st->cap_features,
						 model->num_features, sizeof(float));
	st->margin = score_buffer(mcxt, st->margin, &st->cap_groups,
							  model->forest->num_groups, sizeof(float));
	st->scratch = score_buffer(mcxt, st->scratch, &st->cap_trees,
							   trees, sizeof(float));
	st->proba = score_buffer(mcxt, st->proba, &st->cap_classes,
							 model->num_classes, sizeof(double));
	if (model->novelty)
		st->z = score_buffer(mcxt, st->z, &st->cap_z,
							 model->novelty->padded_features, sizeof(float));
	st->model = model;
}

/*
 * The class a version decides from its class probabilities proba, best the
 * likeliest: with a decision threshold tau (1.3's nids_adapt) the flow is
 * benign when P(benign) >= tau, else the likeliest other class, whatever
 * the likeliest class is; without one, best.  Every verdict of the version,
 * and the calibration of a gate for it (train_attach.c), decides so.
 */
int
score_tau_label(const NidsModel *model, const double *proba, int best)
{
	int			b = model->benign_class;
	int			alt = -1;

	if (b < 0 || model->benign_threshold <= 0)
		return best;
	if (proba[b] >= model->benign_threshold)
		return b;
	if (best != b)
		return best;
	for (int c = 0; c < model->num_classes; c++)
		if (c != b && (alt < 0 || proba[c] > proba[alt]))
			alt = c;
	return alt < 0 ? best : alt;
}

/*
 * Class probabilities of st->x into st->proba; returns the predicted class
 * (by the version's tau where it has one).
 */
int
score_classify(ScoreState *st)
{
	NidsModel  *model = st->model;
	NidsForest *f = model->forest;
	int			best;

	if (nids_predictor == NIDS_PREDICTOR_NATIVE)
		best = forest_predict_class(f, model->num_classes, st->x, st->margin, st->proba,
									st->scratch);
	else
	{
		xgb_predict_proba(model_xgboost(model), f, st->x, 1, st->proba);
		best = forest_pick_class(f, model->num_classes, NULL, st->proba);
	}
	return score_tau_label(model, st->proba, best);
}

/*
 * The predicted class of st->x alone: st->proba is not set (the forest may
 * stop adding trees once the class is settled, forest_predict_label), but
 * for a version with tau, whose class needs P(benign).
 */
int
score_label(ScoreState *st)
{
	NidsModel  *model = st->model;

	if (nids_predictor == NIDS_PREDICTOR_NATIVE && !(model->benign_threshold > 0))
		return forest_predict_label(model->forest, model->num_classes, st->x, st->margin,
									st->proba, st->scratch);
	return score_classify(st);
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

/*
 * The novelty of st->x, already classified (score_classify): the gate's
 * score over its threshold, and *novel when it is above.  *anomaly is the
 * isolation forest's score, NaN until computed: the gate computes it only
 * when it uses it.  A version without a gate (nids 1.0) is gated by its
 * isolation forest and anomaly_threshold, as 1.0 did.
 */
double
score_novelty(ScoreState *st, double *anomaly, bool *novel)
{
	NidsModel  *model = st->model;
	NoveltyGate *g = model->novelty;
	NoveltyInputs in;

	if (g == NULL || g->method == NOVELTY_IFOREST)
	{
		double		threshold = g ? g->threshold : model->anomaly_threshold;

		if (isnan(*anomaly))
			*anomaly = score_anomaly(st);
		*novel = nids_is_novel(*anomaly, threshold);
		return *anomaly / threshold;
	}
	novelty_inputs(g, NULL, st->x, classifier_uncertainty(st->proba, model->benign_class),
				   false, st->z, st->scratch, &in);
	return novelty_value(g, *anomaly, in.uncertainty, in.distance, novel);
}

/*
 * The verdict alone of st->x, as nids_ensemble's: the classifier, and the
 * gate where the model has one (a version without is judged by its
 * classifier).
 */
NidsVerdict
score_verdict_only(ScoreState *st)
{
	NidsModel  *model = st->model;
	double		anomaly = NAN;
	bool		novel = false;
	int			label = score_classify(st);

	if (model->novelty != NULL || model->iforest != NULL)
		(void) score_novelty(st, &anomaly, &novel);
	return nids_verdict(label, model->benign_class, novel);
}

static ScoreState *
score_args(FunctionCallInfo fcinfo)
{
	ArrayType  *features = PG_GETARG_ARRAYTYPE_P(0);
	text	   *name = PG_GETARG_TEXT_PP(1);
	ScoreState *st = (ScoreState *) fcinfo->flinfo->fn_extra;

	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ScoreState));
		fcinfo->flinfo->fn_extra = st;
	}
	score_prepare(st, fcinfo->flinfo->fn_mcxt, name, 0);

	vector_from_array(features, st->model->num_features, st->model->name, st->x);
	return st;
}

Datum
nids_classify(PG_FUNCTION_ARGS)
{
	ScoreState *st = score_args(fcinfo);
	int			label = score_label(st);

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

/*
 * Materialize mode for the per-flow set-returning functions, with the row
 * type the executor expects when it gives one (calls in FROM): that spares
 * reading the function's OUT parameters from the catalogue on every flow.
 */
void
score_init_srf(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		expected = rsinfo != NULL && IsA(rsinfo, ReturnSetInfo) &&
		rsinfo->expectedDesc != NULL;

	InitMaterializedSRF(fcinfo, expected ? MAT_SRF_USE_EXPECTED_DESC : 0);
}

/*
 * nids_class_probabilities: (label, probability) rows, most probable
 * first (ties in class_labels order).
 */
Datum
nids_class_probabilities(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ScoreState *st;
	int			n;
	int		   *order;

	score_init_srf(fcinfo);
	st = score_args(fcinfo);
	n = st->model->num_classes;
	score_classify(st);
	order = palloc(sizeof(int) * n);
	for (int i = 0; i < n; i++)
	{
		int			k = i;

		/* insertion: stable, and n is small */
		while (k > 0 && st->proba[order[k - 1]] < st->proba[i])
		{
			order[k] = order[k - 1];
			k--;
		}
		order[k] = i;
	}
	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(st->model->class_labels[order[i]]);
		values[1] = Float8GetDatum(st->proba[order[i]]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
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
	bool		novel;
	double		novelty = score_novelty(st, &anomaly, &novel);
	NidsVerdict verdict = nids_verdict(label, model->benign_class, novel);
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};
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
	values[3] = BoolGetDatum(novel);
	if (st->verdict_desc->natts == 6)
	{
		/* 1.1: novelty after novel */
		values[4] = Float8GetDatum(novelty);
		values[5] = CStringGetTextDatum(nids_verdict_names[verdict]);
	}
	else
		values[4] = CStringGetTextDatum(nids_verdict_names[verdict]);
	tuple = heap_form_tuple(st->verdict_desc, values, nulls);
	return tuple->t_data;
}

/*
 * nids_novelty: the gate's score over its threshold (novel: above 1).
 */
Datum
nids_novelty(PG_FUNCTION_ARGS)
{
	ScoreState *st = score_args(fcinfo);
	double		anomaly = NAN;
	bool		novel;

	score_classify(st);
	PG_RETURN_FLOAT8(score_novelty(st, &anomaly, &novel));
}

Datum
nids_ensemble(PG_FUNCTION_ARGS)
{
	ScoreState *st = score_args(fcinfo);

	PG_RETURN_HEAPTUPLEHEADER(score_verdict(fcinfo, st));
}

/*
 * nids_features(record, model): the model's vector from any row, by
 * canonical column name.  The map is built once per call site, row type
 * and model version.
 */
typedef struct FeaturesState
{
	FnModelCache cache;
	FeatureMap	map;
	NidsModel  *model;			/* the map was built for this model ... */
	int32		version;		/* ... at this version ... */
	Oid			tupType;		/* ... and this row type */
	int32		tupTypmod;
	MemoryContext cxt;			/* holds the map; reset on rebuild */
	double	   *raw;
	bool	   *missing;
	Datum	   *elems;
} FeaturesState;

static void
features_rebuild(FeaturesState *st, NidsModel *model, Oid tupType, int32 tupTypmod)
{
	TupleDesc	desc;
	int			nf = model->num_features;

	MemoryContextReset(st->cxt);
	st->model = NULL;
	desc = lookup_rowtype_tupdesc_copy(tupType, tupTypmod);
	feature_map_build(&st->map, model->feature_names, nf, model->name, desc, st->cxt);
	pfree(desc);
	feature_map_check_coverage(&st->map, model->feature_names, model->name);
	st->raw = MemoryContextAlloc(st->cxt, sizeof(double) * nf);
	st->missing = MemoryContextAlloc(st->cxt, sizeof(bool) * nf);
	st->elems = MemoryContextAlloc(st->cxt, sizeof(Datum) * nf);
	st->model = model;
	st->version = model->version;
	st->tupType = tupType;
	st->tupTypmod = tupTypmod;
}

Datum
nids_features(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec = PG_GETARG_HEAPTUPLEHEADER(0);
	text	   *name = PG_GETARG_TEXT_PP(1);
	FeaturesState *st = (FeaturesState *) fcinfo->flinfo->fn_extra;
	Oid			tupType = HeapTupleHeaderGetTypeId(rec);
	int32		tupTypmod = HeapTupleHeaderGetTypMod(rec);
	NidsModel  *model;
	HeapTupleData tuple;
	int			nf;
	int			dims[1];
	int			lbs[1] = {1};

	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FeaturesState));
		st->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "nids_features map",
										ALLOCSET_SMALL_SIZES);
		fcinfo->flinfo->fn_extra = st;
	}
	model = model_lookup_cached(&st->cache, fcinfo->flinfo->fn_mcxt, name, 0);
	nf = model->num_features;
	if (st->model != model || st->version != model->version ||
		st->tupType != tupType || st->tupTypmod != tupTypmod)
		features_rebuild(st, model, tupType, tupTypmod);

	tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = rec;
	feature_map_fill(&st->map, &tuple, NULL, st->raw, st->missing);
	for (int f = 0; f < nf; f++)
		st->elems[f] = Float8GetDatum(st->raw[f]);
	dims[0] = nf;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(st->elems, st->missing, 1, dims, lbs,
											 FLOAT8OID, sizeof(float8),
											 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}
