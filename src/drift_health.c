/*-------------------------------------------------------------------------
 *
 * drift_health.c
 *	  nids_health(window_query, model): does the model fit this traffic?
 *
 * One read of the window (flow_reader.c) gives the share of the model's
 * features it has, and a uniform sample of its rows: each row gets a
 * seeded pseudo-random priority, rows under a limit are kept, and when the
 * sample reaches twice HEALTH_SAMPLE the limit drops to the median kept
 * priority (priority sampling), so that reading a window of millions costs
 * little more than ks_drift's read while the checks look at up to
 * 2 * HEALTH_SAMPLE rows.  The sample is classified and gated as scoring
 * does, and the flows the classifier calls benign are compared with the
 * benign training flows (the drift that matters: live benign traffic is
 * what the gate and the classifier were calibrated on).
 *
 * The rules (README, "Health"):
 *	feature_coverage	the share of the model's features the window has;
 *						ok at 1, warn at nids.min_feature_coverage or more,
 *						else alarm
 *	novel_rate			novel flows among those the classifier calls benign,
 *						against the benign_fpr the gate was set for: ok up to
 *						bound = 2 * fpr + 3 * sqrt(fpr (1 - fpr) / n), warn
 *						up to 2 * bound, else alarm
 *	attack_rate			flows the classifier calls attacks: reported, always
 *						ok (attacks are what the model is for)
 *	drifting_features	features whose drift_level is 'high' (KS > 0.5 and
 *						Bonferroni-significant) on the benign-called flows
 *						against the benign training flows: ok at 0, warn
 *						below max(2, 10% of the features), else alarm
 *	overall				the worst status; value: the checks not ok
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "commands/async.h"
#include "drift.h"
#include "executor/spi.h"
#include "flow.h"
#include "model.h"
#include "nids.h"
#include "random.h"
#include "report.h"
#include "scoring.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#define HEALTH_SAMPLE	20000

typedef struct HealthWindow
{
	int			d;
	int64		rows;			/* rows read */
	int64		kept;
	uint64		limit;			/* keep rows whose priority is below */
	uint64	   *priority;		/* [2 * HEALTH_SAMPLE] */
	float	   *x;				/* [2 * HEALTH_SAMPLE][d] */
} HealthWindow;

static inline uint64
row_priority(int64 i)
{
	NidsRandom	r;

	nids_random_init(&r, (uint64) i ^ UINT64CONST(0x6E6964735F686C74));
	return nids_random_next(&r);
}

static int
compare_uint64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return (x > y) - (x < y);
}

/* halve the sample: the limit becomes the median kept priority */
static void
health_compact(HealthWindow *w)
{
	uint64	   *sorted = palloc(sizeof(uint64) * w->kept);
	int64		k = 0;

	memcpy(sorted, w->priority, sizeof(uint64) * w->kept);
	qsort(sorted, w->kept, sizeof(uint64), compare_uint64);
	w->limit = sorted[w->kept / 2];
	pfree(sorted);
	for (int64 i = 0; i < w->kept; i++)
		if (w->priority[i] < w->limit)
		{
			w->priority[k] = w->priority[i];
			memmove(w->x + k * w->d, w->x + i * w->d, sizeof(float) * w->d);
			k++;
		}
	w->kept = k;
}

/* the reader's callback: keep the row if its priority is under the limit */
static void
health_row(void *arg, const float *x, Datum label, bool label_isnull)
{
	HealthWindow *w = (HealthWindow *) arg;
	uint64		p = row_priority(w->rows++);

	if (p >= w->limit)
		return;
	w->priority[w->kept] = p;
	memcpy(w->x + w->kept * w->d, x, sizeof(float) * w->d);
	if (++w->kept == 2 * HEALTH_SAMPLE)
		health_compact(w);
}

const char *const health_status_names[HEALTH_NUM_STATUSES] = {
	"ok", "warn", "alarm"
};

static void
set_row(HealthRow *row, const char *name, double value, double expected, HealthStatus status)
{
	row->check_name = name;
	row->value = value;
	row->expected = expected;
	row->status = status;
}

/*
 * drifting_features: 'high' features of the benign-called rows against the
 * benign training flows; every row against every training flow when the
 * version has only that distribution (stored by 1.0): like with like, so
 * that a version's own training flows never drift from it
 */
static int
benign_drift(NidsModel *model, const HealthWindow *w, const bool *benign_called, bool every_row)
{
	DriftReference *ref = model_reference(model, DRIFT_REFERENCE_BENIGN, NULL, false);
	FeatureCounts *counts = drift_counts_create(ref);
	int			high = 0;

	for (int64 i = 0; i < w->kept; i++)
		if (every_row || benign_called[i])
			for (int f = 0; f < w->d; f++)
				if (!isnan(w->x[i * w->d + f]))
					drift_count_value(&ref->features[f], &counts[f], w->x[i * w->d + f]);
	for (int f = 0; f < w->d; f++)
	{
		const DriftFeatureRef *fr = &ref->features[f];

		if (counts[f].m > 0 && fr->n > 0)
		{
			double		ks = ks_statistic(fr, &counts[f]);
			double		p = ks_pvalue(ks, (double) fr->n, (double) counts[f].m);

			high += strcmp(drift_level(ks, p, w->d), "high") == 0;
		}
	}
	return high;
}

/*
 * The health of model on the window: NIDS_HEALTH_ROWS rows, in rows.  The
 * caller holds (pins) the model.
 */
void
drift_health(const char *window_query, NidsModel *model, HealthRow *rows)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "nids_health",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	HealthWindow w;
	FlowQuery	query;
	ScoreState	st;
	double		coverage = 1.0;
	double		fpr = model->novelty ? model->novelty->benign_fpr : 0.01;
	int64		attacks = 0,
				called_benign = 0,
				novel = 0;
	bool	   *benign_called;
	int			high;
	int			max_high = Max(2, (int) ceil(0.1 * model->num_features));
	double		novel_rate,
				bound;
	HealthStatus status;
	int			not_ok = 0;
	bool		fallback;

	/*
	 * What the checks need, before any row is read: the answer must not
	 * depend on whether the window happens to hold a benign-called flow
	 */
	if (model->novelty == NULL && model->iforest == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" version %d has no novelty gate, which nids_health checks",
						model->name, model->version),
				 errhint("Attach one with nids_attach_benign(model, benign_flows).")));
	(void) model_reference(model, DRIFT_REFERENCE_BENIGN, &fallback, false);
	if (fallback)
		ereport(NOTICE,
				(errmsg("model \"%s\" version %d has no benign training distribution; drifting_features compares every flow of the window with all its training flows",
						model->name, model->version),
				 errdetail("Versions stored by nids 1.0 have one training distribution: of all training flows (nids_train) or of the benign flows (nids_attach_benign).")));

	memset(&w, 0, sizeof(w));
	w.d = model->num_features;
	w.limit = PG_UINT64_MAX;
	w.priority = palloc(sizeof(uint64) * 2 * HEALTH_SAMPLE);
	w.x = palloc_extended(sizeof(float) * 2 * HEALTH_SAMPLE * Max(w.d, 1), MCXT_ALLOC_HUGE);
	model_window_query(&query, window_query, model);
	query.no_coverage_check = true;
	query.coverage = &coverage;
	flow_read(&query, health_row, &w);

	/* classify and gate the sample as scoring does */
	memset(&st, 0, sizeof(st));
	score_state_for(&st, model, cxt);
	benign_called = palloc(sizeof(bool) * Max(w.kept, 1));
	for (int64 i = 0; i < w.kept; i++)
	{
		double		anomaly = NAN;
		bool		is_novel;
		int			label;

		memcpy(st.x, w.x + i * w.d, sizeof(float) * w.d);
		label = score_classify(&st);
		benign_called[i] = label == model->benign_class;
		if (!benign_called[i])
		{
			attacks++;
			continue;
		}
		called_benign++;
		(void) score_novelty(&st, &anomaly, &is_novel);
		novel += is_novel;
	}
	high = fallback ? (w.kept > 0 ? benign_drift(model, &w, benign_called, true) : 0)
		: called_benign > 0 ? benign_drift(model, &w, benign_called, false) : 0;

	status = coverage >= 1.0 ? HEALTH_OK
		: coverage >= nids_min_feature_coverage ? HEALTH_WARN : HEALTH_ALARM;
	set_row(&rows[0], "feature_coverage", coverage, 1.0, status);

	novel_rate = called_benign > 0 ? (double) novel / called_benign : NAN;
	bound = 2 * fpr + 3 * sqrt(fpr * (1 - fpr) / Max(called_benign, 1));
	status = !(novel_rate > bound) ? HEALTH_OK
		: novel_rate <= 2 * bound ? HEALTH_WARN : HEALTH_ALARM;
	set_row(&rows[1], "novel_rate", novel_rate, fpr, status);

	set_row(&rows[2], "attack_rate", w.kept > 0 ? (double) attacks / w.kept : NAN, NAN, HEALTH_OK);

	status = high == 0 ? HEALTH_OK : high < max_high ? HEALTH_WARN : HEALTH_ALARM;
	set_row(&rows[3], "drifting_features", high, 0, status);

	status = HEALTH_OK;
	for (int i = 0; i < 4; i++)
	{
		status = Max(status, rows[i].status);
		not_ok += rows[i].status != HEALTH_OK;
	}
	set_row(&rows[4], "overall", not_ok, 0, status);
	MemoryContextSwitchTo(old);
	/* the rows' texts are constants: the context can go */
	MemoryContextDelete(cxt);
}

/*
 * NOTIFY nids_health, at commit, when the overall status of a report just
 * logged (report_id) differs from the model's previous logged one, or is
 * the first and not 'ok': a scheduled health check that alarms reaches a
 * listener, not only a table.  The payload: {"model", "version", "status",
 * "previous", "report_id", "checks"}, checks naming those not 'ok'.
 */
void
health_notify(const char *model, int32 version, int64 report_id, const HealthRow *rows)
{
	const HealthRow *overall = &rows[NIDS_HEALTH_ROWS - 1];
	Datum		args[2] = {CStringGetTextDatum(model), Int64GetDatum(report_id)};
	char	   *previous = NULL;
	int			nest;
	JsonbParseState *ps = NULL;
	Jsonb	   *payload;
	char	   *checks[NIDS_HEALTH_ROWS];
	int			nchecks = 0;
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	nest = nids_pin_search_path();
	if (SPI_execute_with_args("SELECT status FROM nids.health_reports WHERE model = $1 "
							  "AND check_name = 'overall' AND report_id <> $2 "
							  "ORDER BY ran_at DESC, report_id & 4294967295 DESC LIMIT 1",
							  2, (Oid[]) {TEXTOID, INT8OID}, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "nids health: reading the previous status failed");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			previous = MemoryContextStrdup(caller, TextDatumGetCString(d));
	}
	nids_unpin_search_path(nest);
	SPI_finish();
	if (previous == NULL ? overall->status == HEALTH_OK
		: strcmp(previous, health_status_names[overall->status]) == 0)
		return;
	for (int i = 0; i < NIDS_HEALTH_ROWS - 1; i++)
		if (rows[i].status != HEALTH_OK)
			checks[nchecks++] = (char *) rows[i].check_name;
	report_begin(&ps, NULL);
	report_string(&ps, "model", model);
	report_int(&ps, "version", version);
	report_string(&ps, "status", health_status_names[overall->status]);
	if (previous)
		report_string(&ps, "previous", previous);
	else
	{
		JsonbValue	none;

		none.type = jbvNull;
		report_key(&ps, "previous");
		pushJsonbValue(&ps, WJB_VALUE, &none);
	}
	report_int(&ps, "report_id", report_id);
	report_names(&ps, "checks", checks, nchecks);
	payload = report_finish(&ps);
	Async_Notify("nids_health", JsonbToCString(NULL, &payload->root, VARSIZE(payload)));
}
