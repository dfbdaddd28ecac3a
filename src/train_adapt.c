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
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(nids_window_vectors);

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

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	model_pin(model, CurrentMemoryContext);
	vs.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	vs.d = model->num_features;
	vs.elems = palloc(sizeof(Datum) * Max(vs.d, 1));
	vs.nulls = palloc(sizeof(bool) * Max(vs.d, 1));
	memset(&fq, 0, sizeof(fq));
	fq.sql = query;
	fq.window = true;
	fq.features = model->feature_names;
	fq.num_features = model->num_features;
	fq.model = model->name;
	flow_read(&fq, put_vector, &vs);
	return (Datum) 0;
}
