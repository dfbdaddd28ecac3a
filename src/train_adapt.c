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
 *	  a seeded split: two thirds train, a third calibrates the gate and
 *	  the decision threshold;
 *	- retrained (the version's training source is known and there): the
 *	  features the local flows lack are dropped, and those whose local
 *	  distribution is far from the training flows (KS above drop_ks, all
 *	  training flows or the benign ones) but for the categorical ones, and
 *	  the classifier is trained again on the source without a seeded fifth,
 *	  kept to measure attack recall, its benign flows kept or dropped
 *	  (options.source_benign), with the local training flows as benign
 *	  (as many as they are, or options.local_share of the benign class's
 *	  weight);
 *	- recalibrated (no source: an imported version): the classifier stays;
 *	- either way the gate and the drift references are fitted to the local
 *	  calibration flows (attach_fit), and tau, the threshold on P(benign)
 *	  every verdict of the version uses, is set so that the whole verdict
 *	  flags options.target_flagged of new flows like them (the gate a
 *	  quarter of it); one version is registered:
 *	  version numbers follow each other, and the version's metrics carry
 *	  its hold-out quality and the adaptation's report;
 *	- measured: the calibration third before, and after crossed (the gate
 *	  and tau calibrated on one half, counted on the other), the source's
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
#include "train_adapt.h"
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

/*
 * A training run of the classifier again (train_begin): the source without
 * its held-out fifth, its benign flows kept or not, only the kept features,
 * the version's own XGBoost parameters and seed (*xgb, *seed: as the
 * adapted version records them), and the local flows local[rows[0 ..
 * nrows-1]] added as benign flows.
 */
static void
adapt_train_begin(TrainState *ts, NidsModel *model, Oid src, const char *label_col,
				  const char *benign, Jsonb *metrics, bool keep_source_benign, char **keep,
				  int nkeep, const Rows *local, const int64 *rows, int64 nrows, char **xgb,
				  int64 *seed)
{
	StringInfoData topts;
	Relation	rel;
	TupleDesc	desc;
	char	   *model_seed = adapt_metric_text(metrics, "adaptation", "seed");

	if (model_seed == NULL)
		model_seed = adapt_metric_text(metrics, "seed", NULL);
	*xgb = adapt_xgboost_options(metrics);
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
	ts->extra_x = adapt_rows_part(local, model->feature_names, rows, 0, nrows,
								  model->feature_names, model->num_features);
	ts->extra_d = model->num_features;
	ts->extra_names = model->feature_names;
	ts->extra_n = nrows;
	ts->extra_label = benign;
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
						  keep, nkeep, local, learn, nlearn, &xgb, &seed);
		old = MemoryContextSwitchTo(ts.cxt);
		train_steps(&ts);
		x = adapt_rows_part(local, model->feature_names, judge, 0, njudge, ts.kept, ts.k);
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

/*
 * The gate's options: the caller's split (the local training flows learn,
 * the calibration third calibrates), set for a share of the target: the
 * classifier by tau has the rest (adapt_calibrate_tau).
 */
static void
attach_options(const char *benign, double target, TrainOptions *opt)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"deploy\": false, \"test_size\": 0.5, \"benign_label\": ");
	escape_json(&buf, benign);
	appendStringInfoChar(&buf, '}');
	train_options_parse(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data))), opt);
	opt->benign_fpr = target * ADAPT_GATE_SHARE;
}

/*
 * The gate and the decision threshold of classifier clf, on x[0 .. n_end -
 * 1] (d features): the gate learns the first n_train and is calibrated on
 * the others, counting the classifier's own alarms; then tau, on the same
 * others, so that the whole verdict flags at most the target
 * (adapt_calibrate_tau).  Without tau (a catalogue of 1.2, or no benign
 * class) the classifier decides by its own label.  Returns tau (0: none),
 * which fit->benign_threshold also holds, and in *flagged what the
 * version flags of those flows.
 */
static double
adapt_fit_gate(const NidsModel *clf, const float *x, int d, int64 n_train, int64 n_end,
			   const TrainOptions *aopt, const AdaptResult *r, AttachFit *fit, int64 *flagged)
{
	NidsModel	own_label = *clf;

	own_label.benign_threshold = 0;
	attach_fit(&own_label, x, n_end, n_train, aopt, fit);
	*flagged = fit->cal.flagged;
	if (clf->benign_class >= 0 && r->tau_storable)
		fit->benign_threshold = adapt_calibrate_tau(clf->forest, clf->num_classes, clf->benign_class,
													fit, x, d, fit->rows + fit->ntrain, fit->ntest,
													r->target_flagged, flagged);
	return fit->benign_threshold;
}

/*
 * The share of the calibration third (x[n_train .. n_end - 1], after the
 * learning rows) that the whole verdict of clf with a gate flags, counted
 * on flows it was not calibrated on: tau and the gate fitted as the
 * version's are (adapt_fit_gate), but on one half of the third, and
 * counted on the other; both ways.  The version itself is calibrated on
 * the whole third.
 */
static double
adapt_cross_flagged(const NidsModel *clf, const float *x, int d, int64 n_train, int64 n_end,
					const TrainOptions *aopt, const AdaptResult *r)
{
	int64		n_third = n_end - n_train;
	int64		half = n_third / 2;
	int64		flagged = 0;
	float	   *swapped = palloc_extended(sizeof(float) * Max(n_end, 1) * d, MCXT_ALLOC_HUGE);
	int64	   *rows = palloc_extended(sizeof(int64) * Max(n_third, 1), MCXT_ALLOC_HUGE);

	/* the learning rows, then the second half of the third, then the first */
	memcpy(swapped, x, sizeof(float) * n_train * d);
	memcpy(swapped + n_train * d, x + (n_train + half) * d, sizeof(float) * (n_third - half) * d);
	memcpy(swapped + (n_end - half) * d, x + n_train * d, sizeof(float) * half * d);
	for (int h = 0; h < 2; h++)
	{
		const float *xh = h == 0 ? x : swapped;
		int64		ncal = h == 0 ? half : n_third - half;
		AttachFit	fit;
		int64		in_sample;
		double		tau = adapt_fit_gate(clf, xh, d, n_train, n_train + ncal, aopt, r, &fit,
										 &in_sample);

		for (int64 i = 0; i < n_third - ncal; i++)
			rows[i] = n_train + ncal + i;
		flagged += adapt_count_flagged(clf->forest, clf->num_classes, clf->benign_class, &fit, tau,
									   xh, d, rows, n_third - ncal);
	}
	pfree(swapped);
	pfree(rows);
	return n_third > 0 ? (double) flagged / n_third : NAN;
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
					  keep, nkeep, local, order, n_train, xgb, seed);
	/* the screen (screen_quiet_flows) counts them as they are: set aside the same */
	ts.extra_share = o->local_share;
	old = MemoryContextSwitchTo(ts.cxt);
	train_steps(&ts);
	r->local_share = ts.extra_share;

	/* the new classifier, not yet registered, for the gate's calibration */
	memset(&tm, 0, sizeof(tm));
	tm.name = model->name;
	tm.num_features = ts.k;
	tm.feature_names = ts.kept;
	tm.num_classes = ts.td.nclasses;
	tm.class_labels = ts.td.classes;
	tm.forest = ts.forest;
	tm.benign_class = ts.benign;
	attach_options(benign, r->target_flagged, &aopt);
	/* the gate learns the local training flows and is calibrated on the third */
	cal = adapt_rows_part(local, model->feature_names, order, 0, n_cal_end, ts.kept, ts.k);
	ts.benign_threshold = adapt_fit_gate(&tm, cal, ts.k, n_train, n_cal_end, &aopt, r, &fit,
										 &r->calibration_flagged);
	ts.iforest = fit.iforest;
	ts.gate = fit.gate;
	ts.calibration = fit.cal;
	ts.reference = fit.reference;
	ts.benign_reference = fit.reference;
	ts.deploy = false;
	r->benign_threshold = ts.benign_threshold;
	r->calibration_flows = fit.ntest;
	r->flagged_after = adapt_cross_flagged(&tm, cal, ts.k, n_train, n_cal_end, &aopt, r);
	gate_report = attach_report(&tm, "the local calibration flows", &fit, &aopt);
	gate_report = adapt_jsonb_without(adapt_jsonb_without(adapt_jsonb_without(gate_report, "source"),
											  "from_version"), "benign_relation");
	version = train_register(&ts, adapt_jsonb_merge(train_report(&ts), gate_report));
	MemoryContextSwitchTo(old);
	return version;
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
	float	   *cal = adapt_rows_part(local, model->feature_names, order, 0, n_cal_end,
										  model->feature_names, model->num_features);
	Jsonb	   *carried;

	/* the gate learns the local training flows and is calibrated on the third */
	attach_options(benign, r->target_flagged, &aopt);
	r->benign_threshold = adapt_fit_gate(model, cal, model->num_features, n_train, n_cal_end, &aopt,
										 r, &fit, &r->calibration_flagged);
	r->calibration_flows = fit.ntest;
	r->flagged_after = adapt_cross_flagged(model, cal, model->num_features, n_train, n_cal_end,
										   &aopt, r);
	metrics = attach_report(model, "the local calibration flows", &fit, &aopt);
	/* the same classifier: the same hold-out quality, where the version has one */
	carried = adapt_carried_metrics(metrics_of_version);
	if (carried != NULL)
		metrics = adapt_jsonb_merge(carried, metrics);
	return attach_register(model, &fit, &aopt, metrics, false);
}

/*
 * What version r->version changes against model: the share of the local
 * calibration third model flagged (the version's is adapt_cross_flagged's),
 * and, retrained, the attack recall on the fifth of
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
	r->flagged_before = adapt_flagged_share(model, adapt_rows_part(local, model->feature_names, order,
													   n - r->n_measure, n, model->feature_names,
													   model->num_features), r->n_measure, NULL);
	if (r->retrained)
	{
		Rows		before,
					after;
		bool	   *fb,
				   *fa;

		adapt_read_fifth(model, r->training_source, label_col, benign, &before);
		adapt_read_fifth(adapted, r->training_source, label_col, benign, &after);
		fb = palloc_extended(sizeof(bool) * Max(before.n, 1), MCXT_ALLOC_HUGE);
		fa = palloc_extended(sizeof(bool) * Max(after.n, 1), MCXT_ALLOC_HUGE);
		r->n_attack = before.n;
		r->recall_before = adapt_flagged_share(model, before.x, before.n, fb);
		r->recall_after = adapt_flagged_share(adapted, after.x, after.n, fa);
		adapt_per_class_recall(&before, fb, &after, fa, r);
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
 * The version's training source (options.training, or what its metrics
 * recorded; InvalidOid when unknown or gone) and label column; whether it
 * is retrained.
 */
static Oid
adapt_source(NidsModel *model, const AdaptOptions *o, Oid given, Jsonb *metrics,
			 char **label_col, AdaptResult *r)
{
	char	   *source;
	Oid			src;

	source = o->training ? adapt_qualified_name(given) : adapt_metric_text(metrics, "adaptation", "training_source");
	if (source == NULL)
		source = adapt_metric_text(metrics, "relation", NULL);
	src = o->training ? given : adapt_relation_by_name(source);
	*label_col = adapt_metric_text(metrics, "adaptation", "label_column");
	if (*label_col == NULL)
		*label_col = adapt_metric_text(metrics, "label_column", NULL);
	r->retrained = OidIsValid(src) && *label_col != NULL &&
		model_reference(model, DRIFT_REFERENCE_ALL, NULL, true) != NULL;
	r->training_source = OidIsValid(src) ? adapt_qualified_name(src) : NULL;
	return src;
}

/*
 * The features the retrained version keeps (into keep; returns how many),
 * and the quiet flows set aside as attacks: what the version's classifier
 * calls an attack with probability attack_probability or more; retraining,
 * not what a classifier that learnt the other quiet flows as benign calls
 * benign (screen_quiet_flows): that is the local exporter's or network's
 * way, which adapting must learn.
 */
static int
adapt_quiet_flows(NidsModel *model, const AdaptOptions *o, Oid src, const char *label_col,
				  const char *benign, Jsonb *metrics, Rows *local, char **keep, AdaptResult *r)
{
	int			nkeep = 0;

	if (!r->retrained)
	{
		(void) adapt_local_missing(model, local, r);	/* the classifier stays: only named */
		adapt_set_aside(local, adapt_benign_probability(model, local), o->attack_probability, model->name, r);
		return 0;
	}
	nkeep = adapt_features(model, local, o, r, keep);
	if (o->attack_probability < 1)
	{
		double	   *pb = adapt_benign_probability(model, local);
		double	   *screen = screen_quiet_flows(model, src, label_col, benign, metrics, o, local,
												keep, nkeep);

		/* a flow like the quiet flows taught as benign is not an attack */
		for (int64 i = 0; i < local->n; i++)
			if (screen[i] > ADAPT_SCREEN_BENIGN)
				pb[i] = 1.0;
		adapt_set_aside(local, pb, o->attack_probability, model->name, r);
	}
	else
		adapt_set_aside(local, NULL, 1, model->name, r);
	return nkeep;
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
	r.local_share = NAN;

	/* options.training names a table as the caller sees it */
	if (o.training != NULL && !OidIsValid(src = adapt_relation_by_name(o.training)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("options.training: relation \"%s\" does not exist", o.training),
				 errhint("Name the table the model was trained on, schema-qualified if need be.")));
	/* the local flows, read with the caller's search_path and privileges */
	adapt_read_local(query, model, &local, &r.n_empty);

	nest = nids_pin_search_path();
	if (!catalog_read(model->name, model->version, CATALOG_READ_METRICS, &cur))
		model_no_such_version(model->name, model->version);
	r.attack_probability = o.attack_probability;
	r.tau_storable = catalog_has_benign_threshold();
	if (!r.tau_storable)
		ereport(NOTICE,
				(errmsg("the nids catalogue is older than 1.3: the adapted version gets no decision threshold"),
				 errhint("Run ALTER EXTENSION nids UPDATE.")));
	src = adapt_source(model, &o, src, cur.metrics, &label_col, &r);
	benign = cur.benign_label ? cur.benign_label : "BENIGN";
	keep = palloc(sizeof(char *) * Max(model->num_features, 1));
	nkeep = adapt_quiet_flows(model, &o, src, label_col, benign, cur.metrics, &local, keep, &r);
	n = local.n;
	if (n < ADAPT_MIN_FLOWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%lld quiet flows remain once the %lld the model calls attacks are set aside; adapting needs at least %d",
						(long long) n, (long long) r.contaminated, ADAPT_MIN_FLOWS),
				 errhint("Adapt from a period without attacks.")));
	/*
	 * two thirds train, a third calibrates the gate and tau; that third
	 * measures too, crossed (adapt_cross_flagged)
	 */
	order = nids_random_permutation(n, (uint64) o.seed);
	r.n_train = (2 * n) / 3;
	r.n_calibrate = n - r.n_train;
	r.n_measure = r.n_calibrate;
	if (r.retrained)
		r.version = adapt_retrain(model, src, label_col, benign, cur.metrics, &o, &local, order,
								  r.n_train, n, keep, nkeep, &xgb, &seed,
								  &r);
	else
		r.version = adapt_recalibrate(model, benign, cur.metrics, &local, order, r.n_train,
									  n, &r);

	adapt_measure(model, &local, order, label_col, benign, &r);
	if (o.deploy)
		deploy_guard(&r);
	adapt_store_report(model->name, r.version, adapt_report(&r, label_col, xgb, seed, true));
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
