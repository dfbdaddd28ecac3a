/*
 * pgtools.c
 *	  The libpq and column-name code nids' client programs share (pgtools.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgtools.h"

PGconn *
pgtools_connect(const PgTarget *t, const char *application_name, char *error, size_t errsize)
{
	const char *keys[6];
	const char *vals[6];
	int			n = 0;
	PGconn	   *conn;

#define ADD(k, v) do { if (v) { keys[n] = (k); vals[n++] = (v); } } while (0)
	ADD("dbname", t->dbname);
	ADD("host", t->host);
	ADD("port", t->port);
	ADD("user", t->user);
	ADD("application_name", application_name);
#undef ADD
	keys[n] = NULL;
	vals[n] = NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		snprintf(error, errsize, "%s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

bool
pgtools_exec(PGconn *conn, const char *sql, char **errmsg)
{
	PGresult   *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool		ok = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);

	if (!ok && errmsg)
		*errmsg = strdup(PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/* "schema.table" or "table", each part quoted as an identifier (malloc'd) */
char *
pgtools_quoted_table(PGconn *conn, const char *table)
{
	const char *dot = strchr(table, '.');
	char	   *schema = dot ? PQescapeIdentifier(conn, table, (size_t) (dot - table)) : NULL;
	char	   *rel = PQescapeIdentifier(conn, dot ? dot + 1 : table, strlen(dot ? dot + 1 : table));
	size_t		size = (schema ? strlen(schema) + 1 : 0) + strlen(rel) + 1;
	char	   *out = malloc(size);

	snprintf(out, size, "%s%s%s", schema ? schema : "", schema ? "." : "", rel);
	if (schema)
		PQfreemem(schema);
	PQfreemem(rel);
	return out;
}

/*
 * The table's columns: name, type as format_type writes it, type category;
 * no rows when the table does not exist; NULL when the query failed
 */
PGresult *
pgtools_table_columns(PGconn *conn, const char *qtable)
{
	const char *params[1] = {qtable};
	PGresult   *res = PQexecParams(conn,
								   "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
								   "t.typcategory FROM pg_catalog.pg_attribute a "
								   "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
								   "WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 "
								   "AND NOT a.attisdropped ORDER BY a.attnum",
								   1, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		PQclear(res);
		return NULL;
	}
	return res;
}

char *
pgtools_column_name(const char *field, size_t len, int k, char *const *names, CanonicalKind *kind)
{
	char		norm[256];
	char		unique[300];
	const char *canon;
	int			suffix = 0;

	canonical_normalise(field, len, norm, sizeof(norm));
	if (norm[0] == '\0')
		snprintf(norm, sizeof(norm), "column_%d", k + 1);
	canon = canonical_name(norm, kind);
	snprintf(unique, sizeof(unique), "%s", canon);
	for (;;)
	{
		bool		dup = false;

		for (int j = 0; j < k && !dup; j++)
			dup = strcmp(names[j], unique) == 0;
		if (!dup)
			break;
		snprintf(unique, sizeof(unique), "%s_%d", canon, ++suffix);
	}
	if (suffix > 0)
		canonical_name(unique, kind);
	return strdup(unique);
}
