/*-------------------------------------------------------------------------
 *
 * train_adapt.c
 *	  What nids_adapt (nids--1.1--1.2.sql) needs in C: a window query's
 *	  rows as the model's feature vectors, read as ks_drift reads windows
 *	  (one read-only SELECT, run with the caller's privileges and
 *	  search_path, its settings undone), so that the rest of the
 *	  adaptation can run with nids' own search_path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "flow.h"
#include "funcapi.h"
#include "model.h"
#include "utils/array.h"
#include "executor/spi.h"
#include "nids.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(nids_window_vectors);
PG_FUNCTION_INFO_V1(nids_adapt);

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

/*
 * nids._window_vectors(window_query, model): the query's rows as the
 * model's feature vectors (NULL elements missing), in the order read.
 */
Datum
nids_window_vectors(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	NidsModel  *model = model_lookup(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	FlowQuery	fq;
	VectorSink	vs;

	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(2));
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

/*
 * nids_adapt(model, benign_query, options): nids._adapt (nids--1.1--1.2.sql),
 * which runs with nids' own search_path, told the caller's, with which
 * the benign query alone is read.
 */
Datum
nids_adapt(PG_FUNCTION_ARGS)
{
	Oid			types[4] = {TEXTOID, TEXTOID, JSONBOID, TEXTOID};
	Datum		values[4];
	bool		isnull;
	Datum		result;
	int			nest;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext spi;

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	values[3] = CStringGetTextDatum(GetConfigOption("search_path", false, false));
	SPI_connect();
	nest = nids_pin_search_path();
	if (SPI_execute_with_args("SELECT nids._adapt($1, $2, $3, $4)", 4, types, values, NULL,
							  false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "nids_adapt failed");
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	/* the result outlives SPI_finish: copied into the caller's memory */
	spi = MemoryContextSwitchTo(caller);
	result = datumCopy(result, false, -1);
	MemoryContextSwitchTo(spi);
	nids_unpin_search_path(nest);
	SPI_finish();
	PG_RETURN_DATUM(result);
}
