/*-------------------------------------------------------------------------
 *
 * drift.c
 *	  The drift SQL functions: ks_drift(window_query, model, reference),
 *	  nids_health(window_query, model) (computed by drift_health.c) and
 *	  their report in tables (nids_log_drift); the report's pg_cron
 *	  schedule is drift_schedule.c.
 *
 * The window is read by the one reader (flow_reader.c): a read-only SELECT
 * run with the caller's privileges, columns matched by canonical name or
 * one float8[] column in feature order.  No window column is sorted: each
 * value is placed by binary search among the reference's points (at most
 * 4096), counting values equal to a point and values strictly between two
 * points separately.  The statistic is then evaluated at every point and
 * just before it, which is exact when the reference holds every distinct
 * training value and within 1/4096 otherwise (drift_stats.c).
 *
 * nids_log_drift is C rather than SQL so that the window query resolves
 * names with the caller's search_path while everything nids itself refers
 * to is schema-qualified.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "drift.h"
#include "executor/spi.h"
#include "flow.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "model.h"
#include "scoring.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/varlena.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ks_drift);
PG_FUNCTION_INFO_V1(nids_health);

static void health_next_step(NidsModel *model, const HealthRow *rows);
PG_FUNCTION_INFO_V1(nids_check_window_query);
PG_FUNCTION_INFO_V1(nids_log_drift);
PG_FUNCTION_INFO_V1(nids_ks_every_row);

typedef struct DriftWindow
{
	const DriftReference *ref;
	FeatureCounts *counts;
	ScoreState *st;				/* benign-called rows only: the scorer */
} DriftWindow;

/* the reader's callback: count a window row's values */
static void
count_window_row(void *arg, const float *x, Datum label, bool label_isnull)
{
	DriftWindow *w = (DriftWindow *) arg;

	if (w->st != NULL)
	{
		memcpy(w->st->x, x, sizeof(float) * w->ref->num_features);
		if (score_label(w->st) != w->st->model->benign_class)
			return;
	}
	for (int f = 0; f < w->ref->num_features; f++)
		if (!isnan(x[f]))
			drift_count_value(&w->ref->features[f], &w->counts[f], x[f]);
}

/* 'benign' or 'all' */
int
drift_reference_kind(const char *reference)
{
	if (strcmp(reference, "benign") == 0)
		return DRIFT_REFERENCE_BENIGN;
	if (strcmp(reference, "all") == 0)
		return DRIFT_REFERENCE_ALL;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("reference must be 'benign' or 'all', not \"%s\"", reference),
			 errdetail("'benign' compares with the training flows labelled benign, 'all' with every training flow.")));
	return -1;					/* not reached */
}

/*
 * The reference of kind (DRIFT_REFERENCE_*) of model, saying so when a 1.0
 * version has only the other; *name: what it is ('benign' or 'all').
 */
DriftReference *
drift_reference_of(NidsModel *model, int kind, const char **name)
{
	bool		fallback;
	DriftReference *ref = model_reference(model, kind, &fallback, false);

	if (fallback)
		ereport(NOTICE,
				(errmsg("model \"%s\" version %d has no benign training distribution; comparing with all its training flows",
						model->name, model->version),
				 errdetail("Versions stored by nids 1.0 have one training distribution: of all training flows (nids_train) or of the benign flows (nids_attach_benign).")));
	*name = kind == DRIFT_REFERENCE_BENIGN && !fallback ? "benign" : "all";
	return ref;
}

/*
 * The window's counts at the reference's points, per feature (the caller
 * holds the model).  benign_called: only the rows the model calls benign
 * count, to compare like with like against the benign training flows
 * (attacks in a window are not drift), as nids_health's
 * drifting_features does.
 */
FeatureCounts *
drift_count_window(const char *window_query, NidsModel *model, const DriftReference *ref,
				   bool benign_called)
{
	DriftWindow w;
	FlowQuery	query;

	memset(&w, 0, sizeof(w));
	w.ref = ref;
	w.counts = drift_counts_create(ref);
	if (benign_called && model->benign_class >= 0)
	{
		w.st = palloc0(sizeof(ScoreState));
		score_state_for(w.st, model, CurrentMemoryContext);
	}
	model_window_query(&query, window_query, model);
	flow_read(&query, count_window_row, &w);
	return w.counts;
}

/* the drift report of counts against ref: one row per feature */
DriftResult *
drift_result(NidsModel *model, const DriftReference *ref, const FeatureCounts *counts,
			 const char *reference)
{
	int			nf = model->num_features;
	DriftResult *result = palloc(sizeof(DriftResult));

	result->reference = reference;
	result->num_rows = nf;
	result->rows = palloc0(sizeof(DriftRow) * Max(nf, 1));
	for (int f = 0; f < nf; f++)
	{
		const DriftFeatureRef *fr = &ref->features[f];
		const FeatureCounts *fc = &counts[f];
		DriftRow   *row = &result->rows[f];

		row->feature = model->feature_names[f];
		row->n_reference = fr->n;
		row->n_window = fc->m;
		row->drift_level = "none";
		row->tested = fc->m > 0 && fr->n > 0;
		if (row->tested)
		{
			row->ks_statistic = ks_statistic(fr, fc);
			row->p_value = ks_pvalue(row->ks_statistic, (double) fr->n, (double) fc->m);
			row->drift_level = drift_level(row->ks_statistic, row->p_value, nf);
		}
	}
	return result;
}

/*
 * The drift report of a window query against model's training
 * distribution (kind: DRIFT_REFERENCE_*): one row per feature, in the
 * current memory context.
 */
static DriftResult *
drift_compute(const char *window_query, NidsModel *model, int kind)
{
	const char *reference;
	DriftReference *ref = drift_reference_of(model, kind, &reference);

	/* the window query may score flows, and so refresh the cache: hold it */
	model_pin(model, CurrentMemoryContext);
	return drift_result(model, ref,
						drift_count_window(window_query, model, ref, strcmp(reference, "benign") == 0),
						reference);
}

/* ks_drift's result rows */
void
drift_put_rows(FunctionCallInfo fcinfo, const DriftResult *result)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	for (int f = 0; f < result->num_rows; f++)
	{
		const DriftRow *row = &result->rows[f];
		Datum		out[6];
		bool		outnull[6] = {false, !row->tested, !row->tested, false, false, false};

		out[0] = CStringGetTextDatum(row->feature);
		out[1] = Float8GetDatum(row->ks_statistic);
		out[2] = Float8GetDatum(row->p_value);
		out[3] = Int64GetDatum(row->n_reference);
		out[4] = Int64GetDatum(row->n_window);
		out[5] = CStringGetTextDatum(row->drift_level);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
	}
}

Datum
ks_drift(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	NidsModel  *model = model_lookup_ready(text_to_cstring(PG_GETARG_TEXT_PP(1)),
										   MODEL_READY_REFERENCES | MODEL_READY_PREDICTOR);
	int			kind = PG_NARGS() > 2 ? drift_reference_kind(text_to_cstring(PG_GETARG_TEXT_PP(2)))
		: DRIFT_REFERENCE_ALL;	/* the 1.0 signature */
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "ks_drift",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	DriftResult *result;

	InitMaterializedSRF(fcinfo, 0);
	old = MemoryContextSwitchTo(cxt);
	result = drift_compute(query, model, kind);
	MemoryContextSwitchTo(old);
	drift_put_rows(fcinfo, result);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

Datum
nids_health(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	NidsModel  *model = model_lookup_ready(text_to_cstring(PG_GETARG_TEXT_PP(1)),
										   MODEL_READY_REFERENCES | MODEL_READY_PREDICTOR);
	HealthRow	rows[NIDS_HEALTH_ROWS];

	InitMaterializedSRF(fcinfo, 0);
	model_pin(model, CurrentMemoryContext);
	drift_health(query, model, rows);
	for (int i = 0; i < NIDS_HEALTH_ROWS; i++)
	{
		Datum		out[4];
		bool		outnull[4] = {false, isnan(rows[i].value), isnan(rows[i].expected), false};

		out[0] = CStringGetTextDatum(rows[i].check_name);
		out[1] = Float8GetDatum(rows[i].value);
		out[2] = Float8GetDatum(rows[i].expected);
		out[3] = CStringGetTextDatum(health_status_names[rows[i].status]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
	}
	health_next_step(model, rows);
	return (Datum) 0;
}

/*
 * On an alarm, a NOTICE that names the next step: a coverage alarm wants a
 * model of the features this exporter writes; a novel-rate or drift alarm
 * wants the model fitted to this network (nids_adapt) or retrained on it.
 * rows are in drift_health's order: coverage, novel rate, attack rate,
 * drifting features, overall.
 */
static void
health_next_step(NidsModel *model, const HealthRow *rows)
{
	bool		coverage = rows[0].status == HEALTH_ALARM;
	bool		fit = rows[1].status == HEALTH_ALARM || rows[3].status == HEALTH_ALARM;

	if (!coverage && !fit)
		return;
	ereport(NOTICE,
			(errmsg("model \"%s\" version %d does not fit this traffic (health alarm on %s)",
					model->name, model->version,
					coverage && fit ? "feature coverage and the benign flows"
					: coverage ? "feature coverage" : "the benign flows"),
			 coverage && !fit
			 ? errhint("Train a model on the features this exporter writes (nids_train's options.exclude the others).")
			 : coverage
			 ? errhint("Train a model on the features this exporter writes (nids_train's options.exclude the others), check it again, and adapt it with nids_adapt(model, benign_query) if its benign flows still do not fit (doc/deploying.md: Deploying on your network).")
			 : errhint("Adapt it from a quiet period with nids_adapt(model, benign_query), shadow-score the new 'name@N' and deploy it, or retrain on this network's labelled flows (doc/deploying.md: Deploying on your network).")));
}

/*
 * nids._check_window_query(text) (1.0): raise the error ks_drift would
 * raise for a query that is not one read-only SELECT.
 */
Datum
nids_check_window_query(PG_FUNCTION_ARGS)
{
	flow_check_window_query(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/*
 * nids_log_drift: ks_drift against the benign training flows, and
 * nids_health, of one window, logged under one report id.
 */
Datum
nids_log_drift(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	NidsModel  *model = model_lookup_ready(text_to_cstring(PG_GETARG_TEXT_PP(1)),
										   MODEL_READY_REFERENCES | MODEL_READY_PREDICTOR);
	DriftResult *result;
	HealthRow	health[NIDS_HEALTH_ROWS];
	bool		has_health = catalog_has_health_reports();
	int64		id;

	model_pin(model, CurrentMemoryContext);
	result = drift_compute(query, model, DRIFT_REFERENCE_BENIGN);
	if (has_health && model->novelty == NULL && model->iforest == NULL)
	{
		ereport(NOTICE,
				(errmsg("model \"%s\" version %d has no novelty gate: the drift report is logged without health rows",
						model->name, model->version),
				 errhint("Attach one with nids_attach_benign(model, benign_flows).")));
		has_health = false;
	}
	if (has_health)
		drift_health(query, model, health);
	id = catalog_log_drift(model->name, model->version, result, has_health ? health : NULL);
	if (has_health)
		health_notify(model->name, model->version, id, health);
	PG_RETURN_INT64(id);
}

/*
 * nids._ks_every_row(window_query, model): every row of the window against
 * the benign training flows, however the model calls them: how far a
 * network's quiet flows are from the benign training flows (nids_adapt).
 */
Datum
nids_ks_every_row(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	NidsModel  *model = model_lookup_ready(text_to_cstring(PG_GETARG_TEXT_PP(1)),
										   MODEL_READY_REFERENCES | MODEL_READY_PREDICTOR);
	const char *reference;
	DriftReference *ref;

	InitMaterializedSRF(fcinfo, 0);
	model_pin(model, CurrentMemoryContext);
	ref = drift_reference_of(model, DRIFT_REFERENCE_BENIGN, &reference);
	drift_put_rows(fcinfo, drift_result(model, ref, drift_count_window(query, model, ref, false),
										reference));
	return (Datum) 0;
}
