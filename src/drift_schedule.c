/*-------------------------------------------------------------------------
 *
 * drift_schedule.c
 *	  The drift report's pg_cron schedule: nids_schedule_drift and
 *	  nids_unschedule_drift, with the checks that pg_cron can run the job
 *	  (installed in this database, usable by this role, reachable).
 *
 * C rather than SQL so that the job's window query keeps the caller's
 * search_path (pasted, quoted, into the job) while everything nids itself
 * refers to is schema-qualified.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "drift.h"
#include "executor/spi.h"
#include "flow.h"
#include "miscadmin.h"
#include "model.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/varlena.h"

PG_FUNCTION_INFO_V1(nids_schedule_drift);
PG_FUNCTION_INFO_V1(nids_unschedule_drift);

/* the schema nids is installed in, quoted */
static char *
extension_schema(FunctionCallInfo fcinfo)
{
	return pstrdup(quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid))));
}

/* pg_cron must be installed in this database */
static void
check_cron_installed(void)
{
	const char *cron_db = GetConfigOption("cron.database_name", true, false);
	char	   *db = get_database_name(MyDatabaseId);

	if (OidIsValid(get_extension_oid("pg_cron", true)))
		return;
	if (cron_db != NULL && strcmp(cron_db, db) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_cron runs in database \"%s\", not in \"%s\"", cron_db, db),
				 errhint("Set cron.database_name = '%s' and restart, or schedule the job from database \"%s\" with cron.schedule_in_database.",
						 db, cron_db)));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("nids_schedule_drift needs the pg_cron extension, which is not installed in database \"%s\"",
					db),
			 errhint("Install pg_cron (Debian: postgresql-15-cron), add it to shared_preload_libraries, set cron.database_name = '%s', restart, and run CREATE EXTENSION pg_cron.",
					 db)));
}

/*
 * What would make the job fail at run time, said now: the role may not use
 * schema cron, or pg_cron would connect over TCP to a server that listens
 * on none.
 */
static void
check_cron_usable(void)
{
	Oid			cron = get_namespace_oid("cron", false);
	const char *workers = GetConfigOption("cron.use_background_workers", true, false);
	const char *host = GetConfigOption("cron.host", true, false);
	const char *listen = GetConfigOption("listen_addresses", false, false);

	if (pg_namespace_aclcheck(cron, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for schema cron"),
				 errdetail("pg_cron schedules a job only for a role that may use schema cron."),
				 errhint("A superuser can run: GRANT USAGE ON SCHEMA cron TO %s;",
						 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
	if ((workers == NULL || strcmp(workers, "on") != 0) &&
		host != NULL && host[0] != '/' && listen != NULL && listen[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_cron would connect to \"%s\" over TCP, but this server listens on no TCP address", host),
				 errdetail("listen_addresses is empty: every run of the job would fail with \"connection failed\"."),
				 errhint("Set cron.host to the server's Unix socket directory (unix_socket_directories: %s), or cron.use_background_workers = on, and restart.",
						 GetConfigOption("unix_socket_directories", false, false))));
}

/*
 * The session's search_path as a list of quoted identifiers: safe to paste
 * into the job's SET command whatever the names hold.
 */
static char *
quoted_search_path(void)
{
	char	   *raw = pstrdup(GetConfigOption("search_path", false, false));
	List	   *names;
	ListCell   *lc;
	StringInfoData buf;

	if (!SplitIdentifierString(raw, ',', &names))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("search_path is not a list of schema names: %s",
						GetConfigOption("search_path", false, false))));
	initStringInfo(&buf);
	foreach(lc, names)
	{
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, quote_identifier((char *) lfirst(lc)));
	}
	if (buf.len == 0)
		appendStringInfoString(&buf, "''");
	return buf.data;
}

Datum
nids_schedule_drift(PG_FUNCTION_ARGS)
{
	int			nest;
	char	   *job_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *schedule = PG_GETARG_TEXT_PP(1);
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *command;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	int64		job;
	bool		isnull;

	check_cron_installed();
	check_cron_usable();
	/* fail now, not at 3 a.m.: the model must exist, the query be readable */
	(void) model_lookup(name);
	flow_check_window_query(query);

	/* the job runs with this session's search_path, as the query was checked */
	command = psprintf("SET search_path = %s; SELECT %s.nids_log_drift(%s, %s)",
					   quoted_search_path(), extension_schema(fcinfo),
					   quote_literal_cstr(query), quote_literal_cstr(name));
	values[0] = CStringGetTextDatum(job_name);
	values[1] = PointerGetDatum(schedule);
	values[2] = CStringGetTextDatum(command);
	SPI_connect();
	nest = nids_pin_search_path();
	if (SPI_execute_with_args("SELECT cron.schedule($1, $2, $3)", 3, types, values, NULL,
							  false, 1) != SPI_OK_SELECT)
		elog(ERROR, "cron.schedule failed");
	job = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	nids_unpin_search_path(nest);
	SPI_finish();
	PG_RETURN_INT64(job);
}

/*
 * nids_unschedule_drift(job_name): remove this role's pg_cron job of that
 * name, if it is one nids_schedule_drift made; false when there is none.
 */
Datum
nids_unschedule_drift(PG_FUNCTION_ARGS)
{
	int			nest;
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(PG_GETARG_TEXT_PP(0))};
	bool		removed;

	check_cron_installed();
	check_cron_usable();
	SPI_connect();
	nest = nids_pin_search_path();
	if (SPI_execute_with_args("SELECT cron.unschedule(jobid) FROM cron.job "
							  "WHERE jobname = $1 AND username = current_user "
							  "AND command LIKE '%nids_log_drift(%'",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "cron.unschedule failed");
	removed = SPI_processed > 0;
	nids_unpin_search_path(nest);
	SPI_finish();
	PG_RETURN_BOOL(removed);
}
