/*-------------------------------------------------------------------------
 *
 * explain.c
 *	  Why was this flow flagged: nids_contributions (exact TreeSHAP values
 *	  of one class, model_shap.c), nids_explain (the largest of them for the
 *	  predicted class, with the feature values) and nids_explain_novelty
 *	  (which features made the novelty gate call the flow novel).
 *
 * Nothing here runs unless asked for: the scoring functions do not compute
 * explanations.  With nids.predictor = xgboost (superuser, for
 * verification) nids_contributions returns XGBoost's own pred_contribs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "flow.h"
#include "funcapi.h"
#include "explain.h"
#include "scoring.h"
#include "xgb.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(nids_contributions);
PG_FUNCTION_INFO_V1(nids_explain);
PG_FUNCTION_INFO_V1(nids_explain_novelty);

/*
 * the call's model and vector (arguments 0 and 1, which must not be NULL);
 * *raw: the vector as given, NULL elements NaN
 */
ScoreState *
explain_args(FunctionCallInfo fcinfo, double **raw)
{
	ArrayType  *features;
	ScoreState *st = (ScoreState *) fcinfo->flinfo->fn_extra;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("features and model must not be NULL")));
	features = PG_GETARG_ARRAYTYPE_P(0);
	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ScoreState));
		fcinfo->flinfo->fn_extra = st;
	}
	score_prepare(st, fcinfo->flinfo->fn_mcxt, PG_GETARG_TEXT_PP(1),
				  MODEL_READY_REFERENCES | MODEL_READY_NAMES);
	*raw = palloc(sizeof(double) * st->model->num_features);
	vector_from_array_raw(features, st->model->num_features, st->model->name, st->x, *raw);
	return st;
}

/* the class named by label, or 22023 */
static int
class_index(NidsModel *model, const char *label)
{
	for (int c = 0; c < model->num_classes; c++)
		if (strcmp(model->class_labels[c], label) == 0)
			return c;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("model \"%s\" has no class \"%s\"", model->name, label),
			 errhint("Its classes are in nids.models.class_labels.")));
	return -1;					/* not reached */
}

/*
 * The contributions of every feature to class c's margin, the bias last.
 * binary:logistic has one margin, the positive class's (c = 1); the
 * negative class's is its negation.
 */
double *
explain_contributions(ScoreState *st, int c)
{
	NidsModel  *model = st->model;
	NidsForest *f = model->forest;
	double	   *phi = palloc(sizeof(double) * (model->num_features + 1));
	bool		negate = false;
	int			g = c;

	if (f->objective == NIDS_OBJ_LOGISTIC)
	{
		negate = c == 0;
		g = 0;
	}
	if (nids_predictor == NIDS_PREDICTOR_XGBOOST)
		xgb_predict_contribs(model_xgboost(model), f, st->x, g, phi);
	else if (!forest_contributions(f, model->context, st->x, g, phi))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" version %d has no node covers, which explanations need",
						model->name, model->version),
				 errdetail("Versions stored by nids 1.0 keep the trees without XGBoost's sum_hessian."),
				 errhint("Train the model again, or import its XGBoost document again with nids_import_xgboost.")));
	if (negate)
		for (int j = 0; j <= model->num_features; j++)
			phi[j] = -phi[j];
	return phi;
}

Datum
nids_contributions(PG_FUNCTION_ARGS)
{
	double	   *raw;
	ScoreState *st = explain_args(fcinfo, &raw);
	int			c = PG_ARGISNULL(2) ? score_label(st)
		: class_index(st->model, text_to_cstring(PG_GETARG_TEXT_PP(2)));
	int			n = st->model->num_features + 1;
	double	   *phi = explain_contributions(st, c);
	Datum	   *elems = palloc(sizeof(Datum) * n);

	for (int j = 0; j < n; j++)
		elems[j] = Float8GetDatum(phi[j]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, FLOAT8OID, sizeof(float8),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * top rows (feature, value, term) of terms[n], largest |term| first (by
 * value: largest term first)
 */
static void
put_top(FunctionCallInfo fcinfo, NidsModel *model, const double *raw,
		const double *terms, int n, int top, bool by_value)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			keep = Min(top, n);
	int		   *order = palloc(sizeof(int) * Max(keep, 1));
	int			kept = 0;

	/* the names as text, made once per model version (MODEL_READY_NAMES) */
	Assert(model->feature_text != NULL);

	/*
	 * The first keep of a stable sort: insertion into the kept rows, where
	 * a row goes after every row it does not beat.
	 */
	for (int i = 0; i < n; i++)
	{
		int			k = kept;

		while (k > 0 && (by_value ? terms[order[k - 1]] < terms[i]
						 : fabs(terms[order[k - 1]]) < fabs(terms[i])))
			k--;
		if (k == keep)
			continue;
		kept = Min(kept + 1, keep);
		for (int m = kept - 1; m > k; m--)
			order[m] = order[m - 1];
		order[k] = i;
	}
	for (int i = 0; i < keep; i++)
	{
		int			j = order[i];
		Datum		values[3];
		bool		nulls[3] = {false, isnan(raw[j]), false};

		values[0] = model->feature_text[j];
		values[1] = Float8GetDatum(raw[j]);
		values[2] = Float8GetDatum(terms[j]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

static int
top_arg(FunctionCallInfo fcinfo)
{
	int			top = PG_ARGISNULL(2) ? 5 : PG_GETARG_INT32(2);

	if (top < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top must be at least 1, not %d", top)));
	return top;
}

/*
 * nids_explain: the features that moved the predicted class's margin most,
 * with their values.
 */
Datum
nids_explain(PG_FUNCTION_ARGS)
{
	double	   *raw;
	ScoreState *st;
	int			top = top_arg(fcinfo);

	score_init_srf(fcinfo);
	st = explain_args(fcinfo, &raw);
	put_top(fcinfo, st->model, raw, explain_contributions(st, score_label(st)),
			st->model->num_features, top, false);
	return (Datum) 0;
}

/*
 * The isolation forest's reasons: per feature, the share of the splits on
 * the flow's path through each tree that test it (the splits that
 * isolated it).
 */
static double *
iforest_terms(NidsModel *model, const float *x)
{
	const NidsForest *f = model->iforest;
	double	   *terms = palloc0(sizeof(double) * model->num_features);
	int64		splits = 0;

	for (int t = 0; t < f->num_trees; t++)
	{
		const NidsNode *tree = f->nodes + f->tree_offset[t];
		int			i = 0;

		while (tree[i].left != i)
		{
			int			feature = (int) (tree[i].feature_dl & NIDS_FEATURE_MASK);
			float		v = x[feature];

			terms[feature] += 1;
			splits++;
			if (isnan(v))
				i = (tree[i].feature_dl & NIDS_DEFAULT_LEFT) ? tree[i].left : tree[i].left + 1;
			else
				i = v < tree[i].threshold ? tree[i].left : tree[i].left + 1;
		}
	}
	for (int j = 0; j < model->num_features && splits > 0; j++)
		terms[j] /= splits;
	return terms;
}

/*
 * The novelty gate's per-feature terms for st->x: prototypes and
 * combined: the terms (z_j - p_j)^2 of the squared distance to the
 * nearest benign prototype; iforest: the share of the isolating splits on
 * each feature; uncertainty and joint's uncertainty part: the
 * contributions to the benign class's margin, negated (what made the
 * classifier less sure it is benign).
 */
double *
explain_gate_terms(ScoreState *st)
{
	NidsModel  *model = st->model;
	NoveltyGate *g = model->novelty;
	double	   *terms;

	if (g == NULL || g->method == NOVELTY_IFOREST)
	{
		if (model->iforest == NULL)
			(void) score_anomaly(st);	/* the error a gate-less model gives */
		terms = iforest_terms(model, st->x);
	}
	else if (novelty_method_uses_prototypes(g->method))
	{
		int			c;

		novelty_transform(g, st->x, st->z);
		(void) novelty_prototype_distance(g, st->z, &c);
		terms = palloc(sizeof(double) * model->num_features);
		for (int j = 0; j < model->num_features; j++)
		{
			double		diff = st->z[j] - g->prototypes[(int64) c * g->num_features + j];

			terms[j] = diff * diff;
		}
	}
	else
	{
		terms = explain_contributions(st, model->benign_class >= 0 ? model->benign_class : 0);
		for (int j = 0; j < model->num_features; j++)
			terms[j] = -terms[j];
	}
	return terms;
}

/*
 * nids_explain_novelty: why the gate finds the flow novel.  prototypes and
 * combined: the per-feature terms (z_j - p_j)^2 of the squared distance to
 * the nearest benign prototype; iforest: the share of the isolating
 * splits on each feature; uncertainty: the contributions to the benign
 * class's margin, negated (what made the classifier less sure it is
 * benign).
 */
Datum
nids_explain_novelty(PG_FUNCTION_ARGS)
{
	double	   *raw;
	ScoreState *st;
	NidsModel  *model;
	double	   *terms;
	int			top = top_arg(fcinfo);

	score_init_srf(fcinfo);
	st = explain_args(fcinfo, &raw);
	model = st->model;
	terms = explain_gate_terms(st);
	put_top(fcinfo, model, raw, terms, model->num_features, top, true);
	return (Datum) 0;
}
