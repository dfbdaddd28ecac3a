/*-------------------------------------------------------------------------
 *
 * train.c
 *	  nids_train: read labelled flows, preprocess, train the XGBoost
 *	  classifier, the isolation forest and the drift reference, evaluate on
 *	  a stratified hold-out split, and register a new model version.
 *
 * nids_train is a list of steps over one TrainState, each a short
 * function: the data (train_data.c), the booster (xgb.c), the gate
 * (train_novelty.c), the report (train_report.c).  Everything allocated lives in one memory
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
#include "xgb.h"

PG_FUNCTION_INFO_V1(nids_train);

/*
 * A training run of model on relid's rows labelled by label: what
 * nids_train and the adaptation (train_adapt.c) begin with.  Everything
 * the run allocates lives in ts->cxt.
 */
void
train_begin(TrainState *ts, Oid relid, const char *label, const char *model, Jsonb *options)
{
	memset(ts, 0, sizeof(*ts));
	ts->relid = relid;
	ts->label = label;
	ts->model = model;
	CheckNewModelName(ts->model);
	train_options_parse(options, &ts->opt);
	if (!catalog_has_health_reports())
	{
		/* nids 1.0's catalogue stores no gate: the isolation forest's, as 1.0 */
		ereport(NOTICE,
				(errmsg("the nids catalogue is 1.0's: the novelty gate is the isolation forest"),
				 errhint("Run ALTER EXTENSION nids UPDATE.")));
		ts->opt.novelty_method = NOVELTY_IFOREST;
	}
	INSTR_TIME_SET_CURRENT(ts->start);
	ts->cxt = AllocSetContextCreate(CurrentMemoryContext, "nids train", ALLOCSET_DEFAULT_SIZES);
	ts->td.cxt = ts->cxt;
	ts->benign = -1;
}

/* the labelled rows of the source, classes in name order */
static void
train_read(TrainState *ts)
{
	TrainData  *td = &ts->td;
	int64		nsource;

	train_data_columns(td, ts->relid, ts->label, &ts->opt, &ts->qualified);
	if (ts->current != NULL)
		train_data_extra_columns(td, ts->relid, ts->current->feature_names,
								 ts->current->num_features);
	train_data_read(td, ts->qualified, ts->label, ts->filter);
	nsource = td->n;
	if (ts->extra_n > 0)
		train_data_append(td, ts->extra_x, ts->extra_d, ts->extra_names, ts->extra_n,
						  ts->extra_label);
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
	for (int c = 0; c < td->nclasses; c++)
		if (pg_strcasecmp(td->classes[c], ts->opt.benign_label) == 0)
			ts->benign = c;
	if (ts->benign < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no row of %s has the benign label \"%s\" in column \"%s\"",
						ts->qualified, ts->opt.benign_label, ts->label),
				 errdetail("The novelty gate is trained on the benign flows, and verdicts need to know which class is benign."),
				 errhint("Set options.benign_label to the label of normal traffic.")));
	/* the extra rows' (the adaptation's local flows, benign) share */
	if (td->n > nsource && td->y[nsource] == ts->benign)
		ts->extra_share = train_data_share_class(td, nsource, ts->benign, ts->extra_share);
	ts->timings[T_READ] = elapsed_since(ts->start);
}

/*
 * How the new version will be deployed: "if_better" (given, or the
 * default for a name with a deployed version) looks the deployed version
 * up now, to score the same hold-out rows with it.
 */
static void
train_plan_deploy(TrainState *ts)
{
	ModelRecord rec;
	bool		has_deployed;

	if (ts->opt.deploy == DEPLOY_NEVER || ts->opt.deploy == DEPLOY_ALWAYS)
		return;
	has_deployed = catalog_read(ts->model, 0, 0, &rec);
	if (!has_deployed)
	{
		ts->opt.deploy = DEPLOY_ALWAYS;
		ts->deploy_reason = psprintf("model \"%s\" has no deployed version", ts->model);
		return;
	}
	ts->opt.deploy = DEPLOY_IF_BETTER;
	ts->current = model_lookup(ts->model);
	model_pin(ts->current, ts->cxt);
}

/*
 * The test rows (after the split) in the deployed version's feature order:
 * from the training columns or the extra ones read for it; a feature the
 * source lacks is missing, as it would be when scoring the source.
 */
static void
train_current_rows(TrainState *ts)
{
	TrainData  *td = &ts->td;
	int			cf = ts->current->num_features;
	float	  **src = palloc(sizeof(float *) * cf);
	int		   *stride = palloc(sizeof(int) * cf);

	for (int f = 0; f < cf; f++)
	{
		const char *name = ts->current->feature_names[f];

		src[f] = NULL;
		for (int j = 0; j < td->d; j++)
			if (strcmp(td->features[j], name) == 0)
			{
				src[f] = td->x + ts->ntrain * td->d + j;
				stride[f] = td->d;
			}
		for (int j = 0; j < td->dextra; j++)
			if (strcmp(td->extra_features[j], name) == 0)
			{
				src[f] = td->xextra + ts->ntrain * td->dextra + j;
				stride[f] = td->dextra;
			}
	}
	ts->current_coverage = 0.0;
	for (int f = 0; f < cf; f++)
		ts->current_coverage += src[f] != NULL;
	ts->current_coverage = cf > 0 ? ts->current_coverage / cf : 1.0;
	ts->current_x = palloc_extended(sizeof(float) * Max(ts->ntest, 1) * cf, MCXT_ALLOC_HUGE);
	for (int64 r = 0; r < ts->ntest; r++)
		for (int f = 0; f < cf; f++)
			ts->current_x[r * cf + f] = src[f] ? src[f][r * stride[f]] : NAN;
	if (td->xextra != NULL)
		pfree(td->xextra);
	td->xextra = NULL;
	pfree(src);
	pfree(stride);
}

/* the split, then the feature selection on the training rows */
static void
train_preprocess(TrainState *ts)
{
	TrainData  *td = &ts->td;

	ts->ntrain = train_data_split(td, ts->opt.test_size, ts->opt.seed);
	ts->ntest = td->n - ts->ntrain;
	if (ts->current != NULL)
		train_current_rows(ts);
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
 * back: the isolation forest and the benign prototypes on the benign ones,
 * the training distributions for ks_drift (all rows, and the benign ones),
 * and, when the hold-out has no benign row (test_size 0), a sample of the
 * benign training rows to calibrate the gate on.
 */
#define CALIBRATION_ROWS	20000

static void
train_gate_and_reference(TrainState *ts)
{
	TrainData  *td = &ts->td;
	int64	   *rows = palloc_extended(sizeof(int64) * Max(ts->ntrain, 1), MCXT_ALLOC_HUGE);
	bool		held_benign = false;

	for (int64 r = ts->ntrain; r < td->n && !held_benign; r++)
		held_benign = td->y[r] == ts->benign;
	for (int64 r = 0; r < ts->ntrain; r++)
		if (td->y[r] == ts->benign)
			rows[ts->nbenign++] = r;
	ts->iforest = iforest_train(td->x, ts->k, rows, ts->nbenign, &ts->opt.iforest);
	ts->gate = novelty_train(td->x, ts->k, rows, ts->nbenign, ts->opt.prototypes, ts->opt.seed);
	ts->benign_reference = drift_reference_build(td->x, ts->k, rows, ts->nbenign, ts->opt.seed);
	if (!held_benign)
	{
		ts->ncalib = Min(ts->nbenign, CALIBRATION_ROWS);
		ts->calib_x = palloc_extended(sizeof(float) * Max(ts->ncalib, 1) * ts->k, MCXT_ALLOC_HUGE);
		for (int64 i = 0; i < ts->ncalib; i++)
			memcpy(ts->calib_x + i * ts->k, td->x + rows[i * ts->nbenign / ts->ncalib] * ts->k,
				   sizeof(float) * ts->k);
	}
	for (int64 r = 0; r < ts->ntrain; r++)
		rows[r] = r;
	ts->reference = drift_reference_build(td->x, ts->k, rows, ts->ntrain, ts->opt.seed);
	pfree(rows);
	ts->timings[T_IFOREST] = elapsed_since(ts->start);
}

/* once XGBoost has its training matrix, td keeps the test rows only */
static void
keep_test_rows(void *arg)
{
	TrainState *ts = (TrainState *) arg;

	train_data_keep_test_rows(&ts->td, ts->ntrain, ts->k);
}

/* the booster, and its native form; td keeps the test rows only */
static void
train_classifier(TrainState *ts)
{
	DocFormat	format;
	DocValue   *doc;
	char	   *error;

	XgbTrainSpec spec = {
		.nclasses = ts->td.nclasses,
		.rounds = ts->opt.rounds,
		.seed = ts->opt.seed,
		.nparams = ts->opt.nparams,
		.param_keys = ts->opt.param_keys,
		.param_values = ts->opt.param_values,
		.tree_method = train_param(&ts->opt, "tree_method"),
		.max_bin = train_param(&ts->opt, "max_bin"),
		.row_weight = ts->td.w,
		.matrix_built = keep_test_rows,
		.matrix_built_arg = ts,
	};

	ts->booster_json = xgb_train(ts->td.x, ts->td.y, ts->ntrain, ts->k, &spec,
								 &ts->booster_len);
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
	ts->uncertainty = palloc_extended(sizeof(double) * Max(ts->ntest, 1), MCXT_ALLOC_HUGE);
	/* one scratch area for both forests */
	ts->scratch = palloc(sizeof(float) * Max(forest_scratch_size(ts->forest),
											 ts->iforest ? forest_scratch_size(ts->iforest) : 0));
	for (int64 r = 0; r < ts->ntest; r++)
	{
		int			best = forest_predict_class(ts->forest, nclasses, td->x + r * ts->k,
												margin, proba, ts->scratch);

		ts->pred[r] = best;
		ts->uncertainty[r] = classifier_uncertainty(proba, ts->benign);
		ts->confusion[td->y[r] * nclasses + best]++;
		nids_check_interrupts(r);
	}
}

/*
 * Calibrate the gate (and the isolation forest's own threshold) on the
 * held-out benign flows, or on the benign training rows kept for it.
 */
static void
train_calibrate(TrainState *ts)
{
	TrainData  *td = &ts->td;
	int64		cap = ts->calib_x ? ts->ncalib : ts->ntest;
	GateSamples samples;
	float	   *z = palloc(sizeof(float) * ts->gate->padded_features);
	float	   *margin = palloc(sizeof(float) * ts->forest->num_groups);
	double	   *proba = palloc(sizeof(double) * td->nclasses);

	gate_samples_init(&samples, cap);
	for (int64 r = 0; r < cap; r++)
	{
		const float *x;
		bool		alarm;
		double		uncertainty;
		NoveltyInputs in;

		if (ts->calib_x)
		{
			x = ts->calib_x + r * ts->k;
			alarm = forest_predict_class(ts->forest, td->nclasses, x, margin, proba,
										 ts->scratch) != ts->benign;
			uncertainty = classifier_uncertainty(proba, ts->benign);
		}
		else if (td->y[r] == ts->benign)
		{
			x = td->x + r * ts->k;
			alarm = ts->pred[r] != ts->benign;
			uncertainty = ts->uncertainty[r];
		}
		else
			continue;
		novelty_inputs(ts->gate, ts->iforest, x, uncertainty, true, z, ts->scratch, &in);
		gate_samples_add(&samples, &in, alarm);
		nids_check_interrupts(r);
	}
	gate_calibrate(ts->gate, ts->opt.novelty_method, &samples, ts->opt.benign_fpr,
				   ts->calib_x ? "benign training flows (no benign flow held out)"
				   : "held-out benign flows", &ts->calibration);
}

/*
 * The gate on the whole hold-out: the ensemble's verdicts, and the
 * isolation forest's ROC-AUC, benign against attack.
 */
static void
train_novelty(TrainState *ts)
{
	TrainData  *td = &ts->td;
	double	   *pairs = palloc_extended(sizeof(double) * 2 * Max(ts->ntest, 1), MCXT_ALLOC_HUGE);
	float	   *z = palloc(sizeof(float) * ts->gate->padded_features);

	train_calibrate(ts);
	for (int64 r = 0; r < ts->ntest; r++)
	{
		NoveltyInputs in;
		bool		novel;

		novelty_inputs(ts->gate, ts->iforest, td->x + r * ts->k, ts->uncertainty[r], true,
					   z, ts->scratch, &in);
		(void) novelty_value(ts->gate, in.anomaly, in.uncertainty, in.distance, &novel);
		pairs[r * 2] = in.anomaly;
		pairs[r * 2 + 1] = td->y[r] != ts->benign;
		ts->verdicts[nids_verdict(ts->pred[r], ts->benign, novel)]++;
		nids_check_interrupts(r);
	}
	ts->auc = roc_auc(pairs, ts->ntest);
	pfree(pairs);
}

/* whether the two class lists hold the same labels */
static bool
same_classes(char **a, int na, char **b, int nb)
{
	if (na != nb)
		return false;
	for (int i = 0; i < na; i++)
	{
		bool		found = false;

		for (int j = 0; j < nb && !found; j++)
			found = strcmp(a[i], b[j]) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* the deployed version's macro F1 on the hold-out rows */
static double
current_macro_f1(TrainState *ts)
{
	NidsModel  *cur = ts->current;
	TrainData  *td = &ts->td;
	int			nclasses = td->nclasses;
	int		   *remap = palloc(sizeof(int) * cur->num_classes);
	int64	   *confusion = palloc0(sizeof(int64) * nclasses * nclasses);
	float	   *margin = palloc(sizeof(float) * cur->forest->num_groups);
	double	   *proba = palloc(sizeof(double) * cur->num_classes);
	float	   *scratch = palloc(sizeof(float) * forest_scratch_size(cur->forest));

	for (int c = 0; c < cur->num_classes; c++)
		for (int n = 0; n < nclasses; n++)
			if (strcmp(cur->class_labels[c], td->classes[n]) == 0)
				remap[c] = n;
	for (int64 r = 0; r < ts->ntest; r++)
	{
		int			best = forest_predict_class(cur->forest, cur->num_classes,
												ts->current_x + r * cur->num_features,
												margin, proba, scratch);

		confusion[td->y[r] * nclasses + remap[best]]++;
		nids_check_interrupts(r);
	}
	return macro_f1_judged(confusion, nclasses, NIDS_MIN_JUDGED_SUPPORT);
}

/* the classes of the hold-out with at least NIDS_MIN_JUDGED_SUPPORT rows */
static int
judged_classes(TrainState *ts)
{
	int			n = 0;

	for (int c = 0; c < ts->td.nclasses; c++)
	{
		int64		support = 0;

		for (int o = 0; o < ts->td.nclasses; o++)
			support += ts->confusion[c * ts->td.nclasses + o];
		n += support >= NIDS_MIN_JUDGED_SUPPORT;
	}
	return n;
}

/* the others, by name, comma-separated ("" when none) */
static char *
too_few_classes(TrainState *ts)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int c = 0; c < ts->td.nclasses; c++)
	{
		int64		support = 0;

		for (int o = 0; o < ts->td.nclasses; o++)
			support += ts->confusion[c * ts->td.nclasses + o];
		if (support < NIDS_MIN_JUDGED_SUPPORT)
			appendStringInfo(&buf, "%s%s (%lld)", buf.len ? ", " : "", ts->td.classes[c],
							 (long long) support);
	}
	return buf.data;
}

/* options.deploy: whether the new version replaces the deployed one, and why */
static void
train_decide_deploy(TrainState *ts)
{
	NidsModel  *cur = ts->current;
	double		mine,
				theirs;

	if (ts->opt.deploy != DEPLOY_IF_BETTER)
	{
		ts->deploy = ts->opt.deploy == DEPLOY_ALWAYS;
		if (ts->deploy_reason == NULL)
			ts->deploy_reason = ts->deploy ? "options.deploy is true" : "options.deploy is false";
		return;
	}
	ts->deploy = false;
	if (!same_classes(ts->td.classes, ts->td.nclasses, cur->class_labels, cur->num_classes))
	{
		ts->deploy_reason = psprintf("the deployed version %d knows other classes (%d, this one %d); deploy it with nids_deploy if that is intended",
									 cur->version, cur->num_classes, ts->td.nclasses);
		return;
	}
	if (ts->ntest == 0)
	{
		ts->deploy_reason = "options.deploy \"if_better\" needs hold-out rows (test_size > 0) to compare with the deployed version";
		return;
	}
	/* a version that cannot score the data it is judged on is not better */
	if (ts->current_coverage < nids_min_feature_coverage)
	{
		ts->deploy = true;
		ts->deploy_reason = psprintf("the deployed version %d cannot score %s: it has %.0f%% of its features there (nids.min_feature_coverage %.0f%%)",
									 cur->version, ts->qualified, 100.0 * ts->current_coverage,
									 100.0 * nids_min_feature_coverage);
		return;
	}
	mine = macro_f1_judged(ts->confusion, ts->td.nclasses, NIDS_MIN_JUDGED_SUPPORT);
	theirs = current_macro_f1(ts);
	ts->deploy = mine >= theirs || isnan(theirs);
	ts->deploy_reason = psprintf("hold-out macro F1 %.4f %s %.4f of the deployed version %d on the same rows (over the %d classes with at least %d hold-out rows%s%s)",
								 mine, ts->deploy ? ">=" : "<", theirs, cur->version,
								 judged_classes(ts), NIDS_MIN_JUDGED_SUPPORT,
								 too_few_classes(ts)[0] ? "; too few to judge: " : "",
								 too_few_classes(ts));
}

/* register the version with its full report; returns the version */
int32
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
	rec.deployed = ts->deploy;
	rec.iforest = forest_serialize(ts->iforest);
	rec.anomaly_threshold = ts->calibration.iforest_threshold;
	rec.novelty = novelty_serialize(ts->gate);
	rec.reference = ts->reference;
	rec.benign_reference = ts->benign_reference;
	rec.benign_label = ts->opt.benign_label;
	rec.benign_threshold = ts->benign_threshold;
	catalog_register(&rec);
	return rec.version;
}

/*
 * Every step of a run begun by train_begin, but registering: the data, the
 * preprocessing, the gate and references, the booster, the hold-out and
 * the deployment decision.  Runs in ts->cxt.
 */
void
train_steps(TrainState *ts)
{
	train_plan_deploy(ts);
	train_read(ts);
	train_preprocess(ts);
	train_gate_and_reference(ts);
	train_classifier(ts);
	train_evaluate(ts);
	train_novelty(ts);
	train_decide_deploy(ts);
}

Datum
nids_train(PG_FUNCTION_ARGS)
{
	TrainState	ts;
	MemoryContext old;
	Jsonb	   *short_result;
	Jsonb	   *result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source, label_column and model must not be NULL")));
	train_begin(&ts, PG_GETARG_OID(0), NameStr(*PG_GETARG_NAME(1)),
				text_to_cstring(PG_GETARG_TEXT_PP(2)), PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
	old = MemoryContextSwitchTo(ts.cxt);
	train_steps(&ts);
	short_result = train_short_result(&ts, train_register(&ts, train_report(&ts)));
	MemoryContextSwitchTo(old);
	result = (Jsonb *) palloc(VARSIZE(short_result));
	memcpy(result, short_result, VARSIZE(short_result));
	MemoryContextDelete(ts.cxt);
	PG_RETURN_JSONB_P(result);
}
