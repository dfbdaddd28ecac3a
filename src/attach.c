/*-------------------------------------------------------------------------
 *
 * attach.c
 *	  nids_attach_benign(model, benign_flows, options): give a model that
 *	  has no isolation forest or drift reference (an imported XGBoost
 *	  model) both, from a table of benign flows.
 *
 * The flows are read through a cursor with the caller's privileges and
 * mapped onto the model's features by canonical column name (the same
 * mapping as nids_features).  A seeded hold-out of test_size of them sets
 * the novelty threshold at the (1 - iforest.benign_fpr) quantile; the
 * forest is trained on the rest; the drift reference is built from all of
 * them.  The result is a new version of the model, with the same booster.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "drift.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nids.h"
#include "train_options.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(nids_attach_benign);

Datum
nids_attach_benign(PG_FUNCTION_ARGS)
{
	char	   *name;
	Oid			relid;
	TrainOptions opt;
	NidsModel  *model;
	Relation	rel;
	char	   *qualified;
	StringInfoData sql;
	Portal		portal;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			d;
	int64		n = 0,
				cap = 4096;
	float	   *x;
	int64	   *rows;
	int64		ntest,
				ntrain;
	uint64		state;
	NidsForest *iforest;
	double		threshold;
	float	   *scratch;
	ModelRecord rec;
	Datum	   *fd,
			   *cd;
	MemoryContext cxt,
				old;
	int32		version;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model and benign_flows must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	train_options_parse(PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), &opt);
	model = model_lookup(name);
	d = model->num_features;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "nids attach", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	rel = relation_open(relid, AccessShareLock);
	qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										   RelationGetRelationName(rel));
	relation_close(rel, AccessShareLock);

	initStringInfo(&sql);
	/* nids_features lives in the schema of this very function */
	appendStringInfo(&sql, "SELECT %s.nids_features(t, $1) FROM %s t",
					 quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid))),
					 qualified);
	args[0] = CStringGetTextDatum(name);
	x = MemoryContextAllocHuge(cxt, sizeof(float) * cap * d);
	SPI_connect();
	portal = SPI_cursor_open_with_args(NULL, sql.data, 1, argtypes, args, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		CHECK_FOR_INTERRUPTS();
		if (n + (int64) SPI_processed > cap)
		{
			cap = Max(cap * 2, n + (int64) SPI_processed);
			x = repalloc_huge(x, sizeof(float) * cap * d);
		}
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		v = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);
			ArrayType  *arr = DatumGetArrayTypeP(v);

			vector_from_array(arr, d, name, x + n * d);
			if ((Pointer) arr != DatumGetPointer(v))
				pfree(arr);		/* a detoasted copy */
			n++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	if (n < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has %lld rows; at least two benign flows are needed", qualified, (long long) n)));

	/* a seeded hold-out sets the threshold; the rest trains the forest */
	rows = palloc_extended(sizeof(int64) * n, MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < n; i++)
		rows[i] = i;
	state = opt.seed * UINT64CONST(0x9E3779B97F4A7C15) + 1;
	for (int64 i = n - 1; i > 0; i--)
	{
		int64		j;
		int64		t;

		state = state * UINT64CONST(6364136223846793005) + UINT64CONST(1442695040888963407);
		j = (int64) ((state >> 11) % (uint64) (i + 1));
		t = rows[i];
		rows[i] = rows[j];
		rows[j] = t;
	}
	ntest = (int64) floor(opt.test_size * n + 0.5);
	ntest = Min(ntest, n - 1);
	ntrain = n - ntest;
	iforest = iforest_train(x, d, rows, ntrain, &opt.iforest);
	scratch = palloc(sizeof(float) * forest_scratch_size(iforest));
	threshold = ntest > 0
		? iforest_threshold(iforest, x, d, rows + ntrain, ntest, opt.benign_fpr, scratch)
		: iforest_threshold(iforest, x, d, rows, ntrain, opt.benign_fpr, scratch);

	fd = palloc(sizeof(Datum) * d);
	cd = palloc(sizeof(Datum) * model->num_classes);
	for (int j = 0; j < d; j++)
		fd[j] = CStringGetTextDatum(model->feature_names[j]);
	for (int c = 0; c < model->num_classes; c++)
		cd[c] = CStringGetTextDatum(model->class_labels[c]);
	{
		int64	   *all = palloc_extended(sizeof(int64) * n, MCXT_ALLOC_HUGE);
		StringInfoData m;

		for (int64 i = 0; i < n; i++)
			all[i] = i;
		initStringInfo(&m);
		appendStringInfo(&m, "{\"source\": \"nids_attach_benign\", \"from_version\": %d, \"benign_relation\": ",
						 model->version);
		escape_json(&m, qualified);
		appendStringInfo(&m, ", \"iforest\": {\"trees\": %d, \"sample_size\": %d, \"scale\": \"%s\", \"benign_training_rows\": %lld, \"held_out_rows\": %lld, \"benign_fpr\": %g, \"threshold\": %.6g}}",
						 iforest->num_trees, iforest->sample_size,
						 iforest_scale_names[opt.iforest.scale], (long long) ntrain,
						 (long long) ntest, opt.benign_fpr, threshold);
		memset(&rec, 0, sizeof(rec));
		rec.name = name;
		rec.booster = model_booster_bytes(model);
		rec.native = forest_serialize(model->forest);
		rec.feature_names = construct_array(fd, d, TEXTOID, -1, false, TYPALIGN_INT);
		rec.class_labels = construct_array(cd, model->num_classes, TEXTOID, -1, false, TYPALIGN_INT);
		rec.metrics_json = m.data;
		rec.deploy = opt.deploy;
		rec.iforest = forest_serialize(iforest);
		rec.anomaly_threshold = threshold;
		rec.reference = drift_reference_build(x, d, all, n, opt.seed);
		rec.benign_label = opt.benign_label;
		version = catalog_register(&rec);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	PG_RETURN_INT32(version);
}
