/*-------------------------------------------------------------------------
 *
 * scoring_at.c
 *	  Version-pinned scoring: nids_model_id(model) is the content-addressed
 *	  id of a version (catalog_model_id), and nids_classify_at /
 *	  nids_ensemble_at score with the version of that id.  The same id is
 *	  the same content in every database, so their result cannot change:
 *	  they are IMMUTABLE, which lets postgres_fdw ship them to the shards.
 *	  An id no version of this database has is 42704, never another model.
 *
 * The id is looked up once per statement (a version dropped meanwhile is
 * an error at the next statement, and a version number used again for
 * other content has another id).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "flow.h"
#include "funcapi.h"
#include "scoring.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(nids_model_id);
PG_FUNCTION_INFO_V1(nids_classify_at);
PG_FUNCTION_INFO_V1(nids_ensemble_at);

Datum
nids_model_id(PG_FUNCTION_ARGS)
{
	char	   *spec = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		name[NIDS_MAX_SPEC];
	int32		version;
	ModelRecord rec;

	model_spec_parse(spec, name, &version);
	if (!catalog_read(name, version, CATALOG_READ_MODEL, &rec))
		model_no_such_version(name, version);
	PG_RETURN_INT64(catalog_model_id(&rec));
}

typedef struct AtState
{
	ScoreState	score;
	int64		id;
	LocalTransactionId lxid;	/* the statement the id was resolved in */
	TimestampTz start;
	text	   *spec;			/* 'name@version' of the id */
} AtState;

/* the state of a call with model_id (argument 1), its model prepared */
static AtState *
at_prepare(FunctionCallInfo fcinfo)
{
	AtState    *st = (AtState *) fcinfo->flinfo->fn_extra;
	int64		id = PG_GETARG_INT64(1);

	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(AtState));
		fcinfo->flinfo->fn_extra = st;
	}
	if (st->spec == NULL || st->id != id || st->lxid != MyProc->lxid ||
		st->start != GetCurrentStatementStartTimestamp())
	{
		char		spec[NIDS_MAX_SPEC + 16];

		if (!catalog_find_model_id(id, spec, sizeof(spec)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("no model version has model_id %lld", (long long) id),
					 errhint("nids_model_id(model) gives a version's id; a version is found by its id in every database that has it (pg_dump, replication, nids_import_model).")));
		if (st->spec)
			pfree(st->spec);
		st->spec = (text *) MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, VARHDRSZ + strlen(spec));
		SET_VARSIZE(st->spec, VARHDRSZ + strlen(spec));
		memcpy(VARDATA(st->spec), spec, strlen(spec));
		st->id = id;
		st->lxid = MyProc->lxid;
		st->start = GetCurrentStatementStartTimestamp();
	}
	score_prepare(&st->score, fcinfo->flinfo->fn_mcxt, st->spec, 0);
	vector_from_array(PG_GETARG_ARRAYTYPE_P(0), st->score.model->num_features,
					  st->score.model->name, st->score.x);
	return st;
}

Datum
nids_classify_at(PG_FUNCTION_ARGS)
{
	AtState    *st = at_prepare(fcinfo);
	int			label = score_label(&st->score);

	PG_RETURN_TEXT_P(cstring_to_text(st->score.model->class_labels[label]));
}

Datum
nids_ensemble_at(PG_FUNCTION_ARGS)
{
	AtState    *st = at_prepare(fcinfo);

	PG_RETURN_HEAPTUPLEHEADER(score_verdict(fcinfo, &st->score));
}
