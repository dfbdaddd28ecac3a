/*-------------------------------------------------------------------------
 *
 * flow_reader.c
 *	  The one reader of flows: the rows of a query, as feature vectors.
 *
 * nids_train (a source relation), nids_attach_benign (a relation of benign
 * flows) and ks_drift (a user's window query) all read rows here.  The
 * query runs through a cursor with the caller's privileges; its rows go
 * from the executor straight into a DestReceiver, nothing is copied or
 * materialised.  Columns are matched to the wanted features by canonical
 * name (flow_map.c), or a window query returns one float8[] column in
 * feature order.  Each row becomes float32 through the one value mapping
 * and is handed to the caller's function with its label, if one was asked
 * for; whatever reading a row allocates (a detoasted array or numeric, a
 * label's text) is freed after it.
 *
 * A window query must be one read-only SELECT: no data-modifying CTE, no
 * row locks anywhere in it, no utility statement; and it runs as in a
 * read-only transaction, so that a function it calls cannot write either
 * (25006).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "flow.h"
#include "miscadmin.h"
#include "model.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"

#define FETCH_ROWS	10000

typedef struct FlowReceiver
{
	DestReceiver pub;
	const FlowQuery *query;
	FlowRowFn	fn;
	void	   *arg;
	MemoryContext cxt;			/* the map and the vector */
	MemoryContext rowcxt;		/* what one row allocates, reset after it */
	bool		started;
	bool		vector_mode;
	FeatureMap	map;
	float	   *x;
	int64		rows;
	int			label_attno;	/* query->label_column's, or 0 */
	Oid			label_out;		/* ... and its output function */
} FlowReceiver;

/* does a query, or one inside it (subquery, CTE, sublink), lock rows? */
static bool
locks_rows_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;

		if (q->rowMarks != NIL || q->hasForUpdate)
			return true;
		return query_tree_walker(q, locks_rows_walker, context, 0);
	}
	return expression_tree_walker(node, locks_rows_walker, context);
}

/*
 * Prepare a window query, checking that it is one read-only SELECT.
 */
static SPIPlanPtr
prepare_window_query(const char *sql)
{
	SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);
	ListCell   *lc;

	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("window_query could not be prepared: %s",
						SPI_result_code_string(SPI_result))));
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("window_query must be a single read-only SELECT")));
	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		CachedPlanSource *ps = (CachedPlanSource *) lfirst(lc);
		ListCell   *lq;

		foreach(lq, ps->query_list)
		{
			Query	   *q = lfirst_node(Query, lq);

			if (q->commandType != CMD_SELECT || q->hasModifyingCTE ||
				q->utilityStmt != NULL || locks_rows_walker((Node *) q, NULL))
				ereport(ERROR,
						(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
						 errmsg("window_query must be a single read-only SELECT"),
						 errdetail("It modifies data, locks rows or is not a query.")));
		}
	}
	return plan;
}

/*
 * Raise the error flow_read would raise for a window query that is not one
 * read-only SELECT, or that the current user may not read (the executor
 * checks privileges when the cursor opens; no row is fetched).
 * nids_schedule_drift checks before scheduling.
 */
void
flow_check_window_query(const char *sql)
{
	SPIPlanPtr	plan;
	Portal		portal;

	SPI_connect();
	plan = prepare_window_query(sql);
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	SPI_cursor_close(portal);
	SPI_finish();
}

static void
flow_startup(DestReceiver *self, int operation, TupleDesc desc)
{
	FlowReceiver *r = (FlowReceiver *) self;
	const FlowQuery *q = r->query;
	MemoryContext old;

	if (r->started)
		return;
	old = MemoryContextSwitchTo(r->cxt);
	r->x = palloc(sizeof(float) * Max(q->num_features, 1));
	r->rowcxt = AllocSetContextCreate(r->cxt, "nids flow row", ALLOCSET_SMALL_SIZES);
	r->vector_mode = q->window && desc->natts == 1 &&
		TupleDescAttr(desc, 0)->atttypid == FLOAT8ARRAYOID;
	if (!r->vector_mode && q->label_column != NULL)
	{
		char		buf[NAMEDATALEN];

		for (int i = 0; i < desc->natts && r->label_attno == 0; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			bool		varlena;

			if (!att->attisdropped &&
				(strcmp(NameStr(att->attname), q->label_column) == 0 ||
				 strcmp(canonical_attname(NameStr(att->attname), buf, sizeof(buf)), q->label_column) == 0))
			{
				r->label_attno = i + 1;
				getTypeOutputInfo(att->atttypid, &r->label_out, &varlena);
			}
		}
	}
	if (!r->vector_mode)
	{
		feature_map_build(&r->map, q->features, q->num_features, q->model, desc, r->cxt);
		if (!q->no_coverage_check)
			feature_map_check_coverage(&r->map, q->features, q->model);
		if (q->coverage)
			*q->coverage = q->num_features > 0 ? (double) r->map.matched / q->num_features : 1.0;
	}
	else if (q->coverage)
		*q->coverage = 1.0;
	MemoryContextSwitchTo(old);
	r->started = true;
}

static bool
flow_receive(TupleTableSlot *slot, DestReceiver *self)
{
	FlowReceiver *r = (FlowReceiver *) self;
	const FlowQuery *q = r->query;
	MemoryContext old;
	Datum		label = (Datum) 0;
	bool		label_isnull = true;

	slot_getallattrs(slot);
	old = MemoryContextSwitchTo(r->rowcxt);
	if (r->vector_mode)
	{
		/* a NULL vector is no row */
		if (!slot->tts_isnull[0])
		{
			vector_from_array(DatumGetArrayTypeP(slot->tts_values[0]),
							  q->num_features, q->model, r->x);
			r->fn(r->arg, r->x, label, label_isnull);
			r->rows++;
		}
	}
	else
	{
		feature_map_values(&r->map, slot->tts_values, slot->tts_isnull, r->x);
		if (q->label_attno > 0)
		{
			label = slot->tts_values[q->label_attno - 1];
			label_isnull = slot->tts_isnull[q->label_attno - 1];
		}
		else if (r->label_attno > 0 && !slot->tts_isnull[r->label_attno - 1])
		{
			label = CStringGetTextDatum(OidOutputFunctionCall(r->label_out,
															  slot->tts_values[r->label_attno - 1]));
			label_isnull = false;
		}
		r->fn(r->arg, r->x, label, label_isnull);
		r->rows++;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->rowcxt);
	return true;
}

static void
flow_shutdown(DestReceiver *self)
{
}

static void
flow_destroy(DestReceiver *self)
{
}

static void
fetch_all(Portal portal, void *arg)
{
	FlowReceiver *recv = (FlowReceiver *) arg;

	while (PortalRunFetch(portal, FETCH_FORWARD, FETCH_ROWS, (DestReceiver *) recv) > 0)
		CHECK_FOR_INTERRUPTS();
}

/*
 * Run a window query (prepared by prepare_window_query, inside SPI) and
 * hand its open cursor to fn.  The query and everything it calls run as
 * in a read-only transaction (a write or nextval() in a function it calls
 * is 25006), and at a GUC nest level of their own, as a function with a
 * SET clause runs: a set_config(..., false) in the window does not
 * survive the call.
 */
void
flow_run_window(SPIPlanPtr plan, FlowWindowFn fn, void *arg)
{
	bool		was_read_only = XactReadOnly;
	int			nest = NewGUCNestLevel();
	Portal		portal;

	XactReadOnly = true;
	PG_TRY();
	{
		portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
		fn(portal, arg);
		SPI_cursor_close(portal);
	}
	PG_FINALLY();
	{
		XactReadOnly = was_read_only;
	}
	PG_END_TRY();
	AtEOXact_GUC(false, nest);
}

/* inside SPI: the plan of a window query, refused unless one read-only SELECT */
SPIPlanPtr
flow_prepare_window(const char *sql)
{
	return prepare_window_query(sql);
}

/*
 * Run query->sql and hand every row to fn; returns the number of rows.
 */
int64
flow_read(const FlowQuery *query, FlowRowFn fn, void *arg)
{
	FlowReceiver recv;
	SPIPlanPtr	plan;
	Portal		portal;

	memset(&recv, 0, sizeof(recv));
	recv.pub.receiveSlot = flow_receive;
	recv.pub.rStartup = flow_startup;
	recv.pub.rShutdown = flow_shutdown;
	recv.pub.rDestroy = flow_destroy;
	recv.pub.mydest = DestNone;
	recv.query = query;
	recv.fn = fn;
	recv.arg = arg;
	recv.cxt = AllocSetContextCreate(CurrentMemoryContext, "nids flow reader",
									 ALLOCSET_DEFAULT_SIZES);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (query->window)
		plan = prepare_window_query(query->sql);
	else
	{
		plan = SPI_prepare(query->sql, 0, NULL);
		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", query->sql,
				 SPI_result_code_string(SPI_result));
	}
	if (query->window)
		flow_run_window(plan, fetch_all, &recv);
	else
	{
		portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
		fetch_all(portal, &recv);
		SPI_cursor_close(portal);
	}
	SPI_finish();
	MemoryContextDelete(recv.cxt);
	return recv.rows;
}

/*
 * q set up to read a user's window query as model's feature vectors: one
 * read-only SELECT, columns by canonical name (flow_reader.c)
 */
void
model_window_query(FlowQuery *q, const char *sql, NidsModel *model)
{
	memset(q, 0, sizeof(*q));
	q->sql = sql;
	q->window = true;
	q->features = model->feature_names;
	q->num_features = model->num_features;
	q->model = model->name;
}
