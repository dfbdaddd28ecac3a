/*-------------------------------------------------------------------------
 *
 * alert_incident.c
 *	  A batch of flagged flows into incidents (nids.alerts).
 *
 * An incident gathers the flagged flows of one source with one verdict
 * and class for one model name.  In each group, taken in flow time, a new
 * island starts where a flow starts more than nids.alert_gap after the
 * last; an island grows the group's incident that it overlaps within the
 * gap (the latest such one not closed), and opens a new one otherwise.
 * The same rows give the same incidents in one batch or cut into batches
 * in time order, so the trigger and nids_alerts_from agree; late rows
 * (out of time order) grow the incident of their time when there is one.
 *
 * Destinations and ports are counted exactly, in nids.alert_destinations
 * and nids.alert_ports (a batch inserts only its distinct ones).  The
 * step holds its statement's sources locked to the end of the transaction
 * (alert_lock.c): sessions feeding the same sources take turns, so two
 * sessions never open two incidents for one group nor lose counts, and
 * sessions feeding other sources never wait.  Writes run as the
 * owner of nids.alerts (the inserting role needs no privilege on it),
 * with search_path pinned.  NOTIFY nids_alerts goes out, at commit, for
 * each new incident and each rise of an incident's severity.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/table.h"
#include "alert.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "explain.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "report.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#define ALERT_REASONS		5
#define ALERT_PAYLOAD_CLASS	200		/* bytes of the class in a NOTIFY */
#define ADD_DSTS_SQL \
	"INSERT INTO nids.alert_destinations (alert_id, dst_ip) " \
	"SELECT $1, pg_catalog.unnest($2) ON CONFLICT DO NOTHING"
#define ADD_PORTS_SQL \
	"INSERT INTO nids.alert_ports (alert_id, dst_port) " \
	"SELECT $1, pg_catalog.unnest($2) ON CONFLICT DO NOTHING"

typedef struct Suppression
{
	Datum		src;			/* cidr, or 0 */
	Datum		dst;
	int32		dport;			/* -1: any */
	char	   *class;			/* NULL: any */
} Suppression;

typedef struct Severity
{
	char	   *class;
	int			severity;
} Severity;

typedef struct Incident
{
	bool		exists;
	int64		alert_id;
	TimestampTz first_seen;
	TimestampTz last_seen;
	int			severity;
	double		max_probability;
	double		max_novelty;
} Incident;

typedef struct ApplyState
{
	AlertBatch *b;
	ScoreState *st;
	const char *model;
	int64		gap;			/* microseconds */
	Suppression *supp;
	int			nsupp;
	Severity   *sev;
	int			nsev;
	SPIPlanPtr	find;
	SPIPlanPtr	insert;
	SPIPlanPtr	grow;
	SPIPlanPtr	dsts;
	SPIPlanPtr	ports;
	int64		changed;
} ApplyState;

static SPIPlanPtr
prepare(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "nids alerts: could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	return plan;
}

static void
load_settings(ApplyState *as)
{
	if (SPI_execute("SELECT src_ip, dst_ip, dst_port, class FROM nids.alert_suppressions "
					"WHERE until IS NULL OR until > pg_catalog.now()", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "nids alerts: reading suppressions failed");
	as->nsupp = (int) SPI_processed;
	as->supp = palloc(sizeof(Suppression) * Max(as->nsupp, 1));
	for (int i = 0; i < as->nsupp; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		v;

		v = SPI_getbinval(t, d, 1, &isnull);
		as->supp[i].src = isnull ? (Datum) 0 : PointerGetDatum(((inet *) PG_DETOAST_DATUM_COPY(v)));
		v = SPI_getbinval(t, d, 2, &isnull);
		as->supp[i].dst = isnull ? (Datum) 0 : PointerGetDatum(((inet *) PG_DETOAST_DATUM_COPY(v)));
		v = SPI_getbinval(t, d, 3, &isnull);
		as->supp[i].dport = isnull ? -1 : DatumGetInt32(v);
		v = SPI_getbinval(t, d, 4, &isnull);
		as->supp[i].class = isnull ? NULL : TextDatumGetCString(v);
	}
	if (SPI_execute("SELECT class, severity FROM nids.alert_severity", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "nids alerts: reading severities failed");
	as->nsev = (int) SPI_processed;
	as->sev = palloc(sizeof(Severity) * Max(as->nsev, 1));
	for (int i = 0; i < as->nsev; i++)
	{
		bool		isnull;

		as->sev[i].class = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 1, &isnull));
		as->sev[i].severity = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc, 2, &isnull));
	}
}

static const char *
flow_class(const ApplyState *as, const AlertFlow *f)
{
	return f->verdict == NIDS_VERDICT_ANOMALY ? "anomaly"
		: as->b->model->class_labels[f->label];
}

/* the class's severity: listed, else 3 for anomalies and 2 for the rest */
static int
severity_of(const ApplyState *as, const char *class, NidsVerdict verdict)
{
	for (int i = 0; i < as->nsev; i++)
		if (strcmp(as->sev[i].class, class) == 0)
			return as->sev[i].severity;
	return verdict == NIDS_VERDICT_ANOMALY ? 3 : 2;
}

static bool
suppressed(const ApplyState *as, const AlertFlow *f)
{
	const char *class = flow_class(as, f);

	for (int i = 0; i < as->nsupp; i++)
	{
		const Suppression *s = &as->supp[i];

		if (s->class != NULL && strcmp(s->class, class) != 0)
			continue;
		if (s->dport >= 0 && s->dport != f->dport)
			continue;
		if (s->src != (Datum) 0 &&
			!DatumGetBool(DirectFunctionCall2(network_supeq, s->src, InetPGetDatum(f->src))))
			continue;
		if (s->dst != (Datum) 0 &&
			(f->dst == NULL ||
			 !DatumGetBool(DirectFunctionCall2(network_supeq, s->dst, InetPGetDatum(f->dst)))))
			continue;
		return true;
	}
	return false;
}

/* group order: verdict, class, source; then flow time */
static int
compare_flows(const void *pa, const void *pb)
{
	const AlertFlow *a = *(AlertFlow *const *) pa;
	const AlertFlow *b = *(AlertFlow *const *) pb;
	int			c;

	if (a->verdict != b->verdict)
		return a->verdict < b->verdict ? -1 : 1;
	if (a->label != b->label)
		return a->label < b->label ? -1 : 1;
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	if (a->bits != b->bits)
		return a->bits < b->bits ? -1 : 1;
	c = memcmp(a->addr, b->addr, sizeof(a->addr));
	if (c != 0)
		return c;
	if (a->ts != b->ts)
		return a->ts < b->ts ? -1 : 1;
	return a->row < b->row ? -1 : (a->row > b->row);
}

static bool
same_group(const AlertFlow *a, const AlertFlow *b)
{
	return a->verdict == b->verdict && a->label == b->label && a->family == b->family &&
		a->bits == b->bits && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static void
read_incident(HeapTuple t, TupleDesc d, Incident *cur)
{
	bool		isnull;
	Datum		v;

	cur->exists = true;
	cur->alert_id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
	cur->first_seen = DatumGetTimestampTz(SPI_getbinval(t, d, 2, &isnull));
	cur->last_seen = DatumGetTimestampTz(SPI_getbinval(t, d, 3, &isnull));
	cur->severity = DatumGetInt16(SPI_getbinval(t, d, 4, &isnull));
	v = SPI_getbinval(t, d, 5, &isnull);
	cur->max_probability = isnull ? NAN : DatumGetFloat8(v);
	v = SPI_getbinval(t, d, 6, &isnull);
	cur->max_novelty = isnull ? NAN : DatumGetFloat8(v);
}

/*
 * Merge incident gone into keep: flows arriving out of time order (late,
 * or from another session's statement) bridged the gap between them, so
 * they are one incident, as they would have been in time order.  The
 * merged incident is deleted; keep's note records it.
 */
static void
merge_incidents(int64 keep, int64 gone)
{
	Datum		v[2] = {Int64GetDatum(keep), Int64GetDatum(gone)};
	Oid			t[2] = {INT8OID, INT8OID};
	static const char *const steps[] = {
		"INSERT INTO nids.alert_destinations (alert_id, dst_ip) "
		"SELECT $1, dst_ip FROM nids.alert_destinations WHERE alert_id = $2 ON CONFLICT DO NOTHING",
		"INSERT INTO nids.alert_ports (alert_id, dst_port) "
		"SELECT $1, dst_port FROM nids.alert_ports WHERE alert_id = $2 ON CONFLICT DO NOTHING",
		"UPDATE nids.alerts k SET flows = k.flows + o.flows, "
		"first_seen = LEAST(k.first_seen, o.first_seen), last_seen = GREATEST(k.last_seen, o.last_seen), "
		"max_probability = GREATEST(k.max_probability, o.max_probability), "
		"max_novelty = GREATEST(k.max_novelty, o.max_novelty), severity = LEAST(k.severity, o.severity), "
		"reasons = CASE WHEN o.max_probability > k.max_probability OR o.max_novelty > k.max_novelty "
		"THEN o.reasons ELSE k.reasons END, "
		"community_id = CASE WHEN o.first_seen < k.first_seen THEN o.community_id ELSE k.community_id END, "
		"destinations = d.n, ports = p.n, "
		"dst_ip = CASE WHEN d.n = 1 THEN d.one END, dst_port = CASE WHEN p.n = 1 THEN p.one END, "
		"note = pg_catalog.concat_ws(E'\\n', k.note, o.note, 'merged incident ' || o.alert_id::text), "
		"updated_at = pg_catalog.clock_timestamp() "
		"FROM nids.alerts o, "
		"(SELECT pg_catalog.count(*)::int AS n, pg_catalog.min(dst_ip) AS one FROM nids.alert_destinations WHERE alert_id = $1) d, "
		"(SELECT pg_catalog.count(*)::int AS n, pg_catalog.min(dst_port) AS one FROM nids.alert_ports WHERE alert_id = $1) p "
		"WHERE k.alert_id = $1 AND o.alert_id = $2",
		"DELETE FROM nids.alerts WHERE alert_id = $2"
	};

	for (int i = 0; i < lengthof(steps); i++)
	{
		int			rc = SPI_execute_with_args(steps[i], 2, t, v, NULL, false, 0);

		if (rc != SPI_OK_INSERT && rc != SPI_OK_UPDATE && rc != SPI_OK_DELETE)
			elog(ERROR, "nids alerts: merging incidents failed: %s", SPI_result_code_string(rc));
	}
}

/*
 * The incident of f's group, not closed, that flows from first to last
 * overlap within the gap; when they overlap several (they bridge a gap),
 * those are merged into the earliest.  None: cur->exists false.
 */
static void
find_incident(ApplyState *as, const AlertFlow *f, TimestampTz first, TimestampTz last,
			  Incident *cur)
{
	Datum		values[6];
	int64	   *others;
	int			nothers;

	values[0] = InetPGetDatum(f->src);
	values[1] = CStringGetTextDatum(flow_class(as, f));
	values[2] = CStringGetTextDatum(nids_verdict_names[f->verdict]);
	values[3] = CStringGetTextDatum(as->model);
	values[4] = TimestampTzGetDatum(nids_time_add(first, -as->gap));
	values[5] = TimestampTzGetDatum(nids_time_add(last, as->gap));
	if (SPI_execute_plan(as->find, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "nids alerts: reading incidents failed");
	memset(cur, 0, sizeof(*cur));
	if (SPI_processed == 0)
		return;
	read_incident(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, cur);
	nothers = (int) SPI_processed - 1;
	if (nothers == 0)
		return;
	others = palloc(sizeof(int64) * nothers);
	for (int i = 0; i < nothers; i++)
	{
		bool		isnull;

		others[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i + 1],
												SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (int i = 0; i < nothers; i++)
		merge_incidents(cur->alert_id, others[i]);
	values[0] = Int64GetDatum(cur->alert_id);
	if (SPI_execute_with_args("SELECT alert_id, first_seen, last_seen, severity, max_probability, "
							  "max_novelty FROM nids.alerts WHERE alert_id = $1",
							  1, (Oid[]) {INT8OID}, values, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "nids alerts: reading a merged incident failed");
	read_incident(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, cur);
}

static int
compare_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	return (x > y) - (x < y);
}

static int
compare_inet(const void *a, const void *b)
{
	return DatumGetInt32(DirectFunctionCall2(network_cmp, *(const Datum *) a, *(const Datum *) b));
}

/* an island's distinct destinations and ports */
typedef struct Island
{
	AlertFlow **flows;
	int64		n;
	AlertFlow  *best;			/* the most confident (or novel) flow */
	Datum	   *dsts;
	int			ndsts;
	int32	   *ports;
	int			nports;
} Island;

static void
island_sets(Island *is)
{
	int			nd = 0,
				np = 0;

	is->dsts = palloc(sizeof(Datum) * Max(is->n, 1));
	is->ports = palloc(sizeof(int32) * Max(is->n, 1));
	for (int64 i = 0; i < is->n; i++)
	{
		if (is->flows[i]->dst != NULL)
			is->dsts[nd++] = InetPGetDatum(is->flows[i]->dst);
		if (is->flows[i]->dport >= 0)
			is->ports[np++] = is->flows[i]->dport;
	}
	if (nd > 1)
		qsort(is->dsts, nd, sizeof(Datum), compare_inet);
	if (np > 1)
		qsort(is->ports, np, sizeof(int32), compare_int32);
	is->ndsts = 0;
	for (int i = 0; i < nd; i++)
		if (is->ndsts == 0 || compare_inet(&is->dsts[is->ndsts - 1], &is->dsts[i]) != 0)
			is->dsts[is->ndsts++] = is->dsts[i];
	is->nports = 0;
	for (int i = 0; i < np; i++)
		if (is->nports == 0 || is->ports[is->nports - 1] != is->ports[i])
			is->ports[is->nports++] = is->ports[i];
}

/* add the island's sets to incident id; returns how many of each were new */
static void
add_sets(ApplyState *as, int64 id, const Island *is, int *new_dsts, int *new_ports)
{
	Datum		values[2];
	Datum	   *pd = palloc(sizeof(Datum) * Max(is->nports, 1));

	*new_dsts = *new_ports = 0;
	values[0] = Int64GetDatum(id);
	if (is->ndsts > 0)
	{
		values[1] = PointerGetDatum(construct_array(is->dsts, is->ndsts, INETOID, -1, false,
													TYPALIGN_INT));
		if ((as ? SPI_execute_plan(as->dsts, values, NULL, false, 0)
			 : SPI_execute_with_args(ADD_DSTS_SQL, 2, (Oid[]) {INT8OID, INETARRAYOID}, values, NULL,
									 false, 0)) != SPI_OK_INSERT)
			elog(ERROR, "nids alerts: counting destinations failed");
		*new_dsts = (int) SPI_processed;
	}
	if (is->nports > 0)
	{
		for (int i = 0; i < is->nports; i++)
			pd[i] = Int32GetDatum(is->ports[i]);
		values[1] = PointerGetDatum(construct_array(pd, is->nports, INT4OID, sizeof(int32),
													true, TYPALIGN_INT));
		if ((as ? SPI_execute_plan(as->ports, values, NULL, false, 0)
			 : SPI_execute_with_args(ADD_PORTS_SQL, 2, (Oid[]) {INT8OID, INT4ARRAYOID}, values, NULL,
									 false, 0)) != SPI_OK_INSERT)
			elog(ERROR, "nids alerts: counting ports failed");
		*new_ports = (int) SPI_processed;
	}
}

static Jsonb *
reasons_of(ApplyState *as, const AlertFlow *f)
{
	int			d = as->b->model->num_features;
	double	   *raw = palloc(sizeof(double) * Max(d, 1));

	Assert(f->x != NULL);
	memcpy(as->st->x, f->x, sizeof(float) * d);
	for (int j = 0; j < d; j++)
		raw[j] = f->x[j];
	return explain_verdict_jsonb(as->st, raw, ALERT_REASONS);
}

static void
notify_payload(int64 id, const char *kind, int severity, const char *class, inet *src)
{
	JsonbParseState *ps = NULL;
	Jsonb	   *payload;

	report_begin(&ps, NULL);
	report_int(&ps, "alert_id", id);
	report_string(&ps, "kind", kind);
	report_int(&ps, "severity", severity);
	/* at most ALERT_PAYLOAD_CLASS bytes, cut on a character boundary */
	report_string(&ps, "class", pnstrdup(class, pg_mbcliplen(class, strlen(class),
															 ALERT_PAYLOAD_CLASS)));
	report_string(&ps, "src_ip", DatumGetCString(DirectFunctionCall1(inet_out, InetPGetDatum(src))));
	payload = report_finish(&ps);
	Async_Notify("nids_alerts", JsonbToCString(NULL, &payload->root, VARSIZE(payload)));
}

static void
notify(const ApplyState *as, int64 id, const AlertFlow *f, int severity)
{
	notify_payload(id, "flow", severity, flow_class(as, f), f->src);
}

static void
notify_scan(int64 id, const AlertScan *sc, int severity)
{
	notify_payload(id, "scan", severity, sc->class, sc->src);
}

static double
metric(const AlertFlow *f)
{
	double		m = f->verdict == NIDS_VERDICT_ANOMALY ? f->novelty : f->probability;

	return isnan(m) ? -INFINITY : m;
}

static Datum
float_or_null(double v, char *null)
{
	*null = isnan(v) ? 'n' : ' ';
	return Float8GetDatum(isnan(v) ? 0 : v);
}

/* open a new incident from island is */
static void
open_incident(ApplyState *as, const Island *is, Incident *cur)
{
	const AlertFlow *first = is->flows[0];
	const AlertFlow *best = is->best;
	NidsModel  *model = as->b->model;
	char	   *cid = alert_community_id(first->src, first->dst, first->sport, first->dport,
										 first->proto);
	int			severity = severity_of(as, flow_class(as, first), first->verdict);
	Datum		v[17];
	char		nulls[17];
	double		maxp = -INFINITY,
				maxn = -INFINITY;
	int			nd,
				np;
	bool		isnull;

	for (int64 i = 0; i < is->n; i++)
	{
		if (!isnan(is->flows[i]->probability))
			maxp = Max(maxp, is->flows[i]->probability);
		if (!isnan(is->flows[i]->novelty))
			maxn = Max(maxn, is->flows[i]->novelty);
	}
	memset(nulls, ' ', sizeof(nulls));
	v[0] = CStringGetTextDatum(as->model);
	v[1] = Int32GetDatum(model->version);
	v[2] = CStringGetTextDatum(nids_verdict_names[first->verdict]);
	v[3] = CStringGetTextDatum(flow_class(as, first));
	v[4] = Int16GetDatum(severity);
	v[5] = InetPGetDatum(first->src);
	v[6] = is->ndsts == 1 ? is->dsts[0] : (Datum) 0;
	nulls[6] = is->ndsts == 1 ? ' ' : 'n';
	v[7] = Int32GetDatum(is->nports == 1 ? is->ports[0] : 0);
	nulls[7] = is->nports == 1 ? ' ' : 'n';
	v[8] = Int32GetDatum(is->ndsts);
	v[9] = Int32GetDatum(is->nports);
	v[10] = Int32GetDatum(first->proto);
	nulls[10] = first->proto >= 0 ? ' ' : 'n';
	v[11] = TimestampTzGetDatum(first->ts);
	v[12] = TimestampTzGetDatum(is->flows[is->n - 1]->ts);
	v[13] = Int64GetDatum(is->n);
	v[14] = float_or_null(isinf(maxp) ? NAN : maxp, &nulls[14]);
	v[15] = float_or_null(isinf(maxn) ? NAN : maxn, &nulls[15]);
	v[16] = cid ? CStringGetTextDatum(cid) : (Datum) 0;
	nulls[16] = cid ? ' ' : 'n';
	if (SPI_execute_plan(as->insert, v, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "nids alerts: opening an incident failed");
	cur->exists = true;
	cur->alert_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												1, &isnull));
	cur->first_seen = first->ts;
	cur->last_seen = is->flows[is->n - 1]->ts;
	cur->severity = severity;
	cur->max_probability = isinf(maxp) ? NAN : maxp;
	cur->max_novelty = isinf(maxn) ? NAN : maxn;
	add_sets(as, cur->alert_id, is, &nd, &np);
	/* the reasons: of its most confident flow */
	{
		Datum		rv[2] = {Int64GetDatum(cur->alert_id), JsonbPGetDatum(reasons_of(as, best))};

		if (SPI_execute_with_args("UPDATE nids.alerts SET reasons = $2 WHERE alert_id = $1",
								  2, (Oid[]) {INT8OID, JSONBOID}, rv, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "nids alerts: explaining an incident failed");
	}
	notify(as, cur->alert_id, first, severity);
	as->changed++;
}

/* grow incident cur with island is */
static void
grow_incident(ApplyState *as, const Island *is, Incident *cur)
{
	const AlertFlow *first = is->flows[0];
	int			severity = severity_of(as, flow_class(as, first), first->verdict);
	double		maxp = cur->max_probability,
				maxn = cur->max_novelty;
	bool		explain;
	Datum		v[12];
	char		nulls[12];
	int			nd,
				np;

	for (int64 i = 0; i < is->n; i++)
	{
		if (!isnan(is->flows[i]->probability) && !(is->flows[i]->probability <= maxp))
			maxp = is->flows[i]->probability;
		if (!isnan(is->flows[i]->novelty) && !(is->flows[i]->novelty <= maxn))
			maxn = is->flows[i]->novelty;
	}
	explain = first->verdict == NIDS_VERDICT_ANOMALY
		? !(metric(is->best) <= (isnan(cur->max_novelty) ? -INFINITY : cur->max_novelty))
		: !(metric(is->best) <= (isnan(cur->max_probability) ? -INFINITY : cur->max_probability));
	add_sets(as, cur->alert_id, is, &nd, &np);
	memset(nulls, ' ', sizeof(nulls));
	v[0] = Int64GetDatum(cur->alert_id);
	v[1] = Int64GetDatum(is->n);
	v[2] = TimestampTzGetDatum(first->ts);
	v[3] = TimestampTzGetDatum(is->flows[is->n - 1]->ts);
	v[4] = float_or_null(maxp, &nulls[4]);
	v[5] = float_or_null(maxn, &nulls[5]);
	v[6] = Int16GetDatum(Min(severity, cur->severity));
	v[7] = Int32GetDatum(nd);
	v[8] = Int32GetDatum(np);
	v[9] = is->ndsts == 1 ? is->dsts[0] : (Datum) 0;
	nulls[9] = is->ndsts == 1 ? ' ' : 'n';
	v[10] = Int32GetDatum(is->nports == 1 ? is->ports[0] : 0);
	nulls[10] = is->nports == 1 ? ' ' : 'n';
	v[11] = explain ? JsonbPGetDatum(reasons_of(as, is->best)) : (Datum) 0;
	nulls[11] = explain ? ' ' : 'n';
	if (SPI_execute_plan(as->grow, v, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "nids alerts: growing an incident failed");
	if (severity < cur->severity)
		notify(as, cur->alert_id, first, severity);
	cur->first_seen = Min(cur->first_seen, first->ts);
	cur->last_seen = Max(cur->last_seen, is->flows[is->n - 1]->ts);
	cur->severity = Min(severity, cur->severity);
	cur->max_probability = maxp;
	cur->max_novelty = maxn;
	as->changed++;
}

/*
 * The islands of the flows g[0 .. n-1] of one group, in time order, into
 * out (from *nout on); their most confident flows will be explained.
 */
static void
group_islands(ApplyState *as, AlertFlow **g, int64 n, Island *out, int64 *nout)
{
	int64		start = 0;

	while (start < n)
	{
		Island	   *is = &out[(*nout)++];
		int64		end = start + 1;

		while (end < n && !nids_time_gap_exceeds(g[end]->ts, g[end - 1]->ts, as->gap))
			end++;
		memset(is, 0, sizeof(*is));
		is->flows = g + start;
		is->n = end - start;
		is->best = g[start];
		for (int64 i = start; i < end; i++)
			if (metric(g[i]) > metric(is->best))
				is->best = g[i];
		is->best->want_x = true;
		start = end;
	}
}

/* one island into the incident it overlaps, or a new one */
static void
apply_island(ApplyState *as, Island *is)
{
	Incident	cur;

	island_sets(is);
	find_incident(as, is->flows[0], is->flows[0]->ts, is->flows[is->n - 1]->ts, &cur);
	if (cur.exists)
		grow_incident(as, is, &cur);
	else
		open_incident(as, is, &cur);
}

static void
count(const char *model, const char *counter, int64 n)
{
	Datum		v[3] = {CStringGetTextDatum(model), CStringGetTextDatum(counter), Int64GetDatum(n)};

	if (n > 0 &&
		SPI_execute_with_args("INSERT INTO nids.alert_counters AS c (model, counter, flows) "
							  "VALUES ($1, $2, $3) ON CONFLICT (model, counter) "
							  "DO UPDATE SET flows = c.flows OPERATOR(pg_catalog.+) excluded.flows",
							  3, (Oid[]) {TEXTOID, TEXTOID, INT8OID}, v, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "nids alerts: counting failed");
}

static void
apply_plans(ApplyState *as)
{
	as->find = prepare("SELECT alert_id, first_seen, last_seen, severity, max_probability, max_novelty "
					   "FROM nids.alerts WHERE src_ip = $1 AND kind = 'flow' AND class = $2 "
					   "AND verdict = $3 AND model = $4 AND status <> 'closed' "
					   "AND last_seen >= $5 AND first_seen <= $6 "
					   "ORDER BY first_seen, alert_id FOR UPDATE",
					   6, (Oid[]) {INETOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID});
	as->insert = prepare("INSERT INTO nids.alerts (kind, model, version, model_id, verdict, class, "
						 "severity, src_ip, dst_ip, dst_port, destinations, ports, protocol, "
						 "first_seen, last_seen, flows, max_probability, max_novelty, community_id) "
						 "SELECT 'flow', $1, $2, m.model_id, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
						 "$12, $13, $14, $15, $16, $17 FROM (SELECT NULL) s "
						 "LEFT JOIN nids.model_versions m ON m.name = $1 AND m.version = $2 "
						 "RETURNING alert_id",
						 17, (Oid[]) {TEXTOID, INT4OID, TEXTOID, TEXTOID, INT2OID, INETOID, INETOID,
		INT4OID, INT4OID, INT4OID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, FLOAT8OID,
	FLOAT8OID, TEXTOID});
	as->grow = prepare("UPDATE nids.alerts SET flows = flows + $2, "
					   "first_seen = LEAST(first_seen, $3), last_seen = GREATEST(last_seen, $4), "
					   "max_probability = $5, max_novelty = $6, severity = $7, "
					   "destinations = destinations + $8, ports = ports + $9, "
					   "dst_ip = CASE WHEN destinations + $8 > 1 THEN NULL ELSE COALESCE(dst_ip, $10) END, "
					   "dst_port = CASE WHEN ports + $9 > 1 THEN NULL ELSE COALESCE(dst_port, $11) END, "
					   "reasons = COALESCE($12, reasons), updated_at = pg_catalog.clock_timestamp() "
					   "WHERE alert_id = $1",
					   12, (Oid[]) {INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, FLOAT8OID,
		FLOAT8OID, INT2OID, INT4OID, INT4OID, INETOID, INT4OID, JSONBOID});
	as->dsts = prepare(ADD_DSTS_SQL, 2, (Oid[]) {INT8OID, INETARRAYOID});
	as->ports = prepare(ADD_PORTS_SQL, 2, (Oid[]) {INT8OID, INT4ARRAYOID});
}

/* the owner of table nids.name, whom nids' writes to it run as */
Oid
nids_table_owner(const char *name)
{
	Oid			nsp = get_namespace_oid("nids", false);
	Oid			relid = get_relname_relid(name, nsp);
	Relation	rel;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table nids.%s does not exist", name),
				 errhint("Run ALTER EXTENSION nids UPDATE.")));
	rel = table_open(relid, AccessShareLock);
	owner = rel->rd_rel->relowner;
	table_close(rel, AccessShareLock);
	return owner;
}

/*
 * Turn the batch into incidents; returns the incidents opened or grown.
 * The batch's flows are reordered.
 */
int64
alert_apply(AlertBatch *b, ScoreState *st)
{
	ApplyState	as;
	AlertFlow **order;
	Island	   *islands;
	int64		nislands = 0;
	int64		kept = 0,
				nsupp = 0;
	Oid			save_user;
	int			save_sec;
	int			nest;

	if (b->n == 0 && b->no_source == 0)
		return 0;
	memset(&as, 0, sizeof(as));
	as.b = b;
	as.st = st;
	as.model = b->model->name;
	as.gap = (int64) nids_alert_gap * USECS_PER_SEC;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(nids_table_owner("alerts"), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
	nest = nids_pin_search_path();
	alert_lock_sources(&b->sources);
	load_settings(&as);
	apply_plans(&as);

	order = palloc(sizeof(AlertFlow *) * Max(b->n, 1));
	for (int64 i = 0; i < b->n; i++)
	{
		if (as.nsupp > 0 && suppressed(&as, &b->flows[i]))
			nsupp++;
		else
			order[kept++] = &b->flows[i];
	}
	qsort(order, kept, sizeof(AlertFlow *), compare_flows);
	islands = palloc(sizeof(Island) * Max(kept, 1));
	for (int64 i = 0; i < kept;)
	{
		int64		j = i + 1;

		while (j < kept && same_group(order[i], order[j]))
			j++;
		group_islands(&as, order + i, j - i, islands, &nislands);
		i = j;
	}
	/* the features of the flows that explain incidents, read again if need be */
	if (b->fetch_x != NULL && nislands > 0)
		b->fetch_x(b, b->fetch_arg);
	for (int64 i = 0; i < nislands; i++)
	{
		apply_island(&as, &islands[i]);
		CHECK_FOR_INTERRUPTS();
	}
	count(as.model, "suppressed", nsupp);
	count(as.model, "no_source_or_time", b->no_source);
	nids_unpin_search_path(nest);
	SPI_finish();
	SetUserIdAndSecContext(save_user, save_sec);
	return as.changed;
}

/*
 * Scans (scan_trigger.c): a detected scan of one source, or the attempts
 * of a detected scanner after the decision, opens or grows the source's
 * incident of kind 'scan' and class kind_name, within nids.alert_gap of
 * flow time.  The caller holds the source's lock and runs inside SPI with the
 * search_path pinned.
 */
void
alert_scan(const AlertScan *sc)
{
	int64		gap = (int64) nids_alert_gap * USECS_PER_SEC;
	Datum		v[12];
	char		nulls[12];
	Oid			types[12] = {INETOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	int64		id = 0;
	bool		isnull;
	int			severity = 2;
	int			nd = 0,
				np = 0;
	Island		is;
	Datum		sv[1] = {CStringGetTextDatum(sc->class)};

	if (SPI_execute_with_args("SELECT severity FROM nids.alert_severity WHERE class = $1",
							  1, (Oid[]) {TEXTOID}, sv, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "nids alerts: reading severities failed");
	if (SPI_processed == 1)
		severity = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	v[0] = InetPGetDatum(sc->src);
	v[1] = CStringGetTextDatum(sc->class);
	v[2] = TimestampTzGetDatum(nids_time_add(sc->first, -gap));
	v[3] = TimestampTzGetDatum(nids_time_add(sc->last, gap));
	if (SPI_execute_with_args("SELECT alert_id, severity FROM nids.alerts WHERE src_ip = $1 "
							  "AND kind = 'scan' AND class = $2 AND status <> 'closed' "
							  "AND last_seen >= $3 AND first_seen <= $4 "
							  "ORDER BY first_seen, alert_id LIMIT 1 FOR UPDATE",
							  4, types, v, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "nids alerts: reading incidents failed");
	memset(&is, 0, sizeof(is));
	is.dsts = sc->dsts;
	is.ndsts = sc->ndsts;
	is.ports = sc->ports;
	is.nports = sc->nports;
	memset(nulls, ' ', sizeof(nulls));
	if (SPI_processed == 1)
	{
		int			cur_severity;

		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		cur_severity = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		add_sets(NULL, id, &is, &nd, &np);
		v[0] = Int64GetDatum(id);
		v[1] = Int64GetDatum(sc->attempts);
		v[2] = TimestampTzGetDatum(sc->first);
		v[3] = TimestampTzGetDatum(sc->last);
		v[4] = Int16GetDatum(Min(severity, cur_severity));
		v[5] = Int32GetDatum(nd);
		v[6] = Int32GetDatum(np);
		v[7] = sc->ndsts == 1 ? sc->dsts[0] : (Datum) 0;
		nulls[7] = sc->ndsts == 1 ? ' ' : 'n';
		v[8] = Int32GetDatum(sc->nports == 1 ? sc->ports[0] : 0);
		nulls[8] = sc->nports == 1 ? ' ' : 'n';
		v[9] = sc->reasons ? JsonbPGetDatum(sc->reasons) : (Datum) 0;
		nulls[9] = sc->reasons ? ' ' : 'n';
		if (SPI_execute_with_args("UPDATE nids.alerts SET flows = flows + $2, "
								  "first_seen = LEAST(first_seen, $3), last_seen = GREATEST(last_seen, $4), "
								  "severity = $5, destinations = destinations + $6, ports = ports + $7, "
								  "dst_ip = CASE WHEN destinations + $6 > 1 THEN NULL ELSE COALESCE(dst_ip, $8) END, "
								  "dst_port = CASE WHEN ports + $7 > 1 THEN NULL ELSE COALESCE(dst_port, $9) END, "
								  "reasons = COALESCE($10, reasons), updated_at = pg_catalog.clock_timestamp() "
								  "WHERE alert_id = $1",
								  10, (Oid[]) {INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT2OID,
			INT4OID, INT4OID, INETOID, INT4OID, JSONBOID}, v, nulls, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "nids alerts: growing a scan incident failed");
		if (severity < cur_severity)
			notify_scan(id, sc, severity);
		return;
	}
	v[0] = CStringGetTextDatum(sc->class);
	v[1] = Int16GetDatum(severity);
	v[2] = InetPGetDatum(sc->src);
	v[3] = sc->ndsts == 1 ? sc->dsts[0] : (Datum) 0;
	nulls[3] = sc->ndsts == 1 ? ' ' : 'n';
	v[4] = Int32GetDatum(sc->nports == 1 ? sc->ports[0] : 0);
	nulls[4] = sc->nports == 1 ? ' ' : 'n';
	v[5] = Int32GetDatum(sc->ndsts);
	v[6] = Int32GetDatum(sc->nports);
	v[7] = TimestampTzGetDatum(sc->first);
	v[8] = TimestampTzGetDatum(sc->last);
	v[9] = Int64GetDatum(sc->attempts);
	v[10] = sc->reasons ? JsonbPGetDatum(sc->reasons) : (Datum) 0;
	nulls[10] = sc->reasons ? ' ' : 'n';
	v[11] = Int32GetDatum(sc->protocol);
	nulls[11] = sc->protocol >= 0 ? ' ' : 'n';
	if (SPI_execute_with_args("INSERT INTO nids.alerts (kind, verdict, class, severity, src_ip, dst_ip, "
							  "dst_port, destinations, ports, first_seen, last_seen, flows, reasons, protocol) "
							  "VALUES ('scan', 'scan', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
							  "COALESCE($11, '[]'), $12) RETURNING alert_id",
							  12, (Oid[]) {TEXTOID, INT2OID, INETOID, INETOID, INT4OID, INT4OID, INT4OID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, JSONBOID, INT4OID}, v, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "nids alerts: opening a scan incident failed");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	add_sets(NULL, id, &is, &nd, &np);
	notify_scan(id, sc, severity);
}
