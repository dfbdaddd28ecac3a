/*-------------------------------------------------------------------------
 *
 * scan_trigger.c
 *	  nids_scan_trigger and nids_scans: the per-source scan detector
 *	  (scan_detector.c) over inserted flows, with its state kept in
 *	  nids.scan_state, or over any read-only query's rows.
 *
 * What counts (doc/alerts.md, "Scans"): a connection attempt is a flow
 * the source opened.  A TCP flow with a SYN (a continuation of a long
 * flow, split at the exporter's timeout, has none) is the walks' evidence;
 * a UDP flow or an ICMP echo request is weak evidence, counted only in
 * sweeps, and never to a multicast or broadcast address (discovery
 * protocols).  Other flows (replies, other protocols) are not attempts.
 * An attempt failed when it was never answered (no backward packet) or,
 * for TCP, refused (a RST and no payload back).  options.failed names a
 * boolean column instead: true failed, false succeeded, NULL not an
 * attempt; the protocol, where the flows have it, still says which
 * evidence the attempt is.
 *
 * Rows are taken per source in (timestamp, row) order.  The trigger keeps
 * each source's state between statements (6.3 kB whatever it contacts),
 * forgets a source idle for options.idle of flow time, and writes it all
 * in the inserting transaction, under the lock the incident steps share:
 * the same rows cut into statements in time order decide the same sources
 * at the same attempt as one statement, or nids_scans.  A late row
 * (earlier than its source's last) is counted when it arrives, never
 * dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "alert.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "flow.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "report.h"
#include "scan.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(nids_scan_trigger);
PG_FUNCTION_INFO_V1(nids_scans);

enum
{
	SC_SRC,
	SC_DST,
	SC_DPORT,
	SC_PROTO,
	SC_TS,
	SC_SYN,
	SC_BWD_PACKETS,
	SC_RST,
	SC_BWD_BYTES,
	SC_ICMP_TYPE,
	SC_FAILED,					/* options.failed */
	SC_NUM_COLS
};

static const char *const sc_names[SC_NUM_COLS - 1] = {
	"source_ip", "destination_ip", "destination_port", "protocol", "timestamp",
	"syn_flag_count", "total_backward_packets", "rst_flag_count",
	"total_length_of_bwd_packets", "icmp_type"
};

typedef struct ScanReader
{
	ScanParams	params;
	int			col[SC_NUM_COLS];
	Oid			type[SC_NUM_COLS];
	int64		rows;
	int64		skipped;		/* no source, destination or time */
	AlertSources sources;		/* every row's source: what the statement locks */
	int64		n;
	int64		cap;
	struct ScanRow *attempts;
} ScanReader;

typedef struct ScanRow
{
	uint8		key[18];		/* the source: family, bits, address */
	inet	   *src;
	inet	   *dst;
	int32		proto;
	ScanAttempt a;
} ScanRow;

static double
option_number(JsonbValue *v, const char *key, double lo, double hi)
{
	double		d;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options.%s must be a number", key)));
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
	if (!(d >= lo && d <= hi))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options.%s must be between %g and %g, not %g", key, lo, hi, d)));
	return d;
}

static bool
option_bool(JsonbValue *v, const char *key)
{
	if (v->type != jbvBool)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options.%s must be true or false", key)));
	return v->val.boolean;
}

/* options jsonb into p: every key known and in range, as nids_train's */
static void
scan_options(Jsonb *options, ScanParams *p)
{
	JsonbIterator *it;
	JsonbValue	v;
	char	   *key;

	scan_params_default(p);
	if (options == NULL)
		return;
	it = options_begin(options);
	while (options_next(&it, &key, &v))
	{
		if (strcmp(key, "theta0") == 0)
			p->theta0 = option_number(&v, key, 0.01, 0.99);
		else if (strcmp(key, "theta1") == 0)
			p->theta1 = option_number(&v, key, 0.01, 0.99);
		else if (strcmp(key, "horizontal_ratio") == 0)
			p->horizontal_ratio = option_number(&v, key, 1.01, 1e12);
		else if (strcmp(key, "vertical_ratio") == 0)
			p->vertical_ratio = option_number(&v, key, 1.01, 1e12);
		else if (strcmp(key, "idle_seconds") == 0)
			p->idle = (int64) option_number(&v, key, 1, 86400 * 365) * USECS_PER_SEC;
		else if (strcmp(key, "restart_seconds") == 0)
			p->restart = (int64) option_number(&v, key, 0, 86400 * 365) * USECS_PER_SEC;
		else if (strcmp(key, "sweep_seconds") == 0)
			p->sweep_window = (int64) option_number(&v, key, 1, 86400) * USECS_PER_SEC;
		else if (strcmp(key, "sweep_hosts") == 0)
			p->sweep_hosts = (int32) option_number(&v, key, 2, 1000000);
		else if (strcmp(key, "sweep_ports") == 0)
			p->sweep_ports = (int32) option_number(&v, key, 2, 65536);
		else if (strcmp(key, "sweep_answered") == 0)
			p->sweep_answered = option_number(&v, key, 0, 0.99);
		else if (strcmp(key, "sweep") == 0)
			p->sweep = option_bool(&v, key);
		else if (strcmp(key, "horizontal") == 0)
			p->horizontal = option_bool(&v, key);
		else if (strcmp(key, "vertical") == 0)
			p->vertical = option_bool(&v, key);
		else if (strcmp(key, "failed") == 0)
		{
			if (v.type != jbvString || v.val.string.len == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options.failed must name a boolean column")));
			p->failed_column = pnstrdup(v.val.string.val, v.val.string.len);
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\"", key),
					 errhint("Accepted: theta0, theta1, horizontal_ratio, vertical_ratio, idle_seconds, restart_seconds, horizontal, vertical, sweep, sweep_seconds, sweep_hosts, sweep_ports, sweep_answered, failed.")));
	}
	if (!(p->theta1 < p->theta0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options.theta1 (%g) must be below options.theta0 (%g)", p->theta1, p->theta0),
				 errdetail("theta0 is a benign source's chance that a first contact succeeds, theta1 a scanner's.")));
}

/* the columns of desc; 42703 naming the required ones it lacks */
static void
scan_columns(ScanReader *r, TupleDesc desc)
{
	StringInfoData missing;

	alert_find_columns(desc, sc_names, SC_NUM_COLS - 1, r->col, r->type);
	r->col[SC_FAILED] = -1;
	for (int i = 0; r->params.failed_column && i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), r->params.failed_column) == 0)
		{
			r->col[SC_FAILED] = i;
			r->type[SC_FAILED] = getBaseType(att->atttypid);
		}
	}
	initStringInfo(&missing);
	for (int c = SC_SRC; c <= SC_TS; c++)
		if (r->col[c] < 0 && c != SC_DPORT && c != SC_PROTO)
			appendStringInfo(&missing, "%s%s", missing.len ? ", " : "", sc_names[c]);
	if (r->params.failed_column && r->col[SC_FAILED] < 0)
		appendStringInfo(&missing, "%s%s (options.failed)", missing.len ? ", " : "",
						 r->params.failed_column);
	if (missing.len > 0)
	{
		bool		addresses = r->col[SC_SRC] < 0 || r->col[SC_DST] < 0 || r->col[SC_TS] < 0;

		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("the flows lack columns that scan detection needs: %s", missing.data),
				 errdetail("Scan detection follows each source's connection attempts to hosts and ports over time; columns are matched by canonical name."),
				 addresses
				 ? errhint("Read flows that carry their addresses and start times (nids-flowmeter writes them from packets; nids-load keeps them from CICFlowMeter CSVs that have them); a table without them cannot take the scan trigger: drop it there.")
				 : errhint("Name a boolean column of the flows with options.failed.")));
	}
	if (!r->params.failed_column && r->col[SC_BWD_PACKETS] < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("the flows have no column total_backward_packets, which tells a failed attempt"),
				 errhint("Name a boolean column with options.failed for flows from other exporters.")));
	for (int c = SC_SRC; c <= SC_DST; c++)
		if (r->type[c] != INETOID && r->type[c] != CIDROID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" must have type inet, not %s",
							NameStr(TupleDescAttr(desc, r->col[c])->attname),
							format_type_be(r->type[c]))));
	if (r->type[SC_TS] != TIMESTAMPTZOID && r->type[SC_TS] != TIMESTAMPOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" must have type timestamptz, not %s",
						NameStr(TupleDescAttr(desc, r->col[SC_TS])->attname),
						format_type_be(r->type[SC_TS]))));
	if (r->col[SC_FAILED] >= 0 && r->type[SC_FAILED] != BOOLOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("options.failed column \"%s\" must have type boolean, not %s",
						r->params.failed_column, format_type_be(r->type[SC_FAILED]))));
	for (int c = SC_DPORT; c < SC_FAILED; c++)
		if (c != SC_TS && r->col[c] >= 0 && !nids_numeric_type(r->type[c]))
			r->col[c] = -1;
}

static double
num(ScanReader *r, int c, const Datum *values, const bool *nulls)
{
	if (r->col[c] < 0 || nulls[r->col[c]])
		return NAN;
	return nids_datum_to_double(values[r->col[c]], r->type[c]);
}

#define PROTO_ICMP	1
#define PROTO_TCP	6
#define PROTO_UDP	17

/*
 * Whether the row is a connection attempt, of which family, and whether
 * it failed: the rule of the file's header comment.
 */
static bool
row_attempt(ScanReader *r, const Datum *values, const bool *nulls, int32 *proto,
			uint8 *family, bool *failed)
{
	double		p = num(r, SC_PROTO, values, nulls);

	*proto = isnan(p) ? -1 : (int32) p;
	if (*proto == PROTO_ICMP)
	{
		double		type = num(r, SC_ICMP_TYPE, values, nulls);

		if (!(isnan(type) || type == 8))
			return false;
		*family = SCAN_WEAK;
	}
	else if (*proto == PROTO_UDP)
		*family = SCAN_WEAK;
	else if (*proto == PROTO_TCP || *proto < 0)
		*family = SCAN_TCP;
	else
		return false;
	if (r->col[SC_FAILED] >= 0)
	{
		if (nulls[r->col[SC_FAILED]])
			return false;
		*failed = DatumGetBool(values[r->col[SC_FAILED]]);
		return true;
	}
	if (*family == SCAN_TCP)
	{
		double		syn = num(r, SC_SYN, values, nulls);
		double		rst = num(r, SC_RST, values, nulls);
		double		bwd_bytes = num(r, SC_BWD_BYTES, values, nulls);

		/* without the SYN count every TCP flow counts; without a protocol, the SYN decides */
		if (r->col[SC_SYN] >= 0 && !(syn > 0))
			return false;
		if (r->col[SC_SYN] < 0 && *proto < 0)
			return false;
		*failed = !(num(r, SC_BWD_PACKETS, values, nulls) > 0) || (rst > 0 && !(bwd_bytes > 0));
	}
	else
		*failed = !(num(r, SC_BWD_PACKETS, values, nulls) > 0);
	return true;
}

/* multicast and broadcast: where discovery protocols send, never a sweep */
static bool
inet_group(inet *a)
{
	const unsigned char *b = ip_addr(a);

	if (ip_family(a) == PGSQL_AF_INET)
		return (b[0] & 0xF0) == 0xE0 || (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255);
	return b[0] == 0xFF;
}

static uint32
inet_hash(inet *a)
{
	return hash_bytes((const unsigned char *) ip_addr(a), ip_addrsize(a)) ^ ip_family(a);
}

static void
scan_row(ScanReader *r, const Datum *values, const bool *nulls)
{
	ScanRow    *row;
	int32		proto;
	uint8		family = SCAN_TCP;
	bool		failed = false;
	double		dport;
	TimestampTz ts;

	r->rows++;
	if (!row_attempt(r, values, nulls, &proto, &family, &failed))
		return;
	if (nulls[r->col[SC_SRC]] || nulls[r->col[SC_DST]] || nulls[r->col[SC_TS]] ||
		!nids_flow_time(values[r->col[SC_TS]], r->type[SC_TS], &ts))
	{
		r->skipped++;
		return;
	}
	if (r->n == r->cap)
	{
		r->cap = Max(1024, r->cap * 2);
		r->attempts = r->attempts ? repalloc_huge(r->attempts, sizeof(ScanRow) * r->cap)
			: palloc(sizeof(ScanRow) * r->cap);
	}
	row = &r->attempts[r->n];
	row->src = (inet *) PG_DETOAST_DATUM_COPY(values[r->col[SC_SRC]]);
	memset(row->key, 0, sizeof(row->key));
	row->key[0] = ip_family(row->src);
	row->key[1] = ip_bits(row->src);
	memcpy(row->key + 2, ip_addr(row->src), ip_addrsize(row->src));
	row->dst = (inet *) PG_DETOAST_DATUM_COPY(values[r->col[SC_DST]]);
	if (family == SCAN_WEAK && inet_group(row->dst))
	{
		pfree(row->src);
		pfree(row->dst);
		return;
	}
	row->proto = proto;
	row->a.ts = ts;
	row->a.dst_hash = inet_hash(row->dst);
	dport = num(r, SC_DPORT, values, nulls);
	row->a.dport = (isnan(dport) || dport < 0 || dport > 65535) ? -1 : (int32) dport;
	row->a.failed = failed;
	row->a.family = family;
	row->a.row = r->n;
	r->n++;
}

/* per source, in (timestamp, row) order */
static int
compare_rows(const void *pa, const void *pb)
{
	const ScanRow *a = (const ScanRow *) pa;
	const ScanRow *b = (const ScanRow *) pb;
	int			c = memcmp(a->key, b->key, sizeof(a->key));

	if (c != 0)
		return c;
	if (a->a.ts != b->a.ts)
		return a->a.ts < b->a.ts ? -1 : 1;
	return a->a.row < b->a.row ? -1 : (a->a.row > b->a.row);
}

static bool
same_source(const ScanRow *a, const ScanRow *b)
{
	return memcmp(a->key, b->key, sizeof(a->key)) == 0;
}

/* a detection, as nids_scans returns it and the incident's reasons say */
typedef struct Detection
{
	inet	   *src;
	ScanKind	kind;
	TimestampTz first_seen;
	TimestampTz detected_at;
	int64		attempts;
	int32		destinations;
	int32		ports;
	int64		failed;
	double		score;
	int32		first_contacts;
	int32		first_failed;
	ScanFamily	family;
	int32		walks;
	int64		window;
} Detection;

static Jsonb *
detection_reasons(const Detection *d)
{
	JsonbParseState *ps = NULL;
	const char *what = d->kind == SCAN_ADDRESS ? "new hosts" : "new ports of one host";

	pushJsonbValue(&ps, WJB_BEGIN_ARRAY, NULL);
	report_element_begin(&ps);
	if (d->family == SCAN_TCP)
	{
		report_string(&ps, "reason",
					  psprintf("%d of %d TCP first contacts to %s failed", d->first_failed,
							   d->first_contacts, what));
		report_string(&ps, "test", d->kind == SCAN_ADDRESS
					  ? "sequential test over TCP first contacts to hosts (TRW)"
					  : "sequential test over TCP first contacts to ports of one host");
		report_number(&ps, "likelihood_ratio", d->score);
		report_int(&ps, "walk", d->walks);
	}
	else
	{
		report_string(&ps, "reason",
					  psprintf("%d %s got no answer to %s within %.0f s (%d answered)",
							   d->first_failed, what,
							   d->kind == SCAN_ADDRESS ? "UDP or ICMP echo" : "UDP",
							   (double) d->window / USECS_PER_SEC,
							   d->first_contacts - d->first_failed));
		report_string(&ps, "test", d->kind == SCAN_ADDRESS ? "UDP/ICMP sweep of hosts"
					  : "UDP sweep of ports of one host");
		report_int(&ps, "unanswered", d->first_failed);
	}
	report_int(&ps, "attempts", d->attempts);
	report_string(&ps, "detected_at", DatumGetCString(DirectFunctionCall1(timestamptz_out,
																		   TimestampTzGetDatum(d->detected_at))));
	report_end(&ps);
	return JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_ARRAY, NULL));
}

/* what a detected scanner's attempts of one batch add to its incident */
typedef struct ScanGrowth
{
	bool		active;
	AlertScan	sc;
	int64		cap;
	Datum	   *dsts;
	int32	   *ports;
	int			protocol;
} ScanGrowth;

static void
growth_add(ScanGrowth *g, const ScanRow *row)
{
	if (!g->active)
	{
		memset(g, 0, sizeof(*g));
		g->active = true;
		g->sc.src = row->src;
		g->sc.first = row->a.ts;
		g->sc.last = row->a.ts;
		g->cap = 64;
		g->dsts = palloc(sizeof(Datum) * g->cap);
		g->ports = palloc(sizeof(int32) * g->cap);
		g->protocol = row->proto;
	}
	if (g->sc.ndsts == g->cap || g->sc.nports == g->cap)
	{
		g->cap *= 2;
		g->dsts = repalloc(g->dsts, sizeof(Datum) * g->cap);
		g->ports = repalloc(g->ports, sizeof(int32) * g->cap);
	}
	g->sc.first = Min(g->sc.first, row->a.ts);
	g->sc.last = Max(g->sc.last, row->a.ts);
	g->sc.attempts++;
	g->dsts[g->sc.ndsts++] = InetPGetDatum(row->dst);
	if (row->a.dport >= 0)
		g->ports[g->sc.nports++] = row->a.dport;
	if (g->protocol != row->proto)
		g->protocol = -1;
}

static int
cmp_inet(const void *a, const void *b)
{
	return DatumGetInt32(DirectFunctionCall2(network_cmp, *(const Datum *) a, *(const Datum *) b));
}

static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/* write what a source's batch added to its scan incident(s) */
static void
growth_write(ScanGrowth *g, ScanKind kind, Jsonb *reasons)
{
	int			n = 0;

	if (!g->active)
		return;
	qsort(g->dsts, g->sc.ndsts, sizeof(Datum), cmp_inet);
	for (int i = 0; i < g->sc.ndsts; i++)
		if (n == 0 || cmp_inet(&g->dsts[n - 1], &g->dsts[i]) != 0)
			g->dsts[n++] = g->dsts[i];
	g->sc.ndsts = n;
	n = 0;
	qsort(g->ports, g->sc.nports, sizeof(int32), cmp_int32);
	for (int i = 0; i < g->sc.nports; i++)
		if (n == 0 || g->ports[n - 1] != g->ports[i])
			g->ports[n++] = g->ports[i];
	g->sc.nports = n;
	g->sc.dsts = g->dsts;
	g->sc.ports = g->ports;
	g->sc.class = scan_kind_names[kind];
	g->sc.protocol = g->protocol;
	g->sc.reasons = reasons;
	alert_scan(&g->sc);
}

/*
 * Run the detector over rows[0 .. n-1] of one source in time order, from
 * state s; detections into *dets (appended), and, when incidents are
 * written, the attempts of a detected scanner into its incident.
 */
static void
scan_source(ScanRow *rows, int64 n, ScanSource *s, const ScanParams *p, bool incidents,
			Detection **dets, int64 *ndets, int64 *capdets)
{
	ScanGrowth	growth[2];
	Jsonb	   *reasons[2] = {NULL, NULL};

	memset(growth, 0, sizeof(growth));
	for (int64 i = 0; i < n; i++)
	{
		ScanDecision d;

		if (scan_source_idle(s, rows[i].a.ts, p))
		{
			/* forgotten: what was detected before is written first */
			if (incidents)
				for (int k = 0; k < 2; k++)
				{
					growth_write(&growth[k], (ScanKind) k, reasons[k]);
					growth[k].active = false;
					reasons[k] = NULL;
				}
			scan_source_init(s, rows[i].a.ts);
		}
		scan_observe(s, &rows[i].a, p, &d);
		if (d.detected)
		{
			Detection  *det;

			if (*ndets == *capdets)
			{
				*capdets = Max(16, *capdets * 2);
				*dets = *dets ? repalloc(*dets, sizeof(Detection) * *capdets)
					: palloc(sizeof(Detection) * *capdets);
			}
			det = &(*dets)[(*ndets)++];
			det->src = rows[i].src;
			det->kind = d.kind;
			det->first_seen = s->first_seen;
			det->detected_at = rows[i].a.ts;
			det->attempts = d.attempts;
			det->destinations = s->hosts;
			det->ports = s->ports;
			det->failed = s->failed;
			det->score = d.score;
			det->first_contacts = d.first_contacts;
			det->first_failed = d.first_failed;
			det->family = d.family;
			det->walks = d.walks;
			det->window = d.window;
			if (incidents)
				reasons[d.kind] = detection_reasons(det);
		}
		if (incidents)
			for (int k = 0; k < 2; k++)
				if (s->detected[k])
					growth_add(&growth[k], &rows[i]);
	}
	if (incidents)
		for (int k = 0; k < 2; k++)
			growth_write(&growth[k], (ScanKind) k, reasons[k]);
}

#define STATE_MAGIC		0x6E736332	/* "nsc2": 1.3 (a 1.2 state starts anew) */

static bytea *
state_bytes(const ScanSource *s)
{
	bytea	   *b = palloc(VARHDRSZ + sizeof(uint32) + sizeof(ScanSource));
	uint32		magic = STATE_MAGIC;

	SET_VARSIZE(b, VARHDRSZ + sizeof(uint32) + sizeof(ScanSource));
	memcpy(VARDATA(b), &magic, sizeof(magic));
	memcpy(VARDATA(b) + sizeof(magic), s, sizeof(ScanSource));
	return b;
}

/* a stored state, or false when it is not one this version wrote */
static bool
state_read(bytea *b, ScanSource *s)
{
	uint32		magic;

	if (VARSIZE_ANY_EXHDR(b) != sizeof(uint32) + sizeof(ScanSource))
		return false;
	memcpy(&magic, VARDATA_ANY(b), sizeof(magic));
	if (magic != STATE_MAGIC)
		return false;
	memcpy(s, VARDATA_ANY(b) + sizeof(magic), sizeof(ScanSource));
	return true;
}

/*
 * One source's attempts rows[0 .. n-1] of the trigger's statement: its
 * state in, the detector, its incidents and its state out.  Each source
 * has an SPI connection of its own, so that what it reads and writes is
 * freed before the next: the statement's memory does not grow with the
 * number of its sources.  Returns the source's last flow time.
 */
static TimestampTz
scan_apply_source(ScanReader *r, Oid stream, ScanRow *rows, int64 n)
{
	ScanSource *s;
	Datum		v[3];
	bool		isnull;
	bool		have = false;
	Detection  *dets = NULL;
	int64		ndets = 0,
				capdets = 0;
	TimestampTz last;

	SPI_connect();
	s = palloc(sizeof(ScanSource));
	v[0] = ObjectIdGetDatum(stream);
	v[1] = InetPGetDatum(rows[0].src);
	if (SPI_execute_with_args("SELECT state FROM nids.scan_state WHERE stream = $1 AND src_ip = $2 FOR UPDATE",
							  2, (Oid[]) {OIDOID, INETOID}, v, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "nids scans: reading state failed");
	if (SPI_processed == 1)
		have = state_read(DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull)), s);
	if (!have)
		scan_source_init(s, rows[0].a.ts);
	scan_source(rows, n, s, &r->params, true, &dets, &ndets, &capdets);
	last = s->last_seen;
	v[2] = PointerGetDatum(state_bytes(s));
	if (SPI_execute_with_args("INSERT INTO nids.scan_state (stream, src_ip, last_seen, state) "
							  "VALUES ($1, $2, $4, $3) ON CONFLICT (stream, src_ip) "
							  "DO UPDATE SET last_seen = excluded.last_seen, state = excluded.state",
							  4, (Oid[]) {OIDOID, INETOID, BYTEAOID, TIMESTAMPTZOID},
							  (Datum[]) {v[0], v[1], v[2], TimestampTzGetDatum(last)},
							  NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "nids scans: writing state failed");
	SPI_finish();
	return last;
}

/* the trigger's statement: every source's attempts, expiry and counts */
static void
scan_apply_stream(ScanReader *r, Oid stream)
{
	Oid			save_user;
	int			save_sec;
	int			nest;
	TimestampTz latest = DT_NOBEGIN;

	if (r->n == 0 && r->skipped == 0)
		return;
	qsort(r->attempts, r->n, sizeof(ScanRow), compare_rows);
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(nids_table_owner("scan_state"), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	nest = nids_pin_search_path();
	alert_lock_sources(&r->sources);
	for (int64 i = 0; i < r->n;)
	{
		int64		j = i + 1;
		TimestampTz last;

		while (j < r->n && same_source(&r->attempts[i], &r->attempts[j]))
			j++;
		last = scan_apply_source(r, stream, r->attempts + i, j - i);
		latest = Max(latest, last);
		i = j;
		CHECK_FOR_INTERRUPTS();
	}
	SPI_connect();
	/* sources idle for longer than options.idle are forgotten */
	if (latest != DT_NOBEGIN &&
		SPI_execute_with_args("DELETE FROM nids.scan_state WHERE stream = $1 AND last_seen < $2",
							  2, (Oid[]) {OIDOID, TIMESTAMPTZOID},
							  (Datum[]) {ObjectIdGetDatum(stream), TimestampTzGetDatum(nids_time_add(latest, -r->params.idle))},
							  NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "nids scans: expiring state failed");
	if (r->skipped > 0 &&
		SPI_execute_with_args("INSERT INTO nids.alert_counters AS c (model, counter, flows) "
							  "VALUES ('', 'scan_attempts_without_address_or_time', $1) "
							  "ON CONFLICT (model, counter) DO UPDATE SET flows = c.flows OPERATOR(pg_catalog.+) excluded.flows",
							  1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(r->skipped)}, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "nids scans: counting failed");
	SPI_finish();
	nids_unpin_search_path(nest);
	SetUserIdAndSecContext(save_user, save_sec);
}

Datum
nids_scan_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = alert_statement_trigger(fcinfo, "nids_scan_trigger",
													"its options as jsonb text");
	TupleDesc	desc;
	MemoryContext cxt,
				old;
	ScanReader	r;
	TupleTableSlot *slot;
	int			need;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "nids scan trigger", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	memset(&r, 0, sizeof(r));
	scan_options(trigdata->tg_trigger->tgnargs == 1
				 ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(trigdata->tg_trigger->tgargs[0])))
				 : NULL, &r.params);
	desc = RelationGetDescr(trigdata->tg_relation);
	scan_columns(&r, desc);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(trigdata->tg_newtable);
	/* deform only as far as the columns read: icmp_type, at the end, for ICMP only */
	need = 0;
	for (int c = 0; c < SC_NUM_COLS; c++)
		if (c != SC_ICMP_TYPE)
			need = Max(need, r.col[c] + 1);
	while (tuplestore_gettupleslot(trigdata->tg_newtable, true, false, slot))
	{
		slot_getsomeattrs(slot, need);
		if (!slot->tts_isnull[r.col[SC_SRC]])
			alert_sources_add(&r.sources, DatumGetInetPP(slot->tts_values[r.col[SC_SRC]]));
		if (r.col[SC_ICMP_TYPE] >= need &&
			(r.col[SC_PROTO] < 0 ||
			 num(&r, SC_PROTO, slot->tts_values, slot->tts_isnull) == PROTO_ICMP))
			slot_getsomeattrs(slot, r.col[SC_ICMP_TYPE] + 1);
		else if (r.col[SC_ICMP_TYPE] >= need)
			slot->tts_isnull[r.col[SC_ICMP_TYPE]] = true;	/* not read: not ICMP */
		scan_row(&r, slot->tts_values, slot->tts_isnull);
	}
	ExecDropSingleTupleTableSlot(slot);
	scan_apply_stream(&r, trigdata->tg_trigger->tgoid);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return PointerGetDatum(NULL);
}

typedef struct ScansCall
{
	ScanReader *r;
	bool		started;
	MemoryContext cxt;			/* where the attempts live: not SPI's */
} ScansCall;

static void
scans_rows(Portal portal, void *arg)
{
	ScansCall  *sc = (ScansCall *) arg;

	for (;;)
	{
		MemoryContext old;
		int			natts;
		Datum	   *values;
		bool	   *nulls;

		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		old = MemoryContextSwitchTo(sc->cxt);
		natts = SPI_tuptable->tupdesc->natts;
		values = palloc(sizeof(Datum) * natts);
		nulls = palloc(sizeof(bool) * natts);

		if (!sc->started)
		{
			scan_columns(sc->r, SPI_tuptable->tupdesc);
			sc->started = true;
		}
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
			scan_row(sc->r, values, nulls);
		}
		pfree(values);
		pfree(nulls);
		MemoryContextSwitchTo(old);
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * nids_scans(window_query, options): the detector over the query's rows,
 * from no state; one row per detection, in detection order.
 */
Datum
nids_scans(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "nids scans",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	ScanReader	r;
	ScansCall	sc = {&r, false, cxt};
	Detection  *dets = NULL;
	int64		ndets = 0,
				capdets = 0;

	InitMaterializedSRF(fcinfo, 0);
	old = MemoryContextSwitchTo(cxt);
	memset(&r, 0, sizeof(r));
	scan_options(PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1), &r.params);
	SPI_connect();
	flow_run_window(flow_prepare_window(query), scans_rows, &sc);
	SPI_finish();
	qsort(r.attempts, r.n, sizeof(ScanRow), compare_rows);
	for (int64 i = 0; i < r.n;)
	{
		int64		j = i + 1;
		ScanSource *s = palloc(sizeof(ScanSource));

		while (j < r.n && same_source(&r.attempts[i], &r.attempts[j]))
			j++;
		scan_source_init(s, r.attempts[i].a.ts);
		scan_source(r.attempts + i, j - i, s, &r.params, false, &dets, &ndets, &capdets);
		pfree(s);
		i = j;
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(old);
	for (int64 i = 0; i < ndets; i++)
	{
		Detection  *d = &dets[i];
		Datum		v[9];
		bool		nulls[9] = {false};

		v[0] = InetPGetDatum(d->src);
		v[1] = CStringGetTextDatum(scan_kind_names[d->kind]);
		v[2] = TimestampTzGetDatum(d->first_seen);
		v[3] = TimestampTzGetDatum(d->detected_at);
		v[4] = Int32GetDatum((int32) Min(d->attempts, PG_INT32_MAX));
		v[5] = Int32GetDatum(d->destinations);
		v[6] = Int32GetDatum(d->ports);
		v[7] = Int32GetDatum((int32) Min(d->failed, PG_INT32_MAX));
		v[8] = Float8GetDatum(d->score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
	}
	MemoryContextDelete(cxt);
	return (Datum) 0;
}
