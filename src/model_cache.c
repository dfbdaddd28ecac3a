/*-------------------------------------------------------------------------
 *
 * model_cache.c
 *	  The per-backend model cache.
 *
 * A model version is read from nids.model_versions and converted once per
 * backend, then kept in a child of CacheMemoryContext.  Scoring calls keep
 * a pointer to the cached model in fn_extra and check one counter per
 * call: no catalogue access on the hot path.
 *
 * Freshness comes from PostgreSQL's invalidation machinery, not polling: a
 * statement trigger on nids.model_versions (nids_invalidate_models) sends a
 * relcache invalidation for the table when a transaction that changed it
 * commits; every backend's callback then bumps cache_generation, and the
 * next lookup re-reads which version is deployed.  A version that did not
 * change is kept as it is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "drift.h"
#include "nids.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

typedef struct ModelCacheEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	NidsModel  *model;
} ModelCacheEntry;

static HTAB *model_cache = NULL;
static MemoryContext model_cache_context = NULL;
static uint64 cache_generation = 1;
static Oid	models_relid = InvalidOid;

static void
model_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == models_relid)
	{
		cache_generation++;
		if (relid == InvalidOid)
			models_relid = InvalidOid;
	}
}

void
model_cache_init(void)
{
	HASHCTL		ctl;

	if (model_cache != NULL)
		return;
	model_cache_context = AllocSetContextCreate(CacheMemoryContext,
												"nids model cache",
												ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = sizeof(ModelCacheEntry);
	ctl.hcxt = model_cache_context;
	model_cache = hash_create("nids models", 16, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(model_relcache_callback, (Datum) 0);
}

static Oid
models_relation(void)
{
	Oid			nsp;

	if (OidIsValid(models_relid))
		return models_relid;
	nsp = get_namespace_oid("nids", true);
	if (OidIsValid(nsp))
		models_relid = get_relname_relid("model_versions", nsp);
	if (!OidIsValid(models_relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table nids.model_versions does not exist"),
				 errhint("Run CREATE EXTENSION nids in this database.")));
	return models_relid;
}

/*
 * The newest committed catalogue state; a parallel worker cannot take a new
 * snapshot and sees what its leader sees.
 */
static Snapshot
catalogue_snapshot(void)
{
	if (IsInParallelMode())
		return ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	return GetLatestSnapshot();
}

static char **
text_array_to_cstrings(Datum d, int *n)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	out = palloc(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		out[i] = nulls[i] ? pstrdup("") : TextDatumGetCString(elems[i]);
	return out;
}

static bool
attr_bytes(HeapTuple tup, TupleDesc desc, const char *attname,
		   const char **data, size_t *len, bytea **copy)
{
	int			attnum = -1;
	bool		isnull;
	Datum		d;

	for (int i = 0; i < desc->natts; i++)
		if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), attname) == 0)
			attnum = i + 1;
	if (attnum < 0)
		elog(ERROR, "nids.model_versions has no column %s", attname);
	d = heap_getattr(tup, attnum, desc, &isnull);
	if (isnull)
		return false;
	*copy = DatumGetByteaPCopy(d);
	*data = VARDATA_ANY(*copy);
	*len = VARSIZE_ANY_EXHDR(*copy);
	return true;
}

static Datum
attr_datum(HeapTuple tup, TupleDesc desc, const char *attname, bool *isnull)
{
	for (int i = 0; i < desc->natts; i++)
		if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), attname) == 0)
			return heap_getattr(tup, i + 1, desc, isnull);
	elog(ERROR, "nids.model_versions has no column %s", attname);
	return (Datum) 0;
}

static NidsModel *
model_build(const char *name, int32 version, HeapTuple tup, TupleDesc desc)
{
	MemoryContext cxt = AllocSetContextCreate(model_cache_context,
											  "nids model",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	NidsModel  *m = palloc0(sizeof(NidsModel));
	const char *data;
	size_t		len;
	bytea	   *copy;
	char	   *error;
	bool		isnull;
	Datum		d;

	PG_TRY();
	{
		m->context = cxt;
		m->name = pstrdup(name);
		m->version = version;
		m->generation = cache_generation;
		m->tid = tup->t_self;
		m->feature_names = text_array_to_cstrings(attr_datum(tup, desc, "feature_names", &isnull),
												  &m->num_features);
		m->class_labels = text_array_to_cstrings(attr_datum(tup, desc, "class_labels", &isnull),
												 &m->num_classes);
		if (!attr_bytes(tup, desc, "native", &data, &len, &copy))
			elog(ERROR, "model \"%s\" version %d has no native form", name, version);
		m->forest = forest_deserialize(data, len, &error);
		if (m->forest == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model \"%s\" version %d is corrupt", name, version),
					 errdetail("%s", error)));
		pfree(copy);
		if (m->forest->num_features != m->num_features ||
			forest_num_outputs(m->forest) != m->num_classes)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model \"%s\" version %d is corrupt", name, version),
					 errdetail("Its feature or class lists do not match its trees.")));
		if (attr_bytes(tup, desc, "iforest", &data, &len, &copy))
		{
			m->iforest = iforest_deserialize(data, len, m->num_features, &error);
			if (m->iforest == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("model \"%s\" version %d has a corrupt isolation forest", name, version),
						 errdetail("%s", error)));
			pfree(copy);
		}
		d = attr_datum(tup, desc, "anomaly_threshold", &isnull);
		m->anomaly_threshold = isnull ? 1.0 : DatumGetFloat8(d);
		m->benign_class = -1;
		d = attr_datum(tup, desc, "benign_label", &isnull);
		{
			char	   *benign = isnull ? "BENIGN" : TextDatumGetCString(d);

			for (int i = 0; i < m->num_classes; i++)
				if (pg_strcasecmp(m->class_labels[i], benign) == 0)
					m->benign_class = i;
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	return m;
}

/*
 * Scan nids.model_versions for the deployed version of name.  When the
 * cached version is still the deployed one, keep it; otherwise build the
 * new one.  Returns the model; raises 42704 when there is none.
 */
static NidsModel *
model_refresh(const char *name, NidsModel *cached)
{
	Relation	rel;
	Snapshot	snapshot;
	TableScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc;
	NidsModel  *result = NULL;
	bool		found = false;

	rel = table_open(models_relation(), AccessShareLock);
	desc = RelationGetDescr(rel);
	snapshot = RegisterSnapshot(catalogue_snapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while (!found && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		d = attr_datum(tup, desc, "deployed", &isnull);
		char	   *rowname;
		int32		version;

		if (isnull || !DatumGetBool(d))
			continue;
		rowname = TextDatumGetCString(attr_datum(tup, desc, "name", &isnull));
		if (strcmp(rowname, name) != 0)
			continue;
		found = true;
		version = DatumGetInt32(attr_datum(tup, desc, "version", &isnull));
		/* the same row, not edited since: keep what was built from it */
		if (cached != NULL && cached->version == version &&
			ItemPointerEquals(&cached->tid, &tup->t_self))
		{
			cached->generation = cache_generation;
			result = cached;
		}
		else
			result = model_build(name, version, tup, desc);
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);

	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist or has no deployed version", name),
				 errhint("See nids.models for the models and their deployed versions.")));
	return result;
}

NidsModel *
model_lookup(const char *name)
{
	ModelCacheEntry *entry;
	bool		found;
	NidsModel  *model;

	model_cache_init();
	if (strlen(name) >= NAMEDATALEN || name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist or has no deployed version", name)));
	entry = hash_search(model_cache, name, HASH_FIND, &found);
	if (found && entry->model->generation == cache_generation)
		return entry->model;

	/* the lookup may raise an error: the entry is created only after it */
	model = model_refresh(name, found ? entry->model : NULL);
	entry = hash_search(model_cache, name, HASH_ENTER, &found);
	if (found && entry->model != model)
	{
		MemoryContextDelete(entry->model->context);
	}
	entry->model = model;
	return model;
}

/*
 * The hot-path lookup for a scoring function: fn_extra remembers the model
 * of the last call and the generation it was valid for.
 */
NidsModel *
model_lookup_cached(FnModelCache *fc, text *name)
{
	int			len = VARSIZE_ANY_EXHDR(name);

	if (fc->generation == cache_generation && fc->namelen == len &&
		memcmp(fc->name, VARDATA_ANY(name), len) == 0)
		return fc->model;
	fc->generation = 0;
	if (len >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist or has no deployed version",
						text_to_cstring(name))));
	fc->model = model_lookup(text_to_cstring(name));
	memcpy(fc->name, VARDATA_ANY(name), len);
	fc->namelen = len;
	fc->generation = cache_generation;
	return fc->model;
}

/*
 * A bytea column of the model's version row (NULL when it is NULL).
 */
static bytea *
model_column_bytes(NidsModel *model, const char *column)
{
	Relation	rel;
	Snapshot	snapshot;
	TableScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc;
	bytea	   *result = NULL;

	rel = table_open(models_relation(), AccessShareLock);
	desc = RelationGetDescr(rel);
	snapshot = RegisterSnapshot(catalogue_snapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		const char *data;
		size_t		len;

		if (strcmp(TextDatumGetCString(attr_datum(tup, desc, "name", &isnull)),
				   model->name) != 0 ||
			DatumGetInt32(attr_datum(tup, desc, "version", &isnull)) != model->version)
			continue;
		if (!attr_bytes(tup, desc, column, &data, &len, &result))
			result = NULL;
		break;
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * The XGBoost document a model version was imported or trained with.
 */
bytea *
model_booster_bytes(NidsModel *model)
{
	bytea	   *result = model_column_bytes(model, "booster");

	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d has no XGBoost booster",
						model->name, model->version)));
	return result;
}

/*
 * The training distribution stored with the model, parsed and validated on
 * first use and kept with the model.
 */
DriftReference *
model_drift_reference(NidsModel *model)
{
	if (model->drift_reference == NULL)
	{
		bytea	   *bytes = model_column_bytes(model, "reference");
		MemoryContext old;
		char	   *error;

		if (bytes == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("model \"%s\" version %d has no training distribution",
							model->name, model->version),
					 errhint("Train it with nids_train, or attach one with nids_attach_benign(model, benign_flows).")));
		old = MemoryContextSwitchTo(model->context);
		model->drift_reference = drift_reference_parse(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes),
													   model->num_features, &error);
		MemoryContextSwitchTo(old);
		if (model->drift_reference == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("model \"%s\" version %d has a corrupt training distribution",
							model->name, model->version),
					 errdetail("%s", error)));
	}
	return model->drift_reference;
}

/*
 * The model's booster inside XGBoost, for the nids.predictor = xgboost
 * path; loaded on first use and owned by the model's memory context.
 */
XgbBooster
model_xgboost(NidsModel *model)
{
	if (model->xgb == NULL)
	{
		bytea	   *bytes = model_booster_bytes(model);
		MemoryContext old = MemoryContextSwitchTo(model->context);

		model->xgb = xgb_load(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes));
		MemoryContextSwitchTo(old);
		pfree(bytes);
	}
	return model->xgb;
}

/*
 * Statement trigger on nids.model_versions: tell every backend, at commit,
 * that the catalogue changed.
 */
PG_FUNCTION_INFO_V1(nids_invalidate_models);
Datum
nids_invalidate_models(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("nids_invalidate_models() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}
