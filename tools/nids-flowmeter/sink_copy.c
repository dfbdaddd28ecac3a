/*
 * sink_copy.c
 *	  Finished flows into a table through COPY, in batches of at most
 *	  --batch-rows flows or --batch-ms of waiting, one transaction each, so
 *	  that the scoring, alert and scan triggers see them as they see
 *	  nids-load's rows.
 *
 * The table's columns are the CSV header's canonical names (src/flow_names.c,
 * the extension's own code), typed as nids-load types them: float8 for
 * features, inet for the addresses, integer for source_port, timestamptz
 * for timestamp, text for the rest.  A missing table is created so; an
 * existing one must have every such column, of a type that takes it, or it
 * is refused before any packet is read.
 *
 * No flow is written twice or lost: each batch's transaction id is read
 * before its COMMIT; when the connection breaks, the meter reconnects with
 * back-off (1 s doubling to 30 s) and asks the server whether that
 * transaction committed (txid_status) before it sends the batch again.
 * Meanwhile flows wait in a bounded buffer; what overflows it is dropped
 * and counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"
#include "pgtools.h"
#include "sink_copy.h"

#define BUFFER_MAX_ROWS(batch)	((batch) * 100 > 200000 ? (batch) * 100 : 200000)

typedef enum ColumnType
{
	COL_FLOAT8,
	COL_TEXT,
	COL_INET,
	COL_INTEGER,
	COL_TIMESTAMPTZ
} ColumnType;

static const char *const column_type_names[] = {"float8", "text", "inet", "integer", "timestamptz"};

typedef struct CopyColumn
{
	char	   *name;
	ColumnType	type;
	CanonicalKind kind;
} CopyColumn;

typedef struct CopyState
{
	CopyTarget	target;
	PGconn	   *conn;
	char	   *qtable;
	char	   *copy_sql;
	CopyColumn *cols;
	int			ncols;
	/* rows waiting, COPY text lines, oldest first */
	char	   *buf;
	size_t		len;
	size_t		cap;
	int64_t		rows;
	int64_t		max_rows;
	double		oldest;			/* when the oldest waiting row came */
	double		next_retry;		/* disconnected: when to try again */
	int			backoff;
	char		pending_xid[32];	/* a batch whose COMMIT was not answered */
	int64_t		pending_rows;
} CopyState;

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* the header's columns, named and typed as nids-load names and types them */
static void
header_columns(CopyState *cs)
{
	char	   *header = strdup(flow_csv_header);
	char	   *save = NULL;
	char	   *names[128];
	int			n = 0;

	cs->cols = calloc(128, sizeof(CopyColumn));
	for (char *f = strtok_r(header, ",", &save); f && n < 128; f = strtok_r(NULL, ",", &save))
	{
		CopyColumn *c = &cs->cols[n];

		c->name = names[n] = pgtools_column_name(f, strlen(f), n, names, &c->kind);
		if (strcmp(c->name, "source_ip") == 0 || strcmp(c->name, "destination_ip") == 0)
			c->type = COL_INET;
		else if (strcmp(c->name, "source_port") == 0)
			c->type = COL_INTEGER;
		else if (strcmp(c->name, "timestamp") == 0)
			c->type = COL_TIMESTAMPTZ;
		else if (c->kind == CANON_FEATURE || c->kind == CANON_UNKNOWN)
			c->type = COL_FLOAT8;
		else
			c->type = COL_TEXT;
		n++;
	}
	cs->ncols = n;
	free(header);
}

static PGconn *
connect_db(const CopyTarget *t, char *error, size_t errsize)
{
	PgTarget	target = {t->dbname, t->host, t->port, t->user};

	/* the caller's search_path names the table; nids' own calls are qualified */
	return pgtools_connect(&target, "nids-flowmeter", error, errsize);
}

/* the table as the meter needs it: made when missing, refused when it does not fit */
static bool
prepare_table(CopyState *cs, char *error, size_t errsize)
{
	PGresult   *res;
	size_t		size = 256;
	char	   *sql;
	bool		ok = true;

	res = pgtools_table_columns(cs->conn, cs->qtable);
	if (res == NULL)
	{
		snprintf(error, errsize, "cannot read table %s: %s", cs->target.table, PQerrorMessage(cs->conn));
		return false;
	}
	for (int k = 0; k < cs->ncols; k++)
		size += strlen(cs->cols[k].name) * 2 + 32;
	sql = calloc(1, size);
	if (PQntuples(res) == 0)
	{
		/* missing: made as nids-load makes it */
		size_t		len = (size_t) snprintf(sql, size, "CREATE TABLE %s (", cs->qtable);

		for (int k = 0; k < cs->ncols; k++)
		{
			char	   *id = PQescapeIdentifier(cs->conn, cs->cols[k].name, strlen(cs->cols[k].name));

			len += (size_t) snprintf(sql + len, size - len, "%s%s %s", k ? ", " : "", id,
									 column_type_names[cs->cols[k].type]);
			PQfreemem(id);
		}
		snprintf(sql + len, size - len, ")");
		PQclear(res);
		res = PQexec(cs->conn, sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			snprintf(error, errsize, "cannot create table %s: %s", cs->target.table, PQresultErrorMessage(res));
			ok = false;
		}
	}
	else
	{
		/* existing: every column there, of a type that takes what the meter writes */
		for (int k = 0; ok && k < cs->ncols; k++)
		{
			int			r;

			for (r = 0; r < PQntuples(res); r++)
				if (strcmp(PQgetvalue(res, r, 0), cs->cols[k].name) == 0)
					break;
			if (r == PQntuples(res))
			{
				snprintf(error, errsize, "table %s does not fit the flows: it has no column \"%s\" (%s)\n"
						 "HINT: Give a new table name (nids-flowmeter creates it as nids-load does), or add the column.",
						 cs->target.table, cs->cols[k].name, column_type_names[cs->cols[k].type]);
				ok = false;
			}
			else
			{
				const char *type = PQgetvalue(res, r, 1);
				char		cat = PQgetvalue(res, r, 2)[0];
				bool		fits;

				switch (cs->cols[k].type)
				{
					case COL_FLOAT8:
						fits = strcmp(type, "double precision") == 0 || strcmp(type, "real") == 0 ||
							strncmp(type, "numeric", 7) == 0;
						break;
					case COL_INET:
						fits = strcmp(type, "inet") == 0 || cat == 'S';
						break;
					case COL_INTEGER:
						fits = cat == 'N' || cat == 'S';
						break;
					case COL_TIMESTAMPTZ:
						fits = strncmp(type, "timestamp", 9) == 0 || cat == 'S';
						break;
					default:
						fits = cat == 'S';
				}
				if (!fits)
				{
					snprintf(error, errsize, "table %s does not fit the flows: column \"%s\" is %s, and the flows' is %s",
							 cs->target.table, cs->cols[k].name, type, column_type_names[cs->cols[k].type]);
					ok = false;
				}
			}
		}
	}
	PQclear(res);
	free(sql);
	return ok;
}

static void
build_copy_sql(CopyState *cs)
{
	size_t		size = strlen(cs->qtable) + 64;
	size_t		len;

	for (int k = 0; k < cs->ncols; k++)
		size += strlen(cs->cols[k].name) * 2 + 4;
	cs->copy_sql = malloc(size);
	len = (size_t) snprintf(cs->copy_sql, size, "COPY %s (", cs->qtable);
	for (int k = 0; k < cs->ncols; k++)
	{
		char	   *id = PQescapeIdentifier(cs->conn, cs->cols[k].name, strlen(cs->cols[k].name));

		len += (size_t) snprintf(cs->copy_sql + len, size - len, "%s%s", k ? ", " : "", id);
		PQfreemem(id);
	}
	snprintf(cs->copy_sql + len, size - len, ") FROM STDIN");
}

static bool
exec_command(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok && PQstatus(conn) == CONNECTION_OK)
		fprintf(stderr, "\nnids-flowmeter: %s", PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/* drop the first n waiting rows (they are in the table) */
static void
consume(CopyState *cs, int64_t n)
{
	size_t		off = 0;

	for (int64_t i = 0; i < n && off < cs->len; i++)
	{
		char	   *nl = memchr(cs->buf + off, '\n', cs->len - off);

		off = nl ? (size_t) (nl - cs->buf) + 1 : cs->len;
	}
	memmove(cs->buf, cs->buf + off, cs->len - off);
	cs->len -= off;
	cs->rows -= n;
	cs->oldest = now_seconds();
}

/*
 * After a reconnect: did the batch whose COMMIT went unanswered commit?
 * true when that is settled (its rows consumed if so), false to ask again.
 */
static bool
settle_pending(CopyState *cs)
{
	const char *params[1] = {cs->pending_xid};
	PGresult   *res;
	bool		settled = true;

	if (cs->pending_xid[0] == '\0')
		return true;
	res = PQexecParams(cs->conn, "SELECT pg_catalog.txid_status($1::bigint)", 1, NULL, params,
					   NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		settled = false;
	else if (strcmp(PQgetvalue(res, 0, 0), "committed") == 0)
		consume(cs, cs->pending_rows);
	else if (strcmp(PQgetvalue(res, 0, 0), "in progress") == 0)
		settled = false;
	PQclear(res);
	if (settled)
		cs->pending_xid[0] = '\0';
	return settled;
}

static void
disconnect(CopyState *cs)
{
	if (cs->conn)
		PQfinish(cs->conn);
	cs->conn = NULL;
	cs->next_retry = now_seconds() + cs->backoff;
	fprintf(stderr, "\nnids-flowmeter: the server went away; %lld flows wait, retrying in %d s\n",
			(long long) cs->rows, cs->backoff);
	cs->backoff = cs->backoff < 30 ? cs->backoff * 2 : 30;
}

/* one transaction of the waiting rows (at most batch_rows); false when the server failed */
static bool
send_batch(CopyState *cs)
{
	int64_t		n = cs->rows < cs->target.batch_rows ? cs->rows : cs->target.batch_rows;
	size_t		bytes = 0;
	PGresult   *res;
	char		xid[32];

	for (int64_t i = 0; i < n; i++)
	{
		char	   *nl = memchr(cs->buf + bytes, '\n', cs->len - bytes);

		bytes = (size_t) (nl - cs->buf) + 1;
	}
	if (!exec_command(cs->conn, "BEGIN"))
		return false;
	res = PQexec(cs->conn, "SELECT pg_catalog.txid_current()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		PQclear(res);
		return false;
	}
	snprintf(xid, sizeof(xid), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	res = PQexec(cs->conn, cs->copy_sql);
	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		fprintf(stderr, "\nnids-flowmeter: %s", PQresultErrorMessage(res));
		PQclear(res);
		exec_command(cs->conn, "ROLLBACK");
		return false;
	}
	PQclear(res);
	if (PQputCopyData(cs->conn, cs->buf, (int) bytes) != 1 || PQputCopyEnd(cs->conn, NULL) != 1)
		return false;
	res = PQgetResult(cs->conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "\nnids-flowmeter: %s", PQresultErrorMessage(res));
		PQclear(res);
		while ((res = PQgetResult(cs->conn)) != NULL)
			PQclear(res);
		exec_command(cs->conn, "ROLLBACK");
		return false;
	}
	PQclear(res);
	while ((res = PQgetResult(cs->conn)) != NULL)
		PQclear(res);
	/* from here an unanswered COMMIT may have committed */
	snprintf(cs->pending_xid, sizeof(cs->pending_xid), "%s", xid);
	cs->pending_rows = n;
	if (!exec_command(cs->conn, "COMMIT"))
		return false;
	cs->pending_xid[0] = '\0';
	consume(cs, n);
	return true;
}

/* send what is due (all of it when force); false for a database error that retrying cannot mend */
static bool
copy_drain(CopyState *cs, bool force)
{
	char		error[1024];

	while (cs->rows > 0 &&
		   (force || cs->rows >= cs->target.batch_rows ||
			(now_seconds() - cs->oldest) * 1000.0 >= (double) cs->target.batch_ms))
	{
		if (cs->conn == NULL)
		{
			if (!force && now_seconds() < cs->next_retry)
				return true;
			if (force && now_seconds() < cs->next_retry)
				sleep((unsigned) (cs->next_retry - now_seconds() + 0.999));
			cs->conn = connect_db(&cs->target, error, sizeof(error));
			if (cs->conn == NULL)
			{
				cs->next_retry = now_seconds() + cs->backoff;
				cs->backoff = cs->backoff < 30 ? cs->backoff * 2 : 30;
				if (force && cs->backoff >= 30)
				{
					fprintf(stderr, "\nnids-flowmeter: %s", error);
					return false;
				}
				continue;
			}
			if (!settle_pending(cs))
			{
				disconnect(cs);
				continue;
			}
			cs->backoff = 1;
			continue;			/* settled: what is left may no longer be due */
		}
		if (!send_batch(cs))
		{
			if (PQstatus(cs->conn) == CONNECTION_OK)
				return false;	/* the server refused the rows: not a network matter */
			disconnect(cs);
		}
	}
	return true;
}

static bool
copy_write(Sink *s, const Flow *f)
{
	CopyState  *cs = s->state;
	char		row[8192];
	size_t		len = format_flow(f, row, sizeof(row));
	int			field = 0;

	if (cs->rows >= cs->max_rows)
	{
		s->dropped++;
		return true;			/* counted as dropped, not as failed */
	}
	if (cs->len + len + 8 > cs->cap)
	{
		cs->cap = (cs->cap + len + 8) * 2;
		cs->buf = realloc(cs->buf, cs->cap);
	}
	if (cs->rows == 0)
		cs->oldest = now_seconds();
	/* the CSV row as a COPY text line: tabs, and the time zone on the time */
	for (size_t i = 0; i < len; i++)
	{
		if (row[i] == ',')
		{
			if (field == 6)
			{
				memcpy(cs->buf + cs->len, "+00", 3);
				cs->len += 3;
			}
			cs->buf[cs->len++] = '\t';
			field++;
		}
		else
			cs->buf[cs->len++] = row[i];
	}
	cs->buf[cs->len++] = '\n';
	cs->rows++;
	if (cs->rows >= cs->target.batch_rows)
		return copy_drain(cs, false);
	return true;
}

static bool
copy_tick(Sink *s)
{
	return copy_drain(s->state, false);
}

/* at the end: everything, retrying for about 30 s; what is left then is counted as dropped */
static bool
copy_flush(Sink *s)
{
	CopyState  *cs = s->state;

	if (copy_drain(cs, true))
		return true;
	s->dropped += cs->rows;
	cs->rows = 0;
	cs->len = 0;
	return false;
}

static void
copy_close(Sink *s)
{
	CopyState  *cs = s->state;

	if (cs->conn)
		PQfinish(cs->conn);
	for (int k = 0; k < cs->ncols; k++)
		free(cs->cols[k].name);
	free(cs->cols);
	free(cs->buf);
	free(cs->copy_sql);
	free(cs->qtable);
	free(cs);
	free(s);
}

Sink *
sink_copy_open(const CopyTarget *target, char *error, size_t errsize)
{
	CopyState  *cs = calloc(1, sizeof(CopyState));
	Sink	   *s;
	cs->target = *target;
	cs->backoff = 1;
	cs->max_rows = BUFFER_MAX_ROWS(target->batch_rows);
	header_columns(cs);
	cs->conn = connect_db(target, error, errsize);
	if (cs->conn == NULL)
	{
		free(cs);
		return NULL;
	}
	cs->qtable = pgtools_quoted_table(cs->conn, target->table);
	if (!prepare_table(cs, error, errsize))
	{
		PQfinish(cs->conn);
		free(cs);
		return NULL;
	}
	build_copy_sql(cs);
	s = calloc(1, sizeof(Sink));
	s->write = copy_write;
	s->tick = copy_tick;
	s->flush = copy_flush;
	s->close = copy_close;
	s->state = cs;
	return s;
}
