/*-------------------------------------------------------------------------
 *
 * nids-load.c
 *	  Load CICFlowMeter CSV files (CIC-IDS2017 original or improved,
 *	  CSE-CIC-IDS2018; plain or gzip) into a PostgreSQL table.
 *
 *	  nids-load [-d DBNAME] [-h HOST] [-p PORT] [-U USER] -t TABLE FILE.csv ...
 *
 * Column names are mapped to nids' canonical names (src/flow_names.c, the
 * same code the extension uses).  The table is created when missing:
 * float8 for numeric features, inet for source_ip and destination_ip,
 * integer for source_port, text for other identifiers and the label; columns
 * a file has and the table lacks are added.  Each file is streamed with
 * COPY inside one transaction: a malformed file is refused with its name
 * and line number and leaves nothing behind.  Accepted values: numbers,
 * Infinity, NaN, and empty fields (NULL).  In text fields, a Windows-1252
 * dash (0x96, 0x97) or a U+FFFD replacement character becomes '-', so
 * "Web Attack \x96 Brute Force" is stored as "Web Attack - Brute Force";
 * any other byte that is not UTF-8 becomes '?'.  Labels are stored in the
 * original release's spelling (flow_names.c, canonical_label) unless
 * --raw-labels; timestamps as timestamptz when they parse in a release's
 * format.  A header naming fewer than MIN_KNOWN_FEATURES flow features is
 * refused; unknown columns are reported with the nearest known name.
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <zlib.h>

#include "flow.h"
#include "pgtools.h"

#define SAMPLE_ROWS		1000
#define COPY_CHUNK		(256 * 1024)

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

typedef struct Column
{
	char	   *name;			/* canonical, unique in the file */
	CanonicalKind kind;
	bool		numeric;		/* loaded as float8 */
	bool		timestamp;		/* loaded as timestamptz */
	bool		address;		/* loaded as inet (source_ip, destination_ip) */
	bool		port;			/* loaded as integer (source_port) */
} Column;

/* a header must name at least this many known flow features */
#define MIN_KNOWN_FEATURES	10

static bool raw_labels = false;

typedef struct Record
{
	char	  **fields;
	size_t	   *lens;
	int			n;
	int			cap;
	Buf			storage;
} Record;

static const char *progname = "nids-load";

static void
buf_append(Buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		b->data = realloc(b->data, b->cap);
		if (b->data == NULL)
		{
			fprintf(stderr, "%s: out of memory\n", progname);
			exit(1);
		}
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_char(Buf *b, char c)
{
	buf_append(b, &c, 1);
}

/* read one physical line (without the newline); false at end of file */
static bool
read_line(gzFile f, Buf *line)
{
	char		chunk[65536];

	line->len = 0;
	if (line->data)
		line->data[0] = '\0';
	for (;;)
	{
		size_t		n;

		if (gzgets(f, chunk, sizeof(chunk)) == NULL)
			return line->len > 0;
		n = strlen(chunk);
		buf_append(line, chunk, n);
		if (n > 0 && chunk[n - 1] == '\n')
		{
			line->data[--line->len] = '\0';
			if (line->len > 0 && line->data[line->len - 1] == '\r')
				line->data[--line->len] = '\0';
			return true;
		}
	}
}

/*
 * Read one CSV record (quoted fields may span lines).  Returns false at end
 * of file; *lineno counts physical lines.  On a quote error, *error is set.
 */
static bool
read_record(gzFile f, Buf *line, Record *rec, long *lineno, const char **error)
{
	bool		in_quotes = false;
	size_t		start;

	rec->n = 0;
	rec->storage.len = 0;
	*error = NULL;
	if (!read_line(f, line))
		return false;
	(*lineno)++;
	start = 0;
	buf_append(&rec->storage, "", 0);
	for (;;)
	{
		size_t		i = 0;
		const char *s = line->data;

		for (; i <= line->len; i++)
		{
			char		c = i < line->len ? s[i] : '\0';

			if (in_quotes)
			{
				if (i == line->len)
					break;		/* the field goes on on the next line */
				if (c == '"')
				{
					if (i + 1 < line->len && s[i + 1] == '"')
					{
						buf_char(&rec->storage, '"');
						i++;
					}
					else
						in_quotes = false;
				}
				else
					buf_char(&rec->storage, c);
				continue;
			}
			if (c == '"')
			{
				in_quotes = true;
				continue;
			}
			if (c == ',' || i == line->len)
			{
				if (rec->n == rec->cap)
				{
					rec->cap = rec->cap ? rec->cap * 2 : 128;
					rec->fields = realloc(rec->fields, sizeof(char *) * rec->cap);
					rec->lens = realloc(rec->lens, sizeof(size_t) * rec->cap);
				}
				/* offsets now, pointers once storage stops moving */
				rec->fields[rec->n] = (char *) (uintptr_t) start;
				rec->lens[rec->n] = rec->storage.len - start;
				rec->n++;
				buf_char(&rec->storage, '\0');
				start = rec->storage.len;
				continue;
			}
			buf_char(&rec->storage, c);
		}
		if (!in_quotes)
			break;
		buf_char(&rec->storage, '\n');
		if (!read_line(f, line))
		{
			*error = "unterminated quoted field at end of file";
			return true;
		}
		(*lineno)++;
	}
	for (int k = 0; k < rec->n; k++)
		rec->fields[k] = rec->storage.data + (uintptr_t) rec->fields[k];
	return true;
}

static void
trim(char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char) **s))
	{
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char) (*s)[*len - 1]))
		(*len)--;
}

static bool
parse_number(const char *s, size_t len)
{
	char		tmp[128];
	char	   *end;

	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	(void) strtod(tmp, &end);
	return *end == '\0';
}

/*
 * A flow's timestamp in its release's format, as ISO 8601 text in out
 * (size >= 40): "2017-07-06 12:39:06.818901" (CIC-IDS2017 improved),
 * "3/7/2017 8:55" or "7/7/2017 3:30:01 PM" (original release, day first)
 * and "14/02/2018 08:31:01" (CSE-CIC-IDS2018, day first).  The time is
 * read in the session's TimeZone (PGTZ).
 */
static bool
parse_timestamp(const char *s, size_t len, char *out)
{
	char		tmp[64];
	int			y, mo, d, h, mi, n = 0;
	int			sec = 0;
	char		frac[16] = "";
	char		ampm[3] = "";

	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (sscanf(tmp, "%4d-%2d-%2d%*1[ T]%2d:%2d%n", &y, &mo, &d, &h, &mi, &n) == 5)
	{
		int			m = 0;

		if (tmp[n] == ':' && sscanf(tmp + n, ":%2d%n", &sec, &m) == 1)
		{
			n += m;
			m = 0;
			if (tmp[n] == '.' && sscanf(tmp + n, ".%15[0-9]%n", frac, &m) == 1)
				n += m;
		}
	}
	else if (n = 0, sscanf(tmp, "%2d/%2d/%4d %2d:%2d%n", &d, &mo, &y, &h, &mi, &n) == 5)
	{
		int			m = 0;

		if (tmp[n] == ':' && sscanf(tmp + n, ":%2d%n", &sec, &m) == 1)
			n += m;
		m = 0;
		if (sscanf(tmp + n, " %2[AaPp]%*1[Mm]%n", ampm, &m) == 1 && m > 0)
		{
			n += m;
			if (h < 1 || h > 12)
				return false;
			h = (h % 12) + ((ampm[0] == 'P' || ampm[0] == 'p') ? 12 : 0);
		}
	}
	else
		return false;
	if (tmp[n] != '\0' || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
		h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
		return false;
	snprintf(out, 40, "%04d-%02d-%02d %02d:%02d:%02d%s%s", y, mo, d, h, mi, sec,
			 frac[0] ? "." : "", frac);
	return true;
}

/* append s as a COPY text-format text value, fixing the encoding */
static void
copy_text(Buf *out, const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = s[i];

		if (c == '\\' || c == '\t' || c == '\n' || c == '\r')
		{
			buf_char(out, '\\');
			buf_char(out, c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\');
		}
		else if (c < 0x80)
			buf_char(out, (char) c);
		else if (c == 0xEF && i + 2 < len && s[i + 1] == 0xBF && s[i + 2] == 0xBD)
		{
			buf_char(out, '-');	/* U+FFFD where a dash was */
			i += 2;
		}
		else
		{
			/* a valid UTF-8 sequence is kept; anything else is Windows-1252 */
			int			n = (c >= 0xC2 && c <= 0xDF) ? 1 : (c >= 0xE0 && c <= 0xEF) ? 2 :
				(c >= 0xF0 && c <= 0xF4) ? 3 : -1;
			bool		valid = n > 0;

			for (int k = 1; valid && k <= n; k++)
				valid = (i + k < len) && (s[i + k] & 0xC0) == 0x80;
			if (valid)
			{
				buf_append(out, (const char *) s + i, n + 1);
				i += n;
			}
			else
				buf_char(out, (c == 0x96 || c == 0x97) ? '-' : '?');
		}
	}
}

static void
fail_conn(PGconn *conn, const char *what)
{
	fprintf(stderr, "%s: %s: %s", progname, what, PQerrorMessage(conn));
	PQfinish(conn);
	exit(1);
}

typedef struct LoadError
{
	long		line;
	char		msg[512];
} LoadError;

/* an IPv4 or IPv6 address, as inet reads it (no prefix length) */
static bool
parse_address(const char *s, size_t len)
{
	char		tmp[64];
	unsigned char addr[16];

	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return inet_pton(AF_INET, tmp, addr) == 1 || inet_pton(AF_INET6, tmp, addr) == 1;
}

/* a port: an integer from 0 to 65535 */
static bool
parse_port(const char *s, size_t len)
{
	long		v = 0;

	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	return v <= 65535;
}

static void
set_error(LoadError *e, long line, const char *fmt,...)
{
	va_list		ap;

	e->line = line;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/* the row as one COPY text line; false (and *e) when a value is bad */
static bool
row_to_copy(Record *rec, Column *cols, int ncols, Buf *out, long lineno, LoadError *e)
{
	for (int k = 0; k < ncols; k++)
	{
		char	   *s = rec->fields[k];
		size_t		len = rec->lens[k];

		if (k > 0)
			buf_char(out, '\t');
		if (cols[k].numeric)
		{
			trim(&s, &len);
			if (len == 0)
				buf_append(out, "\\N", 2);
			else if (parse_number(s, len))
				buf_append(out, s, len);
			else
			{
				set_error(e, lineno, "column \"%s\": \"%.*s\" is not a number",
						  cols[k].name, (int) (len > 60 ? 60 : len), s);
				return false;
			}
		}
		else
		{
			size_t		tlen = len;
			char	   *t = s;
			char		mapped[128];
			size_t		mlen;

			trim(&t, &tlen);
			if (tlen == 0)
				buf_append(out, "\\N", 2);
			else if ((cols[k].address && !parse_address(t, tlen)) ||
					 (cols[k].port && !parse_port(t, tlen)))
			{
				set_error(e, lineno, "column \"%s\": \"%.*s\" is not %s",
						  cols[k].name, (int) (tlen > 60 ? 60 : tlen), t,
						  cols[k].address ? "an IP address" : "a port (0 to 65535)");
				return false;
			}
			else if (cols[k].address || cols[k].port)
				buf_append(out, t, tlen);
			else if (cols[k].timestamp)
			{
				if (!parse_timestamp(t, tlen, mapped))
				{
					set_error(e, lineno, "column \"%s\": \"%.*s\" is not a timestamp in this file's format",
							  cols[k].name, (int) (tlen > 60 ? 60 : tlen), t);
					return false;
				}
				buf_append(out, mapped, strlen(mapped));
			}
			else if (cols[k].kind == CANON_LABEL && !raw_labels &&
					 (mlen = canonical_label(t, tlen, mapped, sizeof(mapped))) > 0)
				buf_append(out, mapped, mlen);
			else
				copy_text(out, (const unsigned char *) t, tlen);
		}
	}
	buf_char(out, '\n');
	return true;
}

static bool
blank_record(Record *rec)
{
	for (int k = 0; k < rec->n; k++)
	{
		char	   *s = rec->fields[k];
		size_t		len = rec->lens[k];

		trim(&s, &len);
		if (len > 0)
			return false;
	}
	return true;
}

/* append a column as a quoted identifier, with its type when with_type */
static void
append_column(Buf *b, PGconn *conn, const Column *col, bool with_type)
{
	char	   *id = PQescapeIdentifier(conn, col->name, strlen(col->name));

	buf_append(b, id, strlen(id));
	if (with_type)
	{
		const char *type = col->numeric ? " float8" : col->timestamp ? " timestamptz"
			: col->address ? " inet" : col->port ? " integer" : " text";

		buf_append(b, type, strlen(type));
	}
	PQfreemem(id);
}

/*
 * Load one file in one transaction.  Returns rows loaded, or -1 with *e.
 */
/* one CSV file being loaded */
typedef struct LoadState
{
	gzFile		f;
	Buf			line;
	long		lineno;
	Column	   *cols;			/* the header's columns, canonical names */
	int			ncols;
	Record	   *sample;			/* the first rows, read ahead */
	long	   *sample_line;
	int			nsample;
	bool		eof;			/* the sample holds every row */
	char	   *qtable;
} LoadState;

/* the header's columns: canonical names, unique within the file */
static void
header_columns(LoadState *ls, const Record *header)
{
	char	  **names = calloc(header->n + 1, sizeof(char *));

	ls->ncols = header->n;
	ls->cols = calloc(ls->ncols, sizeof(Column));
	for (int k = 0; k < ls->ncols; k++)
	{
		Column	   *col = &ls->cols[k];

		col->name = names[k] = pgtools_column_name(header->fields[k], header->lens[k], k, names,
												   &col->kind);
		col->numeric = (col->kind == CANON_FEATURE || col->kind == CANON_UNKNOWN);
	}
	free(names);
}

/*
 * Whether the header is a CICFlowMeter header: enough known flow features
 * (else *e says why: a ';' separated file reads as one column).  Columns
 * nids does not know are reported with the nearest known name.
 */
static bool
check_header(LoadState *ls, const Record *header, const char *path, LoadError *e)
{
	int			known = 0;

	for (int k = 0; k < ls->ncols; k++)
		known += ls->cols[k].kind == CANON_FEATURE;
	if (known < MIN_KNOWN_FEATURES)
	{
		if (ls->ncols == 1 && (memchr(header->fields[0], ';', header->lens[0]) ||
							   memchr(header->fields[0], '\t', header->lens[0])))
			set_error(e, 1, "the header is one column: fields must be separated by ',', not ';' or tabs");
		else
			set_error(e, 1, "the header names %d CICFlowMeter flow features (of %d columns); at least %d are expected",
					  known, ls->ncols, MIN_KNOWN_FEATURES);
		return false;
	}
	for (int k = 0; k < ls->ncols; k++)
	{
		int			distance;
		const char *nearest;

		if (ls->cols[k].kind != CANON_UNKNOWN)
			continue;
		nearest = canonical_nearest(ls->cols[k].name, &distance);
		if (nearest != NULL && distance <= 3 && distance * 3 < (int) strlen(ls->cols[k].name))
			fprintf(stderr, "%s: %s: warning: unknown column \"%.*s\" loaded as %s; did you mean %s?\n",
					progname, path, (int) header->lens[k], header->fields[k], ls->cols[k].name, nearest);
		else
			fprintf(stderr, "%s: %s: warning: unknown column \"%.*s\" loaded as %s (not a CICFlowMeter column)\n",
					progname, path, (int) header->lens[k], header->fields[k], ls->cols[k].name);
	}
	return true;
}

/*
 * Whether every non-empty value of column k in the sample parses: as a
 * timestamp of a release's format, or as a number.
 */
enum
{
	PARSE_NUMBER,
	PARSE_TIMESTAMP,
};

static bool
sample_column_parses(const LoadState *ls, int k, int as)
{
	char		iso[40];

	for (int r = 0; r < ls->nsample; r++)
	{
		char	   *s;
		size_t		len;

		if (ls->sample[r].n != ls->ncols)
			continue;
		s = ls->sample[r].fields[k];
		len = ls->sample[r].lens[k];
		trim(&s, &len);
		if (len > 0 &&
			!(as == PARSE_TIMESTAMP ? parse_timestamp(s, len, iso)
			  : parse_number(s, len)))
			return false;
	}
	return true;
}

/*
 * Read up to SAMPLE_ROWS rows ahead; they decide the type of the columns
 * nids does not know (numeric unless a value is not a number).
 */
static bool
read_sample(LoadState *ls, LoadError *e)
{
	const char *qerr;

	ls->sample = calloc(SAMPLE_ROWS, sizeof(Record));
	ls->sample_line = calloc(SAMPLE_ROWS, sizeof(long));
	while (ls->nsample < SAMPLE_ROWS)
	{
		if (!read_record(ls->f, &ls->line, &ls->sample[ls->nsample], &ls->lineno, &qerr))
		{
			ls->eof = true;
			break;
		}
		if (qerr)
		{
			set_error(e, ls->lineno, "%s", qerr);
			return false;
		}
		ls->sample_line[ls->nsample++] = ls->lineno;
	}
	for (int k = 0; k < ls->ncols; k++)
	{
		if (strcmp(ls->cols[k].name, "timestamp") == 0)
			ls->cols[k].timestamp = sample_column_parses(ls, k, PARSE_TIMESTAMP);
		/* by name: a value that is not one is refused with its line */
		if (strcmp(ls->cols[k].name, "source_ip") == 0 ||
			strcmp(ls->cols[k].name, "destination_ip") == 0)
			ls->cols[k].address = true;
		if (strcmp(ls->cols[k].name, "source_port") == 0)
			ls->cols[k].port = true;
		if (ls->cols[k].kind == CANON_UNKNOWN)
			ls->cols[k].numeric = sample_column_parses(ls, k, PARSE_NUMBER);
	}
	return true;
}

/* run one DDL statement; on failure set e and roll back */
static bool
exec_ddl(PGconn *conn, const char *sql, LoadError *e, const char *what, const char *name)
{
	char	   *errmsg = NULL;

	if (pgtools_exec(conn, sql, &errmsg))
		return true;
	set_error(e, 0, "cannot %s %s: %s", what, name, errmsg);
	pgtools_exec(conn, "ROLLBACK", NULL);
	return false;
}

/* create the table, or add the columns it lacks */
static bool
prepare_table(PGconn *conn, LoadState *ls, const char *table, LoadError *e)
{
	PGresult   *res = pgtools_table_columns(conn, ls->qtable);
	Buf			sql = {0};
	bool		ok = true;

	if (res == NULL)
		fail_conn(conn, "reading the table's columns");

	if (PQntuples(res) == 0)
	{
		buf_append(&sql, "CREATE TABLE ", 13);
		buf_append(&sql, ls->qtable, strlen(ls->qtable));
		buf_append(&sql, " (", 2);
		for (int k = 0; k < ls->ncols; k++)
		{
			if (k > 0)
				buf_append(&sql, ", ", 2);
			append_column(&sql, conn, &ls->cols[k], true);
		}
		buf_append(&sql, ")", 1);
		ok = exec_ddl(conn, sql.data, e, "create table", table);
	}
	for (int k = 0; ok && PQntuples(res) > 0 && k < ls->ncols; k++)
	{
		bool		has = false;

		for (int r = 0; r < PQntuples(res) && !has; r++)
		{
			has = strcmp(PQgetvalue(res, r, 0), ls->cols[k].name) == 0;
			/* a column made as text (by nids 1.0 or 1.1) keeps its text */
			if (has && ls->cols[k].timestamp)
				ls->cols[k].timestamp = strcmp(PQgetvalue(res, r, 1), "timestamp with time zone") == 0;
			if (has && ls->cols[k].address)
				ls->cols[k].address = strcmp(PQgetvalue(res, r, 1), "inet") == 0;
			if (has && ls->cols[k].port)
				ls->cols[k].port = strcmp(PQgetvalue(res, r, 1), "integer") == 0;
		}
		if (has)
			continue;
		sql.len = 0;
		buf_append(&sql, "ALTER TABLE ", 12);
		buf_append(&sql, ls->qtable, strlen(ls->qtable));
		buf_append(&sql, " ADD COLUMN ", 12);
		append_column(&sql, conn, &ls->cols[k], true);
		ok = exec_ddl(conn, sql.data, e, "add column", ls->cols[k].name);
	}
	PQclear(res);
	return ok;
}

static bool
begin_copy(PGconn *conn, LoadState *ls, LoadError *e)
{
	Buf			sql = {0};
	PGresult   *res;

	buf_append(&sql, "COPY ", 5);
	buf_append(&sql, ls->qtable, strlen(ls->qtable));
	buf_append(&sql, " (", 2);
	for (int k = 0; k < ls->ncols; k++)
	{
		if (k > 0)
			buf_append(&sql, ", ", 2);
		append_column(&sql, conn, &ls->cols[k], false);
	}
	buf_append(&sql, ") FROM STDIN", 12);
	res = PQexec(conn, sql.data);
	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		set_error(e, 0, "COPY failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		pgtools_exec(conn, "ROLLBACK", NULL);
		return false;
	}
	PQclear(res);
	return true;
}

/*
 * Send every row (the sample, then the rest of the file) to COPY; returns
 * the rows sent, with e->line >= 0 when a row was malformed.
 */
static long
stream_rows(PGconn *conn, LoadState *ls, LoadError *e)
{
	Record		rec = {0};
	Buf			out = {0};
	const char *qerr;
	long		rows = 0;

	e->line = -1;
	for (int r = 0;; r++)
	{
		Record	   *cur;
		long		curline;

		if (r < ls->nsample)
		{
			cur = &ls->sample[r];
			curline = ls->sample_line[r];
		}
		else
		{
			if (ls->eof || !read_record(ls->f, &ls->line, &rec, &ls->lineno, &qerr))
				break;
			if (qerr)
			{
				set_error(e, ls->lineno, "%s", qerr);
				break;
			}
			cur = &rec;
			curline = ls->lineno;
		}
		if (cur->n != ls->ncols)
		{
			if (blank_record(cur))
				continue;
			set_error(e, curline, "expected %d fields, found %d", ls->ncols, cur->n);
			break;
		}
		if (!row_to_copy(cur, ls->cols, ls->ncols, &out, curline, e))
			break;
		rows++;
		if (out.len >= COPY_CHUNK)
		{
			if (PQputCopyData(conn, out.data, (int) out.len) != 1)
				fail_conn(conn, "sending rows");
			out.len = 0;
		}
	}
	if (e->line < 0 && out.len > 0 && PQputCopyData(conn, out.data, (int) out.len) != 1)
		fail_conn(conn, "sending rows");
	return rows;
}

/* end COPY and commit, or roll back when a row was malformed */
static bool
end_copy(PGconn *conn, LoadError *e)
{
	PGresult   *res;
	char	   *errmsg = NULL;

	if (e->line >= 0)
	{
		PQputCopyEnd(conn, "nids-load: malformed input");
		res = PQgetResult(conn);
		PQclear(res);
		pgtools_exec(conn, "ROLLBACK", NULL);
		return false;
	}
	if (PQputCopyEnd(conn, NULL) != 1)
		fail_conn(conn, "ending COPY");
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		set_error(e, 0, "COPY failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		pgtools_exec(conn, "ROLLBACK", NULL);
		return false;
	}
	PQclear(res);
	if (!pgtools_exec(conn, "COMMIT", &errmsg))
	{
		set_error(e, 0, "COMMIT failed: %s", errmsg);
		return false;
	}
	return true;
}

/*
 * Load one CSV file into table in one transaction: create or extend the
 * table, then COPY.  Returns the rows loaded, or -1 with e set.
 */
static long
load_file(PGconn *conn, const char *path, const char *table, LoadError *e)
{
	LoadState	ls = {0};
	Record		header = {0};
	const char *qerr;
	char	   *errmsg = NULL;
	long		rows;

	ls.f = gzopen(path, "rb");
	if (ls.f == NULL)
	{
		set_error(e, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	gzbuffer(ls.f, 1 << 17);
	if (!read_record(ls.f, &ls.line, &header, &ls.lineno, &qerr) || qerr)
	{
		set_error(e, ls.lineno, qerr ? qerr : "the file is empty: no header");
		gzclose(ls.f);
		return -1;
	}
	header_columns(&ls, &header);
	if (!check_header(&ls, &header, path, e) || !read_sample(&ls, e))
	{
		gzclose(ls.f);
		return -1;
	}
	ls.qtable = pgtools_quoted_table(conn, table);
	if (!pgtools_exec(conn, "BEGIN", &errmsg))
		fail_conn(conn, "BEGIN");
	if (!prepare_table(conn, &ls, table, e) || !begin_copy(conn, &ls, e))
	{
		gzclose(ls.f);
		return -1;
	}
	rows = stream_rows(conn, &ls, e);
	gzclose(ls.f);
	return end_copy(conn, e) ? rows : -1;
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: %s [-d DBNAME] [-h HOST] [-p PORT] [-U USER] [--raw-labels] -t TABLE FILE.csv ...\n"
			"Load CICFlowMeter CSV files (CIC-IDS2017, CSE-CIC-IDS2018; plain or gzip)\n"
			"into TABLE under nids' canonical column names, one transaction per file.\n"
			"Labels of every release are stored in the CIC-IDS2017 original spelling\n"
			"('Botnet' -> 'Bot'); --raw-labels keeps them as written. Timestamps are\n"
			"stored as timestamptz, read in the session's TimeZone (set PGTZ).\n",
			progname);
}

int
main(int argc, char **argv)
{
	PgTarget	target = {0};
	char		error[1024];
	const char *table = NULL;
	PGconn	   *conn;
	int			c;
	static struct option long_options[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"host", required_argument, NULL, 'h'},
		{"port", required_argument, NULL, 'p'},
		{"username", required_argument, NULL, 'U'},
		{"table", required_argument, NULL, 't'},
		{"raw-labels", no_argument, NULL, 'L'},
		{"help", no_argument, NULL, '?'},
		{NULL, 0, NULL, 0}
	};

	while ((c = getopt_long(argc, argv, "d:h:p:U:t:?", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				target.dbname = optarg;
				break;
			case 'h':
				target.host = optarg;
				break;
			case 'p':
				target.port = optarg;
				break;
			case 'U':
				target.user = optarg;
				break;
			case 't':
				table = optarg;
				break;
			case 'L':
				raw_labels = true;
				break;
			case '?':
				usage(optopt ? stderr : stdout);
				return optopt ? 2 : 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (table == NULL || table[0] == '\0' || optind >= argc)
	{
		usage(stderr);
		return 2;
	}
	conn = pgtools_connect(&target, NULL, error, sizeof(error));
	if (conn == NULL)
	{
		fprintf(stderr, "%s: cannot connect: %s", progname, error);
		exit(1);
	}
	if (PQsetClientEncoding(conn, "UTF8") != 0)
		fail_conn(conn, "cannot set client encoding");

	for (int i = optind; i < argc; i++)
	{
		LoadError	e = {0};
		long		rows = load_file(conn, argv[i], table, &e);

		if (rows < 0)
		{
			if (e.line > 0)
				fprintf(stderr, "%s: %s:%ld: %s\n", progname, argv[i], e.line, e.msg);
			else
				fprintf(stderr, "%s: %s: %s\n", progname, argv[i], e.msg);
			fprintf(stderr, "%s: %s: nothing loaded from this file\n", progname, argv[i]);
			PQfinish(conn);
			return 1;
		}
		printf("%s: %ld rows loaded into %s\n", argv[i], rows, table);
		fflush(stdout);
	}
	PQfinish(conn);
	return 0;
}
