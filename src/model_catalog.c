/*-------------------------------------------------------------------------
 *
 * model_catalog.c
 *	  Every read and write of nids' own tables: nids.model_versions (the
 *	  catalogue of model versions) and nids.drift_reports.
 *
 * Reads go through the primary key (name, version) with a scan key on the
 * name, and take columns by attribute number (Anum_model_versions_*), as
 * pg_cron's job_metadata.c reads cron.job.  Writes are parameterised
 * statements run through SPI with the caller's privileges, so that the
 * table's constraints, its partial unique index on the deployed version
 * and its invalidation trigger all apply; a model name's versions are
 * numbered and deployed under a transaction-level advisory lock on
 * (hashtext('nids.model_versions'), hashtext(name)), the lock nids 1.0's
 * SQL functions took too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "drift.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "model.h"
#include "report.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

static Oid	models_relid = InvalidOid;
static Oid	models_pkey = InvalidOid;

/*
 * nids.model_versions and its primary key, looked up once per backend (and
 * again after a relcache reset: model_cache.c calls catalog_forget).
 */
Oid
catalog_models_relid(void)
{
	Oid			nsp;

	if (OidIsValid(models_relid) && OidIsValid(models_pkey))
		return models_relid;
	nsp = get_namespace_oid("nids", true);
	if (OidIsValid(nsp))
	{
		models_relid = get_relname_relid("model_versions", nsp);
		models_pkey = get_relname_relid("model_versions_pkey", nsp);
	}
	if (!OidIsValid(models_relid) || !OidIsValid(models_pkey))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table nids.model_versions does not exist"),
				 errhint("Run CREATE EXTENSION nids in this database.")));
	return models_relid;
}

/* the table's OID if it was looked up already, else InvalidOid */
Oid
catalog_models_relid_if_known(void)
{
	return models_relid;
}

void
catalog_forget(void)
{
	models_relid = InvalidOid;
	models_pkey = InvalidOid;
}

/*
 * The catalogue as the current statement sees it: which version is
 * deployed is what the statement's snapshot shows (in READ COMMITTED the
 * statement's, in REPEATABLE READ the transaction's; a parallel worker's
 * is its leader's).
 */
static Snapshot
statement_snapshot(void)
{
	return ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
}

/* a bytea column, NULL when null or when the table (nids 1.0's) lacks it */
static bytea *
column_bytes(HeapTuple tup, TupleDesc desc, int attnum)
{
	bool		isnull;
	Datum		d;

	if (attnum > desc->natts)
		return NULL;
	d = heap_getattr(tup, attnum, desc, &isnull);
	return isnull ? NULL : DatumGetByteaPCopy(d);
}

/*
 * A text[] column of a version (feature_names, class_labels), copied: one
 * dimension, no NULL element, no empty string.  A row a nids_admin member
 * wrote by hand can hold anything, and every reader trusts these lists.
 */
static ArrayType *
column_names(HeapTuple tup, TupleDesc desc, int attnum, int32 version, const char *column)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, attnum, desc, &isnull);
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	const char *problem = NULL;

	if (isnull)
		problem = "is NULL";
	else
	{
		arr = DatumGetArrayTypePCopy(d);
		if (ARR_NDIM(arr) == 0)
			problem = "is empty";
		else if (ARR_NDIM(arr) != 1 || ARR_HASNULL(arr) || ARR_ELEMTYPE(arr) != TEXTOID)
			problem = ARR_HASNULL(arr) ? "holds a NULL" : "is not a one-dimensional text[]";
		else
		{
			deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
			if (n == 0)
				problem = "is empty";
			for (int i = 0; i < n && problem == NULL; i++)
				if (VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i])) == 0)
					problem = "holds an empty name";
		}
	}
	if (problem != NULL)
	{
		char	   *name = TextDatumGetCString(heap_getattr(tup, Anum_model_versions_name,
															desc, &isnull));

		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" version %d is corrupt: column %s %s",
						name, version, column, problem),
				 errhint("Drop the version, or import it again from its bundle.")));
	}
	return arr;
}

/* the strings of a text[] that column_names checked */
char	  **
catalog_strings(ArrayType *arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	out = palloc(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		out[i] = TextDatumGetCString(elems[i]);
	return out;
}

/* the columns of rec that what asks for, detoasted and copied */
static void
record_from_tuple(HeapTuple tup, TupleDesc desc, int what, ModelRecord *rec)
{
	bool		isnull;
	Datum		d;

	rec->version = DatumGetInt32(heap_getattr(tup, Anum_model_versions_version, desc, &isnull));
	rec->deployed = DatumGetBool(heap_getattr(tup, Anum_model_versions_deployed, desc, &isnull));
	rec->tid = tup->t_self;
	if (what & CATALOG_READ_MODEL)
	{
		rec->feature_names = column_names(tup, desc, Anum_model_versions_feature_names,
										  rec->version, "feature_names");
		rec->class_labels = column_names(tup, desc, Anum_model_versions_class_labels,
										 rec->version, "class_labels");
		rec->native = column_bytes(tup, desc, Anum_model_versions_native);
		rec->iforest = column_bytes(tup, desc, Anum_model_versions_iforest);
		d = heap_getattr(tup, Anum_model_versions_anomaly_threshold, desc, &isnull);
		rec->anomaly_threshold = isnull ? NAN : DatumGetFloat8(d);
		d = heap_getattr(tup, Anum_model_versions_benign_label, desc, &isnull);
		rec->benign_label = isnull ? NULL : TextDatumGetCString(d);
		rec->novelty = column_bytes(tup, desc, Anum_model_versions_novelty);
		if (desc->natts >= Anum_model_versions_benign_threshold)
		{
			d = heap_getattr(tup, Anum_model_versions_benign_threshold, desc, &isnull);
			rec->benign_threshold = isnull ? 0 : DatumGetFloat8(d);
		}
		if (desc->natts >= Anum_model_versions_model_id)
		{
			d = heap_getattr(tup, Anum_model_versions_model_id, desc, &isnull);
			rec->has_model_id = !isnull;
			rec->model_id = isnull ? 0 : DatumGetInt64(d);
		}
	}
	if (what & CATALOG_READ_BOOSTER)
		rec->booster = column_bytes(tup, desc, Anum_model_versions_booster);
	if (what & CATALOG_READ_REFERENCE)
		rec->reference = column_bytes(tup, desc, Anum_model_versions_reference);
	if (what & CATALOG_READ_METRICS)
		rec->metrics = DatumGetJsonbPCopy(heap_getattr(tup, Anum_model_versions_metrics, desc, &isnull));
	if (what & CATALOG_READ_BENIGN_REFERENCE)
		rec->benign_reference = column_bytes(tup, desc, Anum_model_versions_benign_reference);
}

/* a scan of one model name's versions (one version when version > 0) */
typedef struct VersionScan
{
	Relation	rel;
	Relation	idx;
	Snapshot	snapshot;
	SysScanDesc scan;
	ScanKeyData key[2];
} VersionScan;

static void
version_scan_begin(VersionScan *vs, const char *name, int32 version, Snapshot snapshot)
{
	vs->rel = table_open(catalog_models_relid(), AccessShareLock);
	vs->idx = index_open(models_pkey, AccessShareLock);
	ScanKeyInit(&vs->key[0], Anum_model_versions_name, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(name));
	/* the index's collation, so that the btree descends as it was built */
	vs->key[0].sk_collation = vs->idx->rd_indcollation[0];
	ScanKeyInit(&vs->key[1], Anum_model_versions_version, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(version));
	vs->snapshot = RegisterSnapshot(snapshot);
	vs->scan = systable_beginscan(vs->rel, models_pkey, true, vs->snapshot,
								  version > 0 ? 2 : 1, vs->key);
}

static void
version_scan_end(VersionScan *vs)
{
	systable_endscan(vs->scan);
	UnregisterSnapshot(vs->snapshot);
	index_close(vs->idx, AccessShareLock);
	table_close(vs->rel, AccessShareLock);
}

/* catalog_read, under the given snapshot */
static bool
read_version(const char *name, int32 version, int what, ModelRecord *rec,
			 Snapshot snapshot)
{
	VersionScan vs;
	HeapTuple	tup;
	bool		found = false;

	version_scan_begin(&vs, name, version, snapshot);
	while (!found && HeapTupleIsValid(tup = systable_getnext(vs.scan)))
	{
		bool		isnull;

		if (version == 0 &&
			!DatumGetBool(heap_getattr(tup, Anum_model_versions_deployed,
									   RelationGetDescr(vs.rel), &isnull)))
			continue;
		memset(rec, 0, sizeof(*rec));
		rec->name = name;
		record_from_tuple(tup, RelationGetDescr(vs.rel), what, rec);
		found = true;
	}
	version_scan_end(&vs);
	return found;
}

/*
 * Read version (0: the deployed one) of model name, as the current
 * statement's snapshot shows it, into rec; false when there is none.  Only
 * the columns what names are read beyond the version.
 */
bool
catalog_read(const char *name, int32 version, int what, ModelRecord *rec)
{
	return read_version(name, version, what, rec, statement_snapshot());
}

static uint64
hash_more(uint64 h, const void *data, size_t len)
{
	return hash_bytes_extended((const unsigned char *) data, (int) len, h);
}

static uint64
hash_bytea(uint64 h, const bytea *b)
{
	uint64		len = b ? VARSIZE_ANY_EXHDR(b) : UINT64CONST(0xFFFFFFFFFFFFFFFF);

	h = hash_more(h, &len, sizeof(len));
	return b ? hash_more(h, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)) : h;
}

static uint64
hash_text_array(uint64 h, ArrayType *arr)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	h = hash_more(h, &n, sizeof(n));
	for (int i = 0; i < n; i++)
	{
		text	   *t = DatumGetTextPP(elems[i]);
		uint64		len = VARSIZE_ANY_EXHDR(t);

		h = hash_more(h, &len, sizeof(len));
		h = hash_more(h, VARDATA_ANY(t), len);
	}
	return h;
}

/*
 * The content-addressed id of a version: a 64-bit hash of everything that
 * decides what it scores (the native forests, the novelty gate and
 * thresholds, the feature and class lists, the benign label); the same
 * content gives the same id in every database.
 */
int64
catalog_model_id(const ModelRecord *rec)
{
	uint64		h = UINT64CONST(0x6E6964735F6D6964);	/* "nids_mid" */
	double		threshold = rec->anomaly_threshold;
	const char *benign = rec->benign_label ? rec->benign_label : NIDS_DEFAULT_BENIGN_LABEL;

	h = hash_bytea(h, rec->native);
	h = hash_bytea(h, rec->iforest);
	h = hash_bytea(h, rec->novelty);
	h = hash_more(h, &threshold, sizeof(threshold));
	h = hash_more(h, benign, strlen(benign));
	h = hash_text_array(h, rec->feature_names);
	h = hash_text_array(h, rec->class_labels);
	/* 1.3's tau changes verdicts: part of the content, where a version has one */
	if (rec->benign_threshold > 0)
		h = hash_more(h, &rec->benign_threshold, sizeof(rec->benign_threshold));
	return (int64) h;
}

/* a text[] of names, for a ModelRecord's feature_names and class_labels */
ArrayType *
catalog_text_array(char **names, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(names[i]);
	return construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT);
}

/*
 * The highest version of name, 0 when it has none, in the newest committed
 * state: writers serialise on the advisory lock.  *count: how many.
 */
static int32
scan_versions(const char *name, int *count)
{
	VersionScan vs;
	HeapTuple	tup;
	int32		max = 0;

	*count = 0;
	version_scan_begin(&vs, name, 0, GetLatestSnapshot());
	while (HeapTupleIsValid(tup = systable_getnext(vs.scan)))
	{
		bool		isnull;

		max = Max(max, DatumGetInt32(heap_getattr(tup, Anum_model_versions_version,
												  RelationGetDescr(vs.rel), &isnull)));
		(*count)++;
	}
	version_scan_end(&vs);
	return max;
}

static int32
catalog_max_version(const char *name)
{
	int			count;

	return scan_versions(name, &count);
}

static int
version_count(const char *name)
{
	int			count;

	(void) scan_versions(name, &count);
	return count;
}

/*
 * A database that receives nids.model_versions by logical replication must
 * not write it: a version registered here would stop replication with a
 * duplicate key when the publisher registers its own.
 */
static void
check_not_subscriber(void)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(catalog_models_relid())};

	if (SPI_execute_with_args("SELECT s.subname FROM pg_catalog.pg_subscription_rel r "
							  "JOIN pg_catalog.pg_subscription s ON s.oid = r.srsubid "
							  "WHERE r.srrelid = $1 LIMIT 1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "nids catalogue read failed");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("nids.model_versions is replicated into this database by subscription \"%s\"",
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
				 errhint("Register, deploy and drop model versions on the publisher; they arrive here by replication.")));
}

/*
 * SPI for nids' own SQL on the catalogue, with search_path pinned to
 * pg_catalog, pg_temp until catalog_finish: an operator or function a role
 * planted in a schema of the caller's search_path is never run by nids.
 */
static int
catalog_connect(void)
{
	SPI_connect();
	return nids_pin_search_path();
}

static void
catalog_finish(int nest)
{
	nids_unpin_search_path(nest);
	SPI_finish();
}

/* serialise changes to one model name's versions until the end of the transaction */
static void
lock_model_name(const char *name)
{
	Datum		table = DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
												CStringGetTextDatum("nids.model_versions"));
	Datum		model = DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
												CStringGetTextDatum(name));

	DirectFunctionCall2(pg_advisory_xact_lock_int4, table, model);
}

/* run a parameterised write; returns the rows it processed */
static uint64
catalog_write(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
			  int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "nids catalogue write failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* undeploy every version of name but keep (0: all) */
static void
undeploy_others(const char *name, int32 keep)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(keep)};

	catalog_write("UPDATE nids.model_versions SET deployed = false "
				  "WHERE name = $1 AND deployed AND version <> $2",
				  2, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * Insert rec as the next version of rec->name (deployed when
 * rec->deployed); sets rec->version and rec->metrics (the metrics given,
 * with the version added), and returns the version.
 */
int32
catalog_register(ModelRecord *rec)
{
	int			nest;
	Oid			types[16] = {TEXTOID, INT4OID, BOOLOID, TEXTARRAYOID, TEXTARRAYOID,
		JSONBOID, BYTEAOID, BYTEAOID, BYTEAOID, FLOAT8OID, BYTEAOID, TEXTOID,
	BYTEAOID, BYTEAOID, INT8OID, FLOAT8OID};
	Datum		values[16];
	char		nulls[16];
	bool		has_threshold = catalog_has_benign_threshold();
	Jsonb	   *version_json;
	JsonbParseState *st = NULL;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext spi;

	CheckModelName(rec->name);
	nest = catalog_connect();
	check_not_subscriber();
	lock_model_name(rec->name);
	rec->version = catalog_max_version(rec->name) + 1;
	if (rec->deployed)
		undeploy_others(rec->name, 0);
	/* rec->metrics outlives SPI_finish: built in the caller's context */
	spi = MemoryContextSwitchTo(caller);
	report_begin(&st, NULL);
	report_int(&st, "version", rec->version);
	version_json = report_finish(&st);
	rec->metrics = rec->metrics == NULL ? version_json
		: DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(rec->metrics),
											 JsonbPGetDatum(version_json)));
	MemoryContextSwitchTo(spi);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(rec->name);
	values[1] = Int32GetDatum(rec->version);
	values[2] = BoolGetDatum(rec->deployed);
	values[3] = PointerGetDatum(rec->feature_names);
	values[4] = PointerGetDatum(rec->class_labels);
	values[5] = JsonbPGetDatum(rec->metrics);
	values[6] = PointerGetDatum(rec->booster);
	values[7] = PointerGetDatum(rec->native);
	values[8] = PointerGetDatum(rec->iforest);
	nulls[8] = rec->iforest ? ' ' : 'n';
	values[9] = Float8GetDatum(rec->anomaly_threshold);
	nulls[9] = isnan(rec->anomaly_threshold) ? 'n' : ' ';
	values[10] = PointerGetDatum(rec->reference);
	nulls[10] = rec->reference ? ' ' : 'n';
	values[11] = rec->benign_label ? CStringGetTextDatum(rec->benign_label) : (Datum) 0;
	nulls[11] = rec->benign_label ? ' ' : 'n';
	values[12] = PointerGetDatum(rec->novelty);
	nulls[12] = rec->novelty ? ' ' : 'n';
	values[13] = PointerGetDatum(rec->benign_reference);
	nulls[13] = rec->benign_reference ? ' ' : 'n';
	values[14] = Int64GetDatum(catalog_model_id(rec));
	values[15] = Float8GetDatum(rec->benign_threshold);
	nulls[15] = rec->benign_threshold > 0 ? ' ' : 'n';
	if (rec->benign_threshold > 0 && !has_threshold)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the nids catalogue cannot store a decision threshold before 1.3"),
				 errhint("Run ALTER EXTENSION nids UPDATE.")));
	if (has_threshold)
		catalog_write("INSERT INTO nids.model_versions (name, version, deployed, feature_names, "
					  "class_labels, metrics, booster, native, iforest, anomaly_threshold, "
					  "reference, benign_label, novelty, benign_reference, model_id, benign_threshold) "
					  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
					  16, types, values, nulls, SPI_OK_INSERT);
	else if (catalog_has_health_reports())
		catalog_write("INSERT INTO nids.model_versions (name, version, deployed, feature_names, "
					  "class_labels, metrics, booster, native, iforest, anomaly_threshold, "
					  "reference, benign_label, novelty, benign_reference, model_id) "
					  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
					  15, types, values, nulls, SPI_OK_INSERT);
	else						/* nids 1.0's catalogue, not updated yet */
		catalog_write("INSERT INTO nids.model_versions (name, version, deployed, feature_names, "
					  "class_labels, metrics, booster, native, iforest, anomaly_threshold, "
					  "reference, benign_label) "
					  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
					  12, types, values, nulls, SPI_OK_INSERT);
	catalog_finish(nest);
	return rec->version;
}

/*
 * Make version the deployed one of name (deploy, or roll back).
 */
void
catalog_deploy(const char *name, int32 version)
{
	int			nest;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	ModelRecord rec;

	nest = catalog_connect();
	check_not_subscriber();
	lock_model_name(name);
	if (!read_version(name, version, 0, &rec, GetLatestSnapshot()))
		model_no_such_version(name, version);
	undeploy_others(name, version);
	catalog_write("UPDATE nids.model_versions SET deployed = true "
				  "WHERE name = $1 AND version = $2 AND NOT deployed",
				  2, types, values, NULL, SPI_OK_UPDATE);
	catalog_finish(nest);
}

/*
 * Merge more into a version's metrics (jsonb's ||): what a training step
 * learns after registering it (the adaptation's report).
 */
void
catalog_merge_metrics(const char *name, int32 version, Jsonb *more)
{
	int			nest;
	Oid			types[3] = {TEXTOID, INT4OID, JSONBOID};
	Datum		values[3] = {CStringGetTextDatum(name), Int32GetDatum(version), JsonbPGetDatum(more)};

	nest = catalog_connect();
	catalog_write("UPDATE nids.model_versions SET metrics = metrics OPERATOR(pg_catalog.||) $3 "
				  "WHERE name = $1 AND version = $2",
				  3, types, values, NULL, SPI_OK_UPDATE);
	catalog_finish(nest);
}

/*
 * Drop one version of name, or all of them.
 */
void
catalog_drop(const char *name, int32 version, bool all_versions)
{
	int			nest;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	char		nulls[2] = {' ', all_versions ? 'n' : ' '};

	ModelRecord rec;

	nest = catalog_connect();
	check_not_subscriber();
	lock_model_name(name);
	if (!all_versions && read_version(name, version, 0, &rec, GetLatestSnapshot()) &&
		rec.deployed && version_count(name) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("version %d of model \"%s\" is deployed and the model has other versions",
						version, name),
				 errhint("Deploy another version first with nids_deploy(), or drop the whole model with nids_drop_model('%s').",
						 name)));
	if (catalog_write("DELETE FROM nids.model_versions "
					  "WHERE name = $1 AND ($2 IS NULL OR version = $2)",
					  2, types, values, nulls, SPI_OK_DELETE) == 0)
	{
		if (all_versions)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" does not exist", name)));
		model_no_such_version(name, version);
	}
	catalog_finish(nest);
}

/*
 * The 'name@version' of a version whose model_id is id, as the current
 * statement sees the catalogue (the first by name and version when several
 * hold the same content); false when none has it.  A scan, not SQL:
 * scoring by id needs no privilege on the catalogue table, as scoring by
 * name needs none.
 */
bool
catalog_find_model_id(int64 id, char *spec, size_t specsize)
{
	Relation	rel;
	TupleDesc	desc;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Snapshot	snapshot;
	char	   *best_name = NULL;
	int32		best_version = 0;

	rel = table_open(catalog_models_relid(), AccessShareLock);
	desc = RelationGetDescr(rel);
	if (desc->natts < Anum_model_versions_model_id)
	{
		/* nids 1.0's table: no ids stored */
		table_close(rel, AccessShareLock);
		return false;
	}
	ScanKeyInit(&key, Anum_model_versions_model_id, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(id));
	snapshot = RegisterSnapshot(statement_snapshot());
	scan = systable_beginscan(rel, InvalidOid, false, snapshot, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		char	   *name = TextDatumGetCString(heap_getattr(tup, Anum_model_versions_name,
															desc, &isnull));
		int32		version = DatumGetInt32(heap_getattr(tup, Anum_model_versions_version,
														 desc, &isnull));
		int			cmp = best_name ? strcmp(name, best_name) : -1;

		if (cmp < 0 || (cmp == 0 && version < best_version))
		{
			best_name = name;
			best_version = version;
		}
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	if (best_name != NULL)
		snprintf(spec, specsize, "%s@%d", best_name, best_version);
	return best_name != NULL;
}

/*
 * The one error for a version spec that names nothing (42704): the
 * catalogue's, which the model cache (above it) raises too
 */
void
model_no_such_version(const char *name, int32 version)
{
	if (version == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist or has no deployed version", name),
				 errhint("See nids.models for the models and their deployed versions.")));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("model \"%s\" has no version %d", name, version),
			 errhint("See nids.models for the models and their versions.")));
}

/* whether the catalogue is 1.1's: nids.health_reports and drift_reports.reference */
/* whether nids.model_versions has 1.3's benign_threshold */
bool
catalog_has_benign_threshold(void)
{
	return get_attnum(catalog_models_relid(), "benign_threshold") != InvalidAttrNumber;
}

bool
catalog_has_health_reports(void)
{
	Oid			nsp = get_namespace_oid("nids", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("health_reports", nsp));
}

/* a one-dimensional float8[] of n values, NULL where nulls says */
static Datum
float8_array(Datum *values, bool *nulls, int n)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, FLOAT8OID,
											  sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* the health rows of a report, appended to nids.health_reports */
static void
log_health(int64 id, const char *model, int32 version, const HealthRow *health)
{
	char	   *name[NIDS_HEALTH_ROWS];
	char	   *status[NIDS_HEALTH_ROWS];
	Datum		value[NIDS_HEALTH_ROWS];
	Datum		expected[NIDS_HEALTH_ROWS];
	bool		value_null[NIDS_HEALTH_ROWS];
	bool		expected_null[NIDS_HEALTH_ROWS];
	Oid			types[7] = {INT8OID, TEXTOID, INT4OID, TEXTARRAYOID, FLOAT8ARRAYOID,
	FLOAT8ARRAYOID, TEXTARRAYOID};
	Datum		values[7];

	for (int i = 0; i < NIDS_HEALTH_ROWS; i++)
	{
		name[i] = (char *) health[i].check_name;
		value[i] = Float8GetDatum(health[i].value);
		value_null[i] = isnan(health[i].value);
		expected[i] = Float8GetDatum(health[i].expected);
		expected_null[i] = isnan(health[i].expected);
		status[i] = (char *) health_status_names[health[i].status];
	}
	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(model);
	values[2] = Int32GetDatum(version);
	values[3] = PointerGetDatum(catalog_text_array(name, NIDS_HEALTH_ROWS));
	values[4] = float8_array(value, value_null, NIDS_HEALTH_ROWS);
	values[5] = float8_array(expected, expected_null, NIDS_HEALTH_ROWS);
	values[6] = PointerGetDatum(catalog_text_array(status, NIDS_HEALTH_ROWS));
	catalog_write("INSERT INTO nids.health_reports (report_id, model, version, ran_at, check_name, "
				  "value, expected, status) "
				  "SELECT $1, $2, $3, pg_catalog.now(), r.* "
				  "FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), "
				  "pg_catalog.unnest($7)) AS r",
				  7, types, values, NULL, SPI_OK_INSERT);
}

/*
 * A report id unique across nodes: the local sequence's value in the low
 * 32 bits, and in the high 31 a tag of this node (a hash of the cluster's
 * system identifier and the database), so that reports logged on the
 * shards of a cluster can be gathered in one table.
 */
int64
catalog_node_id(int64 seq)
{
	uint64		sysid = GetSystemIdentifier();
	uint64		h = hash_bytes_extended((const unsigned char *) &sysid, sizeof(sysid), MyDatabaseId);
	int64		tag = (int64) (h % UINT64CONST(0x7FFFFFFE)) + 1;

	if (seq < 1 || seq > (int64) PG_UINT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED),
				 errmsg("an id sequence of nids has reached %lld; ids hold 32 bits of it", (long long) seq),
				 errhint("Delete old reports or incidents and restart the sequence (nids.drift_report_id, nids.alert_id).")));
	return (tag << 32) | seq;
}

/*
 * Append a drift report of model version to nids.drift_reports, and its
 * health rows (when given) to nids.health_reports; returns the report id,
 * drawn from nids.drift_report_id.
 */
int64
catalog_log_drift(const char *model, int32 version, const DriftResult *result,
				  const HealthRow *health)
{
	int			nest;
	int			n = result->num_rows;
	Datum	   *feature = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *ks = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *p = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *untested = palloc(sizeof(bool) * Max(n, 1));
	Datum	   *nref = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *nwin = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *level = palloc(sizeof(Datum) * Max(n, 1));
	Oid			types[10] = {INT8OID, TEXTOID, INT4OID, TEXTARRAYOID, FLOAT8ARRAYOID,
	FLOAT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTOID};
	Datum		values[10];
	int64		id;

	for (int i = 0; i < n; i++)
	{
		const DriftRow *row = &result->rows[i];

		feature[i] = CStringGetTextDatum(row->feature);
		ks[i] = Float8GetDatum(row->ks_statistic);
		p[i] = Float8GetDatum(row->p_value);
		untested[i] = !row->tested;
		nref[i] = Int64GetDatum(row->n_reference);
		nwin[i] = Int64GetDatum(row->n_window);
		level[i] = CStringGetTextDatum(row->drift_level);
	}
	id = catalog_node_id(DatumGetInt64(DirectFunctionCall1(nextval_oid,
															 ObjectIdGetDatum(get_relname_relid("drift_report_id",
																								get_namespace_oid("nids", false))))));
	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(model);
	values[2] = Int32GetDatum(version);
	values[3] = PointerGetDatum(construct_array(feature, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = float8_array(ks, untested, n);
	values[5] = float8_array(p, untested, n);
	values[6] = PointerGetDatum(construct_array(nref, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[7] = PointerGetDatum(construct_array(nwin, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[8] = PointerGetDatum(construct_array(level, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[9] = CStringGetTextDatum(result->reference);
	nest = catalog_connect();
	/* the 1.0 catalogue (not updated yet) has no reference column, no health table */
	catalog_write(psprintf("INSERT INTO nids.drift_reports (report_id, model, version, ran_at, feature, "
						   "ks_statistic, p_value, n_reference, n_window, drift_level%s) "
						   "SELECT $1, $2, $3, pg_catalog.now(), r.*%s "
						   "FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), "
						   "pg_catalog.unnest($7), pg_catalog.unnest($8), pg_catalog.unnest($9)) AS r",
						   health ? ", reference" : "", health ? ", $10" : ""),
				  health ? 10 : 9, types, values, NULL, SPI_OK_INSERT);
	if (health != NULL)
		log_health(id, model, version, health);
	catalog_finish(nest);
	return id;
}

PG_FUNCTION_INFO_V1(nids_node_id);

/* nids._node_id(seq): catalog_node_id for SQL (alert ids) */
Datum
nids_node_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(catalog_node_id(PG_GETARG_INT64(0)));
}
