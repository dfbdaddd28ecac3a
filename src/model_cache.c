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

#include <math.h>

#include "access/xact.h"
#include "commands/trigger.h"
#include "drift.h"
#include "flow.h"
#include "model.h"
#include "xgb.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "storage/proc.h"
#include "utils/rel.h"

typedef struct ModelCacheEntry
{
	char		name[NIDS_MAX_SPEC];	/* hash key: 'name' or 'name@N' */
	NidsModel  *model;
	uint64		generation;		/* the cache generation it was checked in */
	StatementStamp checked;		/* ... and the statement */
} ModelCacheEntry;

static HTAB *model_cache = NULL;
static MemoryContext model_cache_context = NULL;
static uint64 cache_generation = 1;

static void
model_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid)
	{
		cache_generation++;
		catalog_forget();
	}
	else if (relid == catalog_models_relid_if_known())
		cache_generation++;
}

static void
model_cache_init(void)
{
	HASHCTL		ctl;

	if (model_cache != NULL)
		return;
	model_cache_context = AllocSetContextCreate(CacheMemoryContext,
												"nids model cache",
												ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NIDS_MAX_SPEC;
	ctl.entrysize = sizeof(ModelCacheEntry);
	ctl.hcxt = model_cache_context;
	model_cache = hash_create("nids models", 16, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(model_relcache_callback, (Datum) 0);
}

static void
corrupt_model(const NidsModel *m, const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("model \"%s\" version %d %s", m->name, m->version, what),
			 errdetail("%s", detail)));
}

/* the model's parts from its catalogue row, validated; in m->context */
static void
model_fill(NidsModel *m, const ModelRecord *rec)
{
	char	   *error;
	const char *benign = rec->benign_label ? rec->benign_label : NIDS_DEFAULT_BENIGN_LABEL;

	m->feature_names = catalog_strings(rec->feature_names, &m->num_features);
	m->class_labels = catalog_strings(rec->class_labels, &m->num_classes);
	if (rec->native == NULL)
		elog(ERROR, "model \"%s\" version %d has no native form", m->name, m->version);
	m->forest = forest_deserialize(VARDATA_ANY(rec->native), VARSIZE_ANY_EXHDR(rec->native), &error);
	if (m->forest == NULL)
		corrupt_model(m, "is corrupt", error);
	if (m->forest->num_features != m->num_features ||
		forest_num_outputs(m->forest) != m->num_classes)
		corrupt_model(m, "is corrupt", "Its feature or class lists do not match its trees.");
	if (rec->iforest != NULL)
	{
		m->iforest = iforest_deserialize(VARDATA_ANY(rec->iforest), VARSIZE_ANY_EXHDR(rec->iforest),
										 m->num_features, &error);
		if (m->iforest == NULL)
			corrupt_model(m, "has a corrupt isolation forest", error);
	}
	m->anomaly_threshold = isnan(rec->anomaly_threshold) ? 1.0 : rec->anomaly_threshold;
	if (rec->novelty != NULL)
	{
		m->novelty = novelty_deserialize(VARDATA_ANY(rec->novelty), VARSIZE_ANY_EXHDR(rec->novelty),
										 m->num_features, &error);
		if (m->novelty == NULL)
			corrupt_model(m, "has a corrupt novelty gate", error);
		if (m->novelty->method == NOVELTY_IFOREST && m->iforest == NULL)
			corrupt_model(m, "has a corrupt novelty gate", "Its method is the isolation forest, which the version lacks.");
	}
	m->benign_threshold = rec->benign_threshold;
	m->benign_class = -1;
	for (int i = 0; i < m->num_classes; i++)
		if (pg_strcasecmp(m->class_labels[i], benign) == 0)
			m->benign_class = i;
	if (m->benign_threshold > 0 && m->benign_class < 0)
		corrupt_model(m, "is corrupt", "It has a decision threshold on P(benign) but no benign class.");
	/*
	 * An id always means that content: a row edited by hand, each of its
	 * parts valid, does not keep it (checked last, after the parts' own
	 * checks have said what is wrong with a part)
	 */
	if (rec->has_model_id && catalog_model_id(rec) != rec->model_id)
		corrupt_model(m, "is corrupt",
					  psprintf("Its stored model_id %lld is not the id of its content (%lld): the row was changed after it was registered.",
							   (long long) rec->model_id, (long long) catalog_model_id(rec)));
}

/* a new cached model from its catalogue row */
static NidsModel *
model_build(const char *name, const ModelRecord *rec)
{
	MemoryContext cxt = AllocSetContextCreate(model_cache_context,
											  "nids model",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	NidsModel  *m = palloc0(sizeof(NidsModel));

	PG_TRY();
	{
		m->context = cxt;
		m->name = pstrdup(name);
		m->version = rec->version;
		m->tid = rec->tid;
		model_fill(m, rec);
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
 * Split a model reference into its name and version: 'name' is the
 * deployed version (*version = 0), 'name@N' version N.  A name may not
 * contain '@' followed by digits only (CheckNewModelName).
 */
void
model_spec_parse(const char *spec, char *name, int32 *version)
{
	const char *at = strrchr(spec, '@');
	size_t		len = strlen(spec);

	*version = 0;
	if (at != NULL && at > spec && at[1] != '\0' &&
		strspn(at + 1, "0123456789") == strlen(at + 1))
	{
		long		v = strlen(at + 1) <= 9 ? atol(at + 1) : -1;

		if (v <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" names no version: versions are numbered from 1", spec)));
		*version = (int32) v;
		len = at - spec;
	}
	if (len == 0 || len >= NAMEDATALEN)
		model_no_such_version(spec, 0);
	memcpy(name, spec, len);
	name[len] = '\0';
}

/*
 * The version spec names ('name': the deployed one, 'name@N': version N).
 * When the cached model is still that version, from the same row, keep
 * it; otherwise build the new one.  Raises 42704 when there is none.
 */
static NidsModel *
model_refresh(const char *spec, NidsModel *cached)
{
	ModelRecord rec;
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "nids model read",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	NidsModel  *result;
	char		name[NAMEDATALEN];
	int32		version;

	model_spec_parse(spec, name, &version);
	/* the version and its row first; the large columns only when needed */
	if (!catalog_read(name, version, 0, &rec))
		model_no_such_version(name, version);
	if (cached != NULL && cached->version == rec.version &&
		ItemPointerEquals(&cached->tid, &rec.tid))
		result = cached;
	else
	{
		if (!catalog_read(name, rec.version, CATALOG_READ_MODEL, &rec))
			model_no_such_version(name, version);
		result = model_build(name, &rec);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
	return result;
}

static inline void
stamp_now(StatementStamp *stamp)
{
	stamp->lxid = MyProc->lxid;
	stamp->start = GetCurrentStatementStartTimestamp();
}

static inline bool
stamp_is_now(const StatementStamp *stamp)
{
	return stamp->lxid == MyProc->lxid &&
		stamp->start == GetCurrentStatementStartTimestamp();
}

/* a model leaves the cache: freed now, or by its last unpin */
static void
model_release(NidsModel *model)
{
	if (model->pins > 0)
		model->orphaned = true;
	else
		MemoryContextDelete(model->context);
}

static void
model_unpin(NidsModel *model)
{
	Assert(model->pins > 0);
	if (--model->pins == 0 && model->orphaned)
		MemoryContextDelete(model->context);
}

static void
model_unpin_callback(void *arg)
{
	model_unpin((NidsModel *) arg);
}

/*
 * Keep model valid until owner is reset or deleted, whatever the cache
 * does meanwhile (a deploy picked up by a query the holder runs, say).
 */
void
model_pin(NidsModel *model, MemoryContext owner)
{
	MemoryContextCallback *cb = MemoryContextAlloc(owner, sizeof(MemoryContextCallback));

	cb->func = model_unpin_callback;
	cb->arg = model;
	MemoryContextRegisterResetCallback(owner, cb);
	model->pins++;
}

/*
 * The model version that name's deployed version is in the snapshot of
 * the current statement (the rule: a statement scores with the version its
 * snapshot shows deployed), or version N for 'name@N'.  The catalogue is read once per statement and
 * after every change to it; a version already built is kept.  The result
 * is valid until the next lookup of name: pin it to hold it longer.
 */
NidsModel *
model_lookup(const char *name)
{
	ModelCacheEntry *entry;
	bool		found;
	NidsModel  *model;

	model_cache_init();
	if (strlen(name) >= NIDS_MAX_SPEC || name[0] == '\0')
		model_no_such_version(name, 0);
	entry = hash_search(model_cache, name, HASH_FIND, &found);
	if (found && entry->generation == cache_generation && stamp_is_now(&entry->checked))
		return entry->model;

	/* the lookup may raise an error: the entry is created only after it */
	model = model_refresh(name, found ? entry->model : NULL);
	entry = hash_search(model_cache, name, HASH_ENTER, &found);
	if (found && entry->model != model)
		model_release(entry->model);
	entry->model = model;
	entry->generation = cache_generation;
	stamp_now(&entry->checked);
	return model;
}

static void
fn_cache_unpin_callback(void *arg)
{
	FnModelCache *fc = (FnModelCache *) arg;

	if (fc->model != NULL)
		model_unpin(fc->model);
	fc->model = NULL;
	fc->generation = 0;
}

/*
 * The hot-path lookup for a scoring function: fc (in fn_extra, allocated
 * in mcxt) holds the model of the last call, pinned and ready for what the
 * caller uses (MODEL_READY_*); it is looked up again only in a new
 * statement, after a catalogue change, for another name or predictor.
 */
NidsModel *
model_lookup_cached(FnModelCache *fc, MemoryContext mcxt, text *name, int ready)
{
	int			len = VARSIZE_ANY_EXHDR(name);
	NidsModel  *model;

	if (fc->model != NULL && fc->generation == cache_generation &&
		stamp_is_now(&fc->stmt) && fc->predictor == nids_predictor && fc->namelen == len &&
		memcmp(fc->name, VARDATA_ANY(name), len) == 0)
		return fc->model;
	if (len >= NIDS_MAX_SPEC)
		model_no_such_version(text_to_cstring(name), 0);
	if (!fc->has_callback)
	{
		MemoryContextCallback *cb = MemoryContextAlloc(mcxt, sizeof(MemoryContextCallback));

		cb->func = fn_cache_unpin_callback;
		cb->arg = fc;
		MemoryContextRegisterResetCallback(mcxt, cb);
		fc->has_callback = true;
	}
	model = model_lookup_ready(text_to_cstring(name), ready);
	if (model != fc->model)
	{
		model->pins++;
		if (fc->model != NULL)
			model_unpin(fc->model);
		fc->model = model;
	}
	memcpy(fc->name, VARDATA_ANY(name), len);
	fc->namelen = len;
	fc->generation = cache_generation;
	fc->predictor = nids_predictor;
	stamp_now(&fc->stmt);
	return model;
}

/*
 * A large column of the model's version row (CATALOG_READ_BOOSTER or
 * CATALOG_READ_REFERENCE); NULL when it is NULL.
 */
static bytea *
model_column_bytes(NidsModel *model, int what)
{
	ModelRecord rec;

	if (!catalog_read(model->name, model->version, what, &rec))
		return NULL;
	if (what == CATALOG_READ_BOOSTER)
		return rec.booster;
	return what == CATALOG_READ_REFERENCE ? rec.reference : rec.benign_reference;
}

/*
 * The XGBoost document a model version was imported or trained with.
 */
bytea *
model_booster_bytes(NidsModel *model)
{
	bytea	   *result = model_column_bytes(model, CATALOG_READ_BOOSTER);

	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d has no XGBoost booster",
						model->name, model->version)));
	return result;
}

/* a stored training distribution, parsed and validated */
static DriftReference *
parse_reference(NidsModel *model, bytea *bytes)
{
	MemoryContext old = MemoryContextSwitchTo(model->context);
	DriftReference *ref;
	char	   *error;

	ref = drift_reference_parse(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes),
								model->num_features, &error);
	MemoryContextSwitchTo(old);
	if (ref == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" version %d has a corrupt training distribution",
						model->name, model->version),
				 errdetail("%s", error)));
	return ref;
}

/*
 * Make ready what the caller will use of model (MODEL_READY_*), before it
 * scores a row: the booster inside XGBoost when nids.predictor says
 * xgboost, the drift references the version has (of every training row,
 * and of the benign ones; a version stored by nids 1.0 has only the
 * first), the feature names as text.  Each is loaded once per version and
 * kept in the model's context.  Returns model.
 */
NidsModel *
model_prepare(NidsModel *model, int ready)
{
	MemoryContext old;

	if ((ready & MODEL_READY_PREDICTOR) && nids_predictor == NIDS_PREDICTOR_XGBOOST &&
		model->xgb == NULL)
	{
		bytea	   *bytes = model_booster_bytes(model);

		old = MemoryContextSwitchTo(model->context);
		model->xgb = xgb_load(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes));
		MemoryContextSwitchTo(old);
		pfree(bytes);
	}
	if ((ready & MODEL_READY_REFERENCES) && !(model->ready & MODEL_READY_REFERENCES))
	{
		bytea	   *benign = model_column_bytes(model, CATALOG_READ_BENIGN_REFERENCE);
		bytea	   *all = model_column_bytes(model, CATALOG_READ_REFERENCE);

		if (benign != NULL)
			model->benign_reference = parse_reference(model, benign);
		model->no_benign_reference = benign == NULL;
		if (all != NULL)
			model->drift_reference = parse_reference(model, all);
		model->no_reference = all == NULL;
		model->ready |= MODEL_READY_REFERENCES;
	}
	if ((ready & MODEL_READY_NAMES) && model->feature_text == NULL)
	{
		Datum	   *names;

		old = MemoryContextSwitchTo(model->context);
		names = palloc(sizeof(Datum) * Max(model->num_features, 1));
		for (int j = 0; j < model->num_features; j++)
			names[j] = CStringGetTextDatum(model->feature_names[j]);
		MemoryContextSwitchTo(old);
		model->feature_text = names;
		model->ready |= MODEL_READY_NAMES;
	}
	return model;
}

/* model_lookup, and model_prepare of what the caller will use */
NidsModel *
model_lookup_ready(const char *name, int ready)
{
	return model_prepare(model_lookup(name), ready);
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
