/*-------------------------------------------------------------------------
 *
 * alert_reader.c
 *	  Flows into incidents: nids_alert_trigger (AFTER INSERT ... REFERENCING
 *	  NEW TABLE ... FOR EACH STATEMENT: the whole statement's rows in one
 *	  pass) and nids_alerts_from (the same from a read-only query, for
 *	  backfills).  Both read rows the same way into one AlertBatch, which
 *	  alert_incident.c turns into incidents.
 *
 * Columns are found by canonical name: source_ip and timestamp are
 * required; destination_ip, source_port, destination_port and protocol
 * are used where the table has them.  A row's verdict is read from the
 * verdict and predicted_label columns that nids_score_trigger fills (and
 * probability and novelty, where present); a row without them is scored
 * here, as nids_ensemble would.  Only flagged rows (attack or anomaly)
 * are kept, with their features for the incident's explanation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "alert.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "flow.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(nids_alert_trigger);
PG_FUNCTION_INFO_V1(nids_alerts_from);

enum
{
	COL_SRC,
	COL_DST,
	COL_SPORT,
	COL_DPORT,
	COL_PROTO,
	COL_TS,
	COL_VERDICT,
	COL_LABEL,
	COL_PROBABILITY,
	COL_NOVELTY,
	NUM_COLS
};

/* canonical names for the first six, output names for the others */
static const char *const col_names[NUM_COLS] = {
	"source_ip", "destination_ip", "source_port", "destination_port", "protocol",
	"timestamp", "verdict", "predicted_label", "probability", "novelty"
};

/* how rows of one row type are read */
typedef struct AlertReader
{
	AlertBatch *batch;
	ScoreState *st;
	FeatureMap	map;
	int			col[NUM_COLS];	/* 0-based attribute, or -1 */
	Oid			type[NUM_COLS];	/* its base type */
	bool		has_verdicts;	/* verdict and predicted_label columns */
	bool		keep_x;			/* keep every flagged flow's features */
	text	   *last_text;		/* the last predicted_label read ... */
	int			last_label;		/* ... and its class */
	MemoryContext cxt;
} AlertReader;

static bool
is_address_type(Oid t)
{
	return t == INETOID || t == CIDROID;
}

/*
 * The columns of desc named names[0..n) (by canonical name; nids' output
 * columns by their own name), as 0-based attributes (-1: none) and their
 * base types: the 1.2 triggers read flows by name, as nids-load writes them.
 */
void
alert_find_columns(TupleDesc desc, const char *const *names, int n, int *col, Oid *type)
{
	char		norm[NAMEDATALEN * 2];

	for (int c = 0; c < n; c++)
		col[c] = -1;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		const char *canon;

		if (att->attisdropped)
			continue;
		canon = nids_is_output_column(name) ? name
			: canonical_attname(name, norm, sizeof(norm));
		for (int c = 0; c < n; c++)
			if (col[c] < 0 && strcmp(canon, names[c]) == 0)
			{
				col[c] = i;
				type[c] = getBaseType(att->atttypid);
			}
	}
}

/* the columns of desc; 42703 naming the required ones it lacks */
static void
reader_columns(AlertReader *r, TupleDesc desc)
{
	alert_find_columns(desc, col_names, NUM_COLS, r->col, r->type);
	if (r->col[COL_SRC] < 0 || r->col[COL_TS] < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("the flows have no column %s%s%s, which incidents need",
						r->col[COL_SRC] < 0 ? "source_ip" : "",
						r->col[COL_SRC] < 0 && r->col[COL_TS] < 0 ? " and no column " : "",
						r->col[COL_TS] < 0 ? "timestamp" : ""),
				 errdetail("An incident gathers one source's flagged flows over time; columns are matched by canonical name."),
				 errhint("Load flows that carry their addresses and start times (nids-flowmeter writes them from packets; nids-load keeps them from CICFlowMeter CSVs that have them), or drop the alert trigger from this table.")));
	for (int c = COL_SRC; c <= COL_DST; c++)
		if (r->col[c] >= 0 && !is_address_type(r->type[c]))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" must have type inet, not %s",
							NameStr(TupleDescAttr(desc, r->col[c])->attname),
							format_type_be(r->type[c])),
					 errhint("ALTER TABLE ... ALTER COLUMN ... TYPE inet USING ...::inet; nids-load 1.2 stores addresses as inet.")));
	if (r->type[COL_TS] != TIMESTAMPTZOID && r->type[COL_TS] != TIMESTAMPOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" must have type timestamptz, not %s",
						NameStr(TupleDescAttr(desc, r->col[COL_TS])->attname),
						format_type_be(r->type[COL_TS]))));
	for (int c = COL_SPORT; c <= COL_PROTO; c++)
		if (r->col[c] >= 0 && !nids_numeric_type(r->type[c]))
			r->col[c] = -1;		/* not a number: treated as absent */
	r->has_verdicts = r->col[COL_VERDICT] >= 0 && r->col[COL_LABEL] >= 0 &&
		r->type[COL_VERDICT] == TEXTOID && r->type[COL_LABEL] == TEXTOID;
}

static void
reader_init(AlertReader *r, AlertBatch *batch, ScoreState *st, TupleDesc desc)
{
	NidsModel  *model = st->model;

	memset(r, 0, sizeof(*r));
	r->batch = batch;
	r->st = st;
	r->cxt = CurrentMemoryContext;
	reader_columns(r, desc);
	feature_map_build(&r->map, model->feature_names, model->num_features, model->name,
					  desc, CurrentMemoryContext);
	if (!r->has_verdicts)
		feature_map_check_coverage(&r->map, model->feature_names, model->name);
	memset(batch, 0, sizeof(*batch));
	batch->model = model;
	batch->cap = 1024;
	batch->flows = palloc(sizeof(AlertFlow) * batch->cap);
	r->last_label = -1;
}

/* a column's value as an integer in [0, max], or -1: none or impossible */
static int32
int_column(AlertReader *r, int c, const Datum *values, const bool *nulls, int32 max)
{
	double		v;

	if (r->col[c] < 0 || nulls[r->col[c]])
		return -1;
	v = nids_datum_to_double(values[r->col[c]], r->type[c]);
	return (isnan(v) || v < 0 || v > max) ? -1 : (int32) v;
}

static bool
text_is(Datum d, const char *s)
{
	text	   *t = DatumGetTextPP(d);
	size_t		n = strlen(s);

	return VARSIZE_ANY_EXHDR(t) == n && memcmp(VARDATA_ANY(t), s, n) == 0;
}

/* the class of a predicted_label, or -1; labels repeat: the last is kept */
static int
label_index(AlertReader *r, Datum d)
{
	NidsModel  *model = r->st->model;
	text	   *t = DatumGetTextPP(d);
	int			n = VARSIZE_ANY_EXHDR(t);

	if (r->last_text != NULL && VARSIZE_ANY_EXHDR(r->last_text) == n &&
		memcmp(VARDATA_ANY(r->last_text), VARDATA_ANY(t), n) == 0)
		return r->last_label;
	r->last_label = -1;
	for (int c = 0; c < model->num_classes; c++)
		if (strlen(model->class_labels[c]) == n &&
			memcmp(model->class_labels[c], VARDATA_ANY(t), n) == 0)
			r->last_label = c;
	if (r->last_text != NULL)
		pfree(r->last_text);
	r->last_text = (text *) MemoryContextAlloc(r->cxt, VARHDRSZ + n);
	SET_VARSIZE(r->last_text, VARHDRSZ + n);
	memcpy(VARDATA(r->last_text), VARDATA_ANY(t), n);
	return r->last_label;
}

/* one row: scored or read, kept when flagged */
static void
reader_row(AlertReader *r, const Datum *values, const bool *nulls)
{
	AlertBatch *b = r->batch;
	NidsModel  *model = r->st->model;
	int			d = model->num_features;
	AlertFlow  *f;
	NidsVerdict verdict = NIDS_VERDICT_BENIGN;
	int			label = -1;
	double		probability = NAN,
				novelty = NAN;
	bool		scored = false;
	TimestampTz ts;

	b->rows++;
	if (!nulls[r->col[COL_SRC]])
		alert_sources_add(&b->sources, DatumGetInetPP(values[r->col[COL_SRC]]));
	if (r->has_verdicts && !nulls[r->col[COL_VERDICT]] && !nulls[r->col[COL_LABEL]])
	{
		Datum		v = values[r->col[COL_VERDICT]];

		verdict = text_is(v, "attack") ? NIDS_VERDICT_ATTACK
			: text_is(v, "anomaly") ? NIDS_VERDICT_ANOMALY : NIDS_VERDICT_BENIGN;
		if (verdict == NIDS_VERDICT_BENIGN)
			return;
		label = label_index(r, values[r->col[COL_LABEL]]);
		/* a label of another version: score with this one */
		scored = label >= 0;
		if (scored && r->col[COL_PROBABILITY] >= 0 && !nulls[r->col[COL_PROBABILITY]] &&
			r->type[COL_PROBABILITY] == FLOAT8OID)
			probability = DatumGetFloat8(values[r->col[COL_PROBABILITY]]);
		if (scored && r->col[COL_NOVELTY] >= 0 && !nulls[r->col[COL_NOVELTY]] &&
			r->type[COL_NOVELTY] == FLOAT8OID)
			novelty = DatumGetFloat8(values[r->col[COL_NOVELTY]]);
	}
	if (!scored)
	{
		double		anomaly = NAN;
		bool		novel = false;

		feature_map_values(&r->map, values, nulls, r->st->x);
		label = score_classify(r->st);
		probability = r->st->proba[label];
		if (label == model->benign_class)
			novelty = score_novelty(r->st, &anomaly, &novel);
		verdict = nids_verdict(label, model->benign_class, novel);
		if (verdict == NIDS_VERDICT_BENIGN)
			return;
	}
	if (nulls[r->col[COL_SRC]] || nulls[r->col[COL_TS]] ||
		!nids_flow_time(values[r->col[COL_TS]], r->type[COL_TS], &ts))
	{
		b->no_source++;
		return;
	}
	if (b->n == b->cap)
	{
		b->cap *= 2;
		b->flows = repalloc_huge(b->flows, sizeof(AlertFlow) * b->cap);
	}
	f = &b->flows[b->n];
	memset(f, 0, sizeof(*f));
	f->src = ((inet *) PG_DETOAST_DATUM_COPY(values[r->col[COL_SRC]]));
	f->family = ip_family(f->src);
	f->bits = ip_bits(f->src);
	memcpy(f->addr, ip_addr(f->src), ip_addrsize(f->src));
	f->dst = r->col[COL_DST] >= 0 && !nulls[r->col[COL_DST]]
		? ((inet *) PG_DETOAST_DATUM_COPY(values[r->col[COL_DST]])) : NULL;
	f->sport = int_column(r, COL_SPORT, values, nulls, 65535);
	f->dport = int_column(r, COL_DPORT, values, nulls, 65535);
	f->proto = int_column(r, COL_PROTO, values, nulls, 255);
	f->ts = ts;
	f->verdict = verdict;
	f->label = label;
	f->probability = probability;
	f->novelty = novelty;
	f->row = b->rows - 1;		/* its ordinal among the rows read */
	if (r->keep_x)
	{
		/* the rows cannot be read again: keep what an explanation needs */
		if (scored)
			feature_map_values(&r->map, values, nulls, r->st->x);
		f->x = palloc(sizeof(float) * Max(d, 1));
		memcpy(f->x, r->st->x, sizeof(float) * d);
	}
	b->n++;
	nids_check_interrupts(b->n);
}

/* the trigger's state per call site: the model's scoring buffers */
typedef struct AlertTriggerState
{
	ScoreState	st;
	text	   *model_name;
} AlertTriggerState;

/*
 * The checks nids' statement triggers (nids_alert_trigger, nids_scan_trigger)
 * make before anything else: AFTER INSERT, FOR EACH STATEMENT, with a
 * transition table, at most one argument (what argument says it is), and
 * an inserting role that may raise incidents.
 */
TriggerData *
alert_statement_trigger(FunctionCallInfo fcinfo, const char *name, const char *argument)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be called as a trigger", name)));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be an AFTER INSERT ... REFERENCING NEW TABLE AS ... FOR EACH STATEMENT trigger", name)));
	if (trigdata->tg_trigger->tgnargs > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s() takes at most one argument, %s", name, argument)));
	alert_require_feeder(psprintf("%s()", name));
	return trigdata;
}

typedef struct TriggerFetch
{
	AlertReader *r;
	Tuplestorestate *store;
	TupleDesc	desc;
} TriggerFetch;

/* the features of the flows alert_apply asks for: the rows read again */
static void
trigger_fetch_x(AlertBatch *b, void *arg)
{
	TriggerFetch *tf = (TriggerFetch *) arg;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(tf->desc, &TTSOpsMinimalTuple);
	int			d = b->model->num_features;
	int64		ordinal = 0;

	tuplestore_rescan(tf->store);
	for (int64 next = 0; next < b->n; next++)
	{
		if (!b->flows[next].want_x)
			continue;
		/* skip the rows before it without reading them into a slot */
		if (b->flows[next].row > ordinal &&
			!tuplestore_skiptuples(tf->store, b->flows[next].row - ordinal, true))
			break;
		ordinal = b->flows[next].row;
		if (!tuplestore_gettupleslot(tf->store, true, false, slot))
			break;
		ordinal++;
		slot_getallattrs(slot);
		b->flows[next].x = palloc(sizeof(float) * Max(d, 1));
		feature_map_values(&tf->r->map, slot->tts_values, slot->tts_isnull, b->flows[next].x);
	}
	ExecDropSingleTupleTableSlot(slot);
}

Datum
nids_alert_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = alert_statement_trigger(fcinfo, "nids_alert_trigger", "the model name");
	AlertTriggerState *ts = (AlertTriggerState *) fcinfo->flinfo->fn_extra;
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	MemoryContext cxt,
				old;
	AlertReader r;
	AlertBatch	batch;
	TupleTableSlot *slot;
	TriggerFetch tf;

	if (ts == NULL)
	{
		const char *name = trigdata->tg_trigger->tgnargs == 1
			? trigdata->tg_trigger->tgargs[0] : "default";

		ts = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(AlertTriggerState));
		ts->model_name = (text *) MemoryContextAlloc(fcinfo->flinfo->fn_mcxt,
													 VARHDRSZ + strlen(name));
		SET_VARSIZE(ts->model_name, VARHDRSZ + strlen(name));
		memcpy(VARDATA(ts->model_name), name, strlen(name));
		fcinfo->flinfo->fn_extra = ts;
	}
	score_prepare(&ts->st, fcinfo->flinfo->fn_mcxt, ts->model_name, MODEL_READY_REFERENCES);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "nids alert trigger",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	reader_init(&r, &batch, &ts->st, desc);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(trigdata->tg_newtable);
	while (tuplestore_gettupleslot(trigdata->tg_newtable, true, false, slot))
	{
		slot_getallattrs(slot);
		reader_row(&r, slot->tts_values, slot->tts_isnull);
	}
	ExecDropSingleTupleTableSlot(slot);
	tf.r = &r;
	tf.store = trigdata->tg_newtable;
	tf.desc = desc;
	batch.fetch_x = trigger_fetch_x;
	batch.fetch_arg = &tf;
	(void) alert_apply(&batch, &ts->st);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return PointerGetDatum(NULL);
}

typedef struct FromCall
{
	AlertReader *r;
	AlertBatch *batch;
	ScoreState *st;
	bool		started;
} FromCall;

/* the window query's rows, read only (flow_run_window) */
static void
from_rows(Portal portal, void *arg)
{
	FromCall   *fc = (FromCall *) arg;

	for (;;)
	{
		Datum	   *values;
		bool	   *nulls;

		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		if (!fc->started)
		{
			MemoryContext old = MemoryContextSwitchTo(fc->r->cxt);

			reader_init(fc->r, fc->batch, fc->st, CreateTupleDescCopy(SPI_tuptable->tupdesc));
			fc->r->keep_x = true;
			MemoryContextSwitchTo(old);
			fc->started = true;
		}
		values = palloc(sizeof(Datum) * SPI_tuptable->tupdesc->natts);
		nulls = palloc(sizeof(bool) * SPI_tuptable->tupdesc->natts);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(fc->r->cxt);

			heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
			reader_row(fc->r, values, nulls);
			MemoryContextSwitchTo(old);
		}
		pfree(values);
		pfree(nulls);
		SPI_freetuptable(SPI_tuptable);
	}
}

/*
 * nids_alerts_from(window_query, model): the incidents nids_alert_trigger
 * would make of the query's rows, as one statement's rows; returns the
 * incidents opened or grown.
 */
Datum
nids_alerts_from(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ScoreState *st = palloc0(sizeof(ScoreState));
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "nids alerts from",
											  ALLOCSET_DEFAULT_SIZES);
	AlertReader r;
	AlertBatch	batch;
	FromCall	fc = {&r, &batch, st, false};
	int64		changed;

	alert_require_feeder("nids_alerts_from()");
	score_prepare(st, CurrentMemoryContext, PG_GETARG_TEXT_PP(1), MODEL_READY_REFERENCES);
	model_pin(st->model, CurrentMemoryContext);
	r.cxt = cxt;
	SPI_connect();
	flow_run_window(flow_prepare_window(query), from_rows, &fc);
	SPI_finish();
	if (!fc.started)
		PG_RETURN_INT64(0);
	changed = alert_apply(&batch, st);
	MemoryContextDelete(cxt);
	PG_RETURN_INT64(changed);
}
