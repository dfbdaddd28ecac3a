/*-------------------------------------------------------------------------
 *
 * drift_merge.c
 *	  Drift over many nodes: nids_drift_counts gives a window's counts at
 *	  the reference's points, per feature; ks_drift_merge adds any number
 *	  of such rows (one set per shard, say, through postgres_fdw) and
 *	  returns exactly what ks_drift returns on the union of the windows.
 *
 * The counts of a feature with p reference points are an array of 2p + 1
 * bigints: for each point i, the window values equal to it (at[i]), then
 * for each gap, the values strictly between point i - 1 and point i
 * (between[0 .. p], between[0] below the first point, between[p] above
 * the last).  ks_drift's statistic is a function of these counts alone, so
 * merging is adding them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "drift.h"
#include "executor/spi.h"
#include "flow.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "model.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(nids_drift_counts);
PG_FUNCTION_INFO_V1(ks_drift_merge);

Datum
nids_drift_counts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	NidsModel  *model = model_lookup_ready(text_to_cstring(PG_GETARG_TEXT_PP(1)),
										   MODEL_READY_REFERENCES | MODEL_READY_PREDICTOR);
	int			kind = drift_reference_kind(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	const char *reference;
	DriftReference *ref;
	FeatureCounts *counts;

	InitMaterializedSRF(fcinfo, 0);
	model_pin(model, CurrentMemoryContext);
	ref = drift_reference_of(model, kind, &reference);
	counts = drift_count_window(query, model, ref, strcmp(reference, "benign") == 0);
	for (int f = 0; f < model->num_features; f++)
	{
		int			np = ref->features[f].npoints;
		Datum	   *elems = palloc(sizeof(Datum) * (2 * np + 1));
		Datum		out[3];
		bool		nulls[3] = {false, false, false};

		for (int i = 0; i < np; i++)
			elems[i] = Int64GetDatum(counts[f].at[i]);
		for (int i = 0; i <= np; i++)
			elems[np + i] = Int64GetDatum(counts[f].between[i]);
		out[0] = CStringGetTextDatum(model->feature_names[f]);
		out[1] = Int64GetDatum(counts[f].m);
		out[2] = PointerGetDatum(construct_array(elems, 2 * np + 1, INT8OID, sizeof(int64),
												 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
		pfree(elems);
	}
	return (Datum) 0;
}

static void
bad_counts(const char *what, const char *feature)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("counts_query returned %s for feature \"%s\"", what, feature),
			 errhint("Rows must come from nids_drift_counts with the same model version and reference.")));
}

static void
counts_overflow(const char *feature)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("the counts of feature \"%s\" add up past the bigint range", feature),
			 errhint("Rows must come from nids_drift_counts; no window holds 2^63 flows.")));
}

/* add one (feature, n_window, counts) row to the sums */
static void
merge_row(NidsModel *model, const DriftReference *ref, FeatureCounts *sums,
		  const char *feature, int64 n_window, ArrayType *arr)
{
	int			f;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			np;
	int64		total = 0;

	for (f = 0; f < model->num_features; f++)
		if (strcmp(model->feature_names[f], feature) == 0)
			break;
	if (f == model->num_features)
		bad_counts("counts of a feature the model does not have", feature);
	np = ref->features[f].npoints;
	if (ARR_NDIM(arr) != 1 || ARR_ELEMTYPE(arr) != INT8OID)
		bad_counts("an array that is not one bigint[]", feature);
	deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	if (n != 2 * np + 1)
		bad_counts(psprintf("%d counts where the reference has %d (2 x %d points + 1)",
							n, 2 * np + 1, np), feature);
	for (int i = 0; i < n; i++)
	{
		int64		c = DatumGetInt64(elems[i]);
		int64	   *sum = i < np ? &sums[f].at[i] : &sums[f].between[i - np];

		if (nulls[i] || c < 0)
			bad_counts("a NULL or negative count", feature);
		if (pg_add_s64_overflow(total, c, &total) || pg_add_s64_overflow(*sum, c, sum))
			counts_overflow(feature);
	}
	if (total != n_window)
		bad_counts("n_window unequal to the sum of its counts", feature);
	if (pg_add_s64_overflow(sums[f].m, n_window, &sums[f].m))
		counts_overflow(feature);
}

typedef struct MergeCall
{
	NidsModel  *model;
	const DriftReference *ref;
	FeatureCounts *sums;
} MergeCall;

/* every row of the counts query's cursor into the sums */
static void
merge_all(Portal portal, void *arg)
{
	MergeCall  *mc = (MergeCall *) arg;

	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		if (SPI_tuptable->tupdesc->natts != 3 ||
			SPI_gettypeid(SPI_tuptable->tupdesc, 1) != TEXTOID ||
			SPI_gettypeid(SPI_tuptable->tupdesc, 2) != INT8OID ||
			SPI_gettypeid(SPI_tuptable->tupdesc, 3) != INT8ARRAYOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("counts_query must return (feature text, n_window bigint, counts bigint[])"),
					 errhint("Select the columns of nids_drift_counts.")));
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		n1,
						n2,
						n3;
			Datum		feature = SPI_getbinval(tup, desc, 1, &n1);
			Datum		m = SPI_getbinval(tup, desc, 2, &n2);
			Datum		counts = SPI_getbinval(tup, desc, 3, &n3);

			if (n1 || n2 || n3)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("counts_query returned a NULL")));
			merge_row(mc->model, mc->ref, mc->sums, TextDatumGetCString(feature), DatumGetInt64(m),
					  DatumGetArrayTypeP(counts));
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * ks_drift_merge: ks_drift's rows from the sum of the counts a read-only
 * query returns as (feature text, n_window bigint, counts bigint[]).
 */
Datum
ks_drift_merge(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	NidsModel  *model = model_lookup_ready(text_to_cstring(PG_GETARG_TEXT_PP(1)),
										   MODEL_READY_REFERENCES | MODEL_READY_PREDICTOR);
	int			kind = drift_reference_kind(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	const char *reference;
	DriftReference *ref;
	FeatureCounts *sums;
	MergeCall	mc;

	InitMaterializedSRF(fcinfo, 0);
	model_pin(model, CurrentMemoryContext);
	ref = drift_reference_of(model, kind, &reference);
	sums = drift_counts_create(ref);
	SPI_connect();
	mc.model = model;
	mc.ref = ref;
	mc.sums = sums;
	flow_run_window(flow_prepare_window(query), merge_all, &mc);
	SPI_finish();
	drift_put_rows(fcinfo, drift_result(model, ref, sums, reference));
	return (Datum) 0;
}
