/*
 * pgtools.h
 *	  What nids' client programs (nids-load, nids-alerts, nids-flowmeter)
 *	  share: connecting with libpq, running a command, quoting a table name,
 *	  reading a table's columns, and the canonical column names of a flow
 *	  file's header (src/flow_names.c, the extension's own code, is where
 *	  the names come from).
 */
#ifndef NIDS_PGTOOLS_H
#define NIDS_PGTOOLS_H

#include <stdbool.h>
#include <stddef.h>

#include "libpq-fe.h"
#include "flow.h"

/* where to connect: NULL fields come from the PG* environment */
typedef struct PgTarget
{
	const char *dbname;			/* a database name or a connection string */
	const char *host;
	const char *port;
	const char *user;
} PgTarget;

extern PGconn *pgtools_connect(const PgTarget *t, const char *application_name,
							   char *error, size_t errsize);
extern bool pgtools_exec(PGconn *conn, const char *sql, char **errmsg);
extern char *pgtools_quoted_table(PGconn *conn, const char *table);
extern PGresult *pgtools_table_columns(PGconn *conn, const char *qtable);

/*
 * The canonical column name of header field field[0..len) as the k-th of
 * names[0..k) (made unique with _1, _2 ...): malloc'd; *kind says what the
 * column holds
 */
extern char *pgtools_column_name(const char *field, size_t len, int k, char *const *names,
								 CanonicalKind *kind);

#endif							/* NIDS_PGTOOLS_H */
