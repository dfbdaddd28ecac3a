/*-------------------------------------------------------------------------
 *
 * drift_log.c
 *	  nids_log_drift and nids_schedule_drift: drift reports in a table, and
 *	  their pg_cron schedule.
 *
 * Both are C rather than SQL so that the window query resolves names with
 * the caller's search_path while everything nids itself refers to is
 * schema-qualified.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "executor/spi.h"
#include "nids.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(nids_log_drift);
PG_FUNCTION_INFO_V1(nids_schedule_drift);

static char *
extension_schema(FunctionCallInfo fcinfo)
{
	return pstrdup(quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid))));
}

Datum
nids_log_drift(PG_FUNCTION_ARGS)
{
	text	   *query = PG_GETARG_TEXT_PP(0);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	NidsModel  *model = model_lookup(name);
	char	   *sql;
	Oid			types[4] = {INT8OID, TEXTOID, INT4OID, TEXTOID};
	Datum		values[4];
	int64		id;
	bool		isnull;

	SPI_connect();
	if (SPI_execute("SELECT pg_catalog.nextval('nids.drift_report_id'::pg_catalog.regclass)",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not draw a drift report id");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	sql = psprintf("INSERT INTO nids.drift_reports (report_id, model, version, ran_at, feature, "
				   "ks_statistic, p_value, n_reference, n_window, drift_level) "
				   "SELECT $1, $2, $3, pg_catalog.now(), d.feature, d.ks_statistic, d.p_value, "
				   "d.n_reference, d.n_window, d.drift_level FROM %s.ks_drift($4, $2) d",
				   extension_schema(fcinfo));
	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(name);
	values[2] = Int32GetDatum(model->version);
	values[3] = PointerGetDatum(query);
	if (SPI_execute_with_args(sql, 4, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not log the drift report");
	SPI_finish();
	PG_RETURN_INT64(id);
}

Datum
nids_schedule_drift(PG_FUNCTION_ARGS)
{
	char	   *job_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *schedule = PG_GETARG_TEXT_PP(1);
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(3));
	const char *cron_db = GetConfigOption("cron.database_name", true, false);
	char	   *command;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	int64		job;
	bool		isnull;

	if (!OidIsValid(get_extension_oid("pg_cron", true)))
	{
		if (cron_db != NULL && strcmp(cron_db, get_database_name(MyDatabaseId)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("pg_cron runs in database \"%s\", not in \"%s\"",
							cron_db, get_database_name(MyDatabaseId)),
					 errhint("Set cron.database_name = '%s' and restart, or schedule the job from database \"%s\" with cron.schedule_in_database.",
							 get_database_name(MyDatabaseId), cron_db)));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("nids_schedule_drift needs the pg_cron extension, which is not installed in database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errhint("Install pg_cron (Debian: postgresql-15-cron), add it to shared_preload_libraries, set cron.database_name = '%s', restart, and run CREATE EXTENSION pg_cron.",
						 get_database_name(MyDatabaseId))));
	}
	/* fail now, not at 3 a.m.: the model and the query must be valid */
	(void) model_lookup(name);
	SPI_connect();
	if (SPI_execute_with_args("SELECT nids._check_window_query($1)", 1, types,
							  (Datum[]) {CStringGetTextDatum(query)}, NULL, true, 0) < 0)
		elog(ERROR, "could not check the window query");

	/* the job runs with this session's search_path, as the query was checked */
	command = psprintf("SET search_path = %s; SELECT %s.nids_log_drift(%s, %s)",
					   GetConfigOption("search_path", false, false),
					   extension_schema(fcinfo),
					   quote_literal_cstr(query), quote_literal_cstr(name));
	values[0] = CStringGetTextDatum(job_name);
	values[1] = PointerGetDatum(schedule);
	values[2] = CStringGetTextDatum(command);
	if (SPI_execute_with_args("SELECT cron.schedule($1, $2, $3)", 3, types, values, NULL,
							  false, 1) != SPI_OK_SELECT)
		elog(ERROR, "cron.schedule failed");
	job = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(job);
}
