/*
 * nids-alerts: stream the incidents of nids.alerts as Suricata EVE JSON
 * lines, one per new or changed incident, to stdout or a file, for the
 * SIEM shippers that already read Suricata's eve.json.
 *
 *   nids-alerts [-d CONNINFO] [-o FILE] [-s STATEFILE] [--once]
 *
 * It LISTENs on the channel nids_alerts and, on every notification and at
 * least every --poll seconds, reads the incidents changed since the last
 * one it wrote, in (updated_at, alert_id) order, from nids.alerts_eve.  A
 * notification only wakes it: what it writes comes from the table, so a
 * missed notification, a reconnect or a restart (with -s, which keeps the
 * position) loses nothing.  Each read looks back --overlap seconds before
 * the position, so that an analyst's change committed late is not
 * skipped; lines already written are not written twice.
 *
 * Connection settings come from CONNINFO or the usual PG* variables; the
 * role needs nids_analyst.  On a lost connection it reconnects with
 * back-off.  Exit status: 0 with --once, 1 on a usage or file error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "libpq-fe.h"

#define RECENT_MAX	4096

typedef struct Position
{
	char		updated_at[64];	/* text, as the server writes timestamptz */
	long long	alert_id;
} Position;

typedef struct Written
{
	long long	alert_id;
	char		updated_at[64];
} Written;

static volatile sig_atomic_t stopping = 0;
static Written recent[RECENT_MAX];
static int	nrecent = 0;
static int	next_recent = 0;

static void
on_signal(int sig)
{
	(void) sig;
	stopping = 1;
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: nids-alerts [-d CONNINFO] [-o FILE] [-s STATEFILE] [--poll SECONDS]\n"
			"                   [--overlap SECONDS] [--once]\n"
			"Writes nids' incidents (nids.alerts_eve) as Suricata EVE JSON lines, one per\n"
			"new or changed incident, and keeps writing them as they come (LISTEN nids_alerts).\n"
			"  -d, --dbname CONNINFO   database to read (default: PG* environment)\n"
			"  -o, --output FILE       append the lines to FILE (default: stdout)\n"
			"  -s, --state FILE        keep the position in FILE across restarts\n"
			"      --poll SECONDS      read at least this often (default 10)\n"
			"      --overlap SECONDS   look back this far for late commits (default 60)\n"
			"      --once              write what there is, then exit\n");
}

static bool
already_written(long long id, const char *updated_at)
{
	for (int i = 0; i < nrecent; i++)
		if (recent[i].alert_id == id && strcmp(recent[i].updated_at, updated_at) == 0)
			return true;
	return false;
}

static void
remember(long long id, const char *updated_at)
{
	recent[next_recent].alert_id = id;
	snprintf(recent[next_recent].updated_at, sizeof(recent[next_recent].updated_at), "%s",
			 updated_at);
	next_recent = (next_recent + 1) % RECENT_MAX;
	if (nrecent < RECENT_MAX)
		nrecent++;
}

static void
load_state(const char *path, Position *pos)
{
	FILE	   *f;

	strcpy(pos->updated_at, "-infinity");
	pos->alert_id = 0;
	if (path == NULL || (f = fopen(path, "r")) == NULL)
		return;
	if (fscanf(f, "%63[^\t]\t%lld", pos->updated_at, &pos->alert_id) != 2)
	{
		strcpy(pos->updated_at, "-infinity");
		pos->alert_id = 0;
	}
	fclose(f);
}

static bool
save_state(const char *path, const Position *pos)
{
	char		tmp[4096];
	FILE	   *f;

	if (path == NULL)
		return true;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return false;
	fprintf(f, "%s\t%lld\n", pos->updated_at, pos->alert_id);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return false;
	return true;
}

/* write the incidents changed since pos; false when the connection failed */
static bool
drain(PGconn *conn, FILE *out, Position *pos, int overlap, const char *state)
{
	char		idbuf[32];
	char		overlapbuf[32];
	const char *params[3];
	PGresult   *res;
	int			written = 0;

	snprintf(idbuf, sizeof(idbuf), "%lld", pos->alert_id);
	snprintf(overlapbuf, sizeof(overlapbuf), "%d", overlap);
	params[0] = pos->updated_at;
	params[1] = idbuf;
	params[2] = overlapbuf;
	res = PQexecParams(conn,
					   "SELECT a.alert_id, a.updated_at, e.eve::text, "
					   "(a.updated_at, a.alert_id) <= ($1::timestamptz, $2::bigint) "
					   "FROM nids.alerts a JOIN nids.alerts_eve e USING (alert_id) "
					   "WHERE a.updated_at > $1::timestamptz - pg_catalog.make_interval(secs => $3::int) "
					   "ORDER BY a.updated_at, a.alert_id",
					   3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "nids-alerts: %s", PQerrorMessage(conn));
		PQclear(res);
		return PQstatus(conn) == CONNECTION_OK;
	}
	for (int r = 0; r < PQntuples(res); r++)
	{
		long long	id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		const char *updated = PQgetvalue(res, r, 1);

		/*
		 * at or before the position: written by this run (remembered) or,
		 * after a restart, by the run that saved the position
		 */
		if (already_written(id, updated) ||
			(PQgetvalue(res, r, 3)[0] == 't' && nrecent == 0))
			continue;
		fprintf(out, "%s\n", PQgetvalue(res, r, 2));
		remember(id, updated);
		written++;
		/* the position only moves forward */
		snprintf(pos->updated_at, sizeof(pos->updated_at), "%s", updated);
		pos->alert_id = id;
	}
	PQclear(res);
	if (written > 0)
	{
		fflush(out);
		if (!save_state(state, pos))
			fprintf(stderr, "nids-alerts: could not write %s: %s\n", state, strerror(errno));
	}
	return true;
}

static PGconn *
connect_listen(const char *conninfo)
{
	const char *keywords[] = {"dbname", "application_name", NULL};
	const char *values[] = {conninfo, "nids-alerts", NULL};
	PGconn	   *conn = PQconnectdbParams(keywords, values, 1);
	PGresult   *res;

	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "nids-alerts: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	res = PQexec(conn, "SET TIME ZONE 'UTC'; LISTEN nids_alerts");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "nids-alerts: %s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

int
main(int argc, char **argv)
{
	static struct option options[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"output", required_argument, NULL, 'o'},
		{"state", required_argument, NULL, 's'},
		{"poll", required_argument, NULL, 1},
		{"overlap", required_argument, NULL, 2},
		{"once", no_argument, NULL, 3},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *conninfo = NULL;
	const char *output = NULL;
	const char *state = NULL;
	int			poll_s = 10;
	int			overlap = 60;
	bool		once = false;
	FILE	   *out = stdout;
	Position	pos;
	PGconn	   *conn = NULL;
	int			backoff = 1;
	int			c;

	while ((c = getopt_long(argc, argv, "d:o:s:h", options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				conninfo = optarg;
				break;
			case 'o':
				output = optarg;
				break;
			case 's':
				state = optarg;
				break;
			case 1:
				poll_s = atoi(optarg);
				break;
			case 2:
				overlap = atoi(optarg);
				break;
			case 3:
				once = true;
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 1;
		}
	}
	if (optind < argc || poll_s < 1 || overlap < 0)
	{
		usage(stderr);
		return 1;
	}
	if (output != NULL && (out = fopen(output, "a")) == NULL)
	{
		fprintf(stderr, "nids-alerts: could not open %s: %s\n", output, strerror(errno));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	load_state(state, &pos);
	while (!stopping)
	{
		fd_set		fds;
		struct timeval tv;
		int			sock;
		PGnotify   *n;

		if (conn == NULL)
		{
			if ((conn = connect_listen(conninfo)) == NULL)
			{
				if (once)
					return 2;
				sleep(backoff);
				backoff = backoff < 30 ? backoff * 2 : 30;
				continue;
			}
			backoff = 1;
		}
		/* what happened while not listening, and since the last wake-up */
		if (!drain(conn, out, &pos, overlap, state) || PQstatus(conn) != CONNECTION_OK)
		{
			PQfinish(conn);
			conn = NULL;
			continue;
		}
		if (once)
			break;
		sock = PQsocket(conn);
		FD_ZERO(&fds);
		FD_SET(sock, &fds);
		tv.tv_sec = poll_s;
		tv.tv_usec = 0;
		if (select(sock + 1, &fds, NULL, NULL, &tv) < 0 && errno != EINTR)
			break;
		if (!PQconsumeInput(conn))
		{
			fprintf(stderr, "nids-alerts: %s", PQerrorMessage(conn));
			PQfinish(conn);
			conn = NULL;
			continue;
		}
		while ((n = PQnotifies(conn)) != NULL)
			PQfreemem(n);
	}
	if (conn)
		PQfinish(conn);
	if (out != stdout)
		fclose(out);
	return 0;
}
