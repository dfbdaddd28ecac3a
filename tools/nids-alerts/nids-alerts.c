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
 * missed notification, a reconnect or a restart (with -s) loses nothing.
 *
 * Each read looks back --overlap seconds before the position (the latest
 * updated_at written), so that a change committed late, with an earlier
 * updated_at, is not skipped.  What was written within that look-back is
 * remembered (alert_id and updated_at, whatever their number), and kept in
 * the state file with the position, so no line is written twice, across
 * bursts, reconnects and restarts alike.  The state file is replaced
 * atomically (written beside it, fsync'd, renamed) after the lines it
 * covers are flushed and fsync'd: a crash between the two writes a line
 * again at the next start, never loses one.
 *
 * Connection settings come from CONNINFO or the usual PG* variables; the
 * role needs nids_analyst.  On a lost connection (a server restart, a
 * terminated backend) it reconnects with back-off.  Exit status: 0 on
 * success (SIGINT, SIGTERM, or --once done); 1 on a usage error or a file
 * it cannot read or write (the output, the state file, a state file that
 * is not one); 2 on a database error (refused connection with --once, a
 * query the server refuses, e.g. without nids_analyst).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"
#include "pgtools.h"

#define STATE_HEADER	"nids-alerts state 2"
#define NO_POSITION		INT64_MIN

/* a line written: an incident as of one change */
typedef struct Seen
{
	int64_t		us;				/* updated_at, microseconds since 1970 */
	int64_t		alert_id;
} Seen;

typedef struct Client
{
	const char *state_path;
	FILE	   *out;
	int64_t		overlap_us;
	int64_t		pos_us;			/* the latest updated_at written */
	int64_t		pos_id;
	Seen	   *seen;			/* written within the look-back, sorted */
	size_t		nseen;
	size_t		capseen;
	char	   *legacy_position;	/* a 1.2 state file's timestamp, until read */
} Client;

static volatile sig_atomic_t stopping = 0;
static bool follow_health = false;	/* --health */

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
			"      --once              write what there is, then exit\n"
			"      --health            also write each change of a model's health (NOTIFY nids_health)\n"
			"Exit status: 0 done, 1 usage or file error, 2 database error.\n");
}

static void
fatal_file(const char *path, const char *what)
{
	fprintf(stderr, "nids-alerts: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static int
compare_seen(const void *pa, const void *pb)
{
	const Seen *a = pa,
			   *b = pb;

	if (a->us != b->us)
		return a->us < b->us ? -1 : 1;
	return (a->alert_id > b->alert_id) - (a->alert_id < b->alert_id);
}

static bool
was_written(const Client *c, int64_t id, int64_t us)
{
	Seen		key = {us, id};

	return c->nseen > 0 &&
		bsearch(&key, c->seen, c->nseen, sizeof(Seen), compare_seen) != NULL;
}

static void
remember(Client *c, int64_t id, int64_t us)
{
	if (c->nseen == c->capseen)
	{
		c->capseen = c->capseen ? c->capseen * 2 : 1024;
		c->seen = realloc(c->seen, sizeof(Seen) * c->capseen);
		if (c->seen == NULL)
		{
			fprintf(stderr, "nids-alerts: out of memory\n");
			exit(1);
		}
	}
	c->seen[c->nseen].us = us;
	c->seen[c->nseen].alert_id = id;
	c->nseen++;
}

/* sort what was written, and forget what the look-back no longer reaches */
static void
settle_seen(Client *c)
{
	size_t		keep = 0;

	qsort(c->seen, c->nseen, sizeof(Seen), compare_seen);
	for (size_t i = 0; i < c->nseen; i++)
		if (c->pos_us == NO_POSITION || c->seen[i].us > c->pos_us - c->overlap_us)
			c->seen[keep++] = c->seen[i];
	c->nseen = keep;
}

/*
 * The state file: a header, the position and what was written within the
 * look-back.  A 1.2 state file (one line: a timestamp, a tab, an id) is
 * read once, its position compared as before.  Anything else is an error.
 */
static void
load_state(Client *c)
{
	FILE	   *f;
	struct stat st;
	char		line[256];
	int			lineno = 0;

	c->pos_us = NO_POSITION;
	c->pos_id = 0;
	if (c->state_path == NULL)
		return;
	if (stat(c->state_path, &st) == 0 && S_ISDIR(st.st_mode))
	{
		errno = EISDIR;
		fatal_file(c->state_path, "state file");
	}
	if ((f = fopen(c->state_path, "r")) == NULL)
	{
		if (errno == ENOENT)
			return;
		fatal_file(c->state_path, "could not read state file");
	}
	while (fgets(line, sizeof(line), f) != NULL)
	{
		long long	a,
					b;
		char		ts[64];
		char		extra;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f))
			goto corrupt;
		if (lineno == 1)
		{
			if (strcmp(line, STATE_HEADER "\n") == 0)
				continue;
			/* 1.2: "<updated_at>\t<alert_id>" */
			if (sscanf(line, "%63[^\t\n]\t%lld %c", ts, &a, &extra) == 2 && ts[0] != '\0')
			{
				c->legacy_position = strdup(ts);
				c->pos_id = a;
				if (fgets(line, sizeof(line), f) != NULL)
					goto corrupt;
				break;
			}
			goto corrupt;
		}
		if (sscanf(line, "position %lld %lld %c", &a, &b, &extra) == 2)
		{
			c->pos_us = a;
			c->pos_id = b;
		}
		else if (sscanf(line, "seen %lld %lld %c", &a, &b, &extra) == 2)
			remember(c, b, a);
		else
			goto corrupt;
	}
	if (ferror(f))
		fatal_file(c->state_path, "could not read state file");
	fclose(f);
	if (lineno == 0)
		goto corrupt_closed;
	settle_seen(c);
	return;

corrupt:
	fclose(f);
corrupt_closed:
	fprintf(stderr, "nids-alerts: %s is not a state file of nids-alerts (line %d)\n"
			"HINT: Move it away to start from the first incident; -s names the file nids-alerts keeps.\n",
			c->state_path, lineno == 0 ? 1 : lineno);
	exit(1);
}

/* replace the state file: written beside it, fsync'd, renamed, directory fsync'd */
static void
save_state(const Client *c)
{
	char		tmp[PATH_MAX];
	char		dirbuf[PATH_MAX];
	FILE	   *f;
	int			dfd;

	if (c->state_path == NULL)
		return;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", c->state_path) >= (int) sizeof(tmp))
	{
		errno = ENAMETOOLONG;
		fatal_file(c->state_path, "could not write state file");
	}
	if ((f = fopen(tmp, "w")) == NULL)
		fatal_file(tmp, "could not write state file");
	fprintf(f, "%s\n", STATE_HEADER);
	if (c->pos_us != NO_POSITION)
		fprintf(f, "position %" PRId64 " %" PRId64 "\n", c->pos_us, c->pos_id);
	for (size_t i = 0; i < c->nseen; i++)
		fprintf(f, "seen %" PRId64 " %" PRId64 "\n", c->seen[i].us, c->seen[i].alert_id);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		fatal_file(tmp, "could not write state file");
	if (fclose(f) != 0)
		fatal_file(tmp, "could not write state file");
	if (rename(tmp, c->state_path) != 0)
	{
		int			save = errno;

		unlink(tmp);
		errno = save;
		fatal_file(c->state_path, "could not replace state file");
	}
	snprintf(dirbuf, sizeof(dirbuf), "%s", c->state_path);
	if ((dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY)) >= 0)
	{
		(void) fsync(dfd);
		close(dfd);
	}
}

/* a query the server refused, with the connection up: nothing to retry */
static void
fatal_query(PGconn *conn, PGresult *res)
{
	fprintf(stderr, "nids-alerts: %s", PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(conn);
	exit(2);
}

/* a 1.2 state file's position, in microseconds, read by the server */
static bool
read_legacy_position(Client *c, PGconn *conn)
{
	const char *params[1] = {c->legacy_position};
	PGresult   *res;

	res = PQexecParams(conn, "SELECT (extract(epoch FROM $1::timestamptz) * 1000000)::bigint",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		if (PQstatus(conn) != CONNECTION_OK)
		{
			PQclear(res);
			return false;
		}
		fprintf(stderr, "nids-alerts: the position in %s (%s) is not a time\n",
				c->state_path, c->legacy_position);
		PQclear(res);
		PQfinish(conn);
		exit(1);
	}
	c->pos_us = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return true;
}

/* write the incidents changed since the position; false when the connection failed */
static bool
drain(Client *c, PGconn *conn)
{
	char		since[32];
	const char *params[1];
	PGresult   *res;
	int			written = 0;
	bool		legacy = c->legacy_position != NULL;
	int64_t		legacy_us = 0,
				legacy_id = c->pos_id;

	if (legacy)
	{
		if (!read_legacy_position(c, conn))
			return false;
		legacy_us = c->pos_us;
	}
	snprintf(since, sizeof(since), "%" PRId64,
			 c->pos_us == NO_POSITION ? INT64_MIN : c->pos_us - c->overlap_us);
	params[0] = since;
	res = PQexecParams(conn,
					   "SELECT a.alert_id, (extract(epoch FROM a.updated_at) * 1000000)::bigint, "
					   "e.eve::text "
					   "FROM nids.alerts a JOIN nids.alerts_eve e USING (alert_id) "
					   "WHERE $1::bigint = -9223372036854775808 OR a.updated_at > "
					   "'1970-01-01 00:00:00+00'::timestamptz + $1::bigint * interval '1 microsecond' "
					   "ORDER BY a.updated_at, a.alert_id",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		if (PQstatus(conn) == CONNECTION_OK)
			fatal_query(conn, res);
		fprintf(stderr, "nids-alerts: %s", PQerrorMessage(conn));
		PQclear(res);
		return false;
	}
	for (int r = 0; r < PQntuples(res); r++)
	{
		int64_t		id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		int64_t		us = strtoll(PQgetvalue(res, r, 1), NULL, 10);

		/* a 1.2 state file: what is at or before its position was written */
		if (legacy && (us < legacy_us || (us == legacy_us && id <= legacy_id)))
			continue;
		if (was_written(c, id, us))
			continue;
		if (fprintf(c->out, "%s\n", PQgetvalue(res, r, 2)) < 0)
			fatal_file("the output", "could not write");
		remember(c, id, us);
		written++;
		if (c->pos_us == NO_POSITION || us > c->pos_us || (us == c->pos_us && id > c->pos_id))
		{
			c->pos_us = us;
			c->pos_id = id;
		}
	}
	PQclear(res);
	if (legacy)
	{
		free(c->legacy_position);
		c->legacy_position = NULL;
	}
	if (written > 0 || legacy)
	{
		/* the lines are on disk before the state that says so */
		if (fflush(c->out) != 0 || (fsync(fileno(c->out)) != 0 && errno != EINVAL && errno != EROFS))
			fatal_file("the output", "could not write");
		settle_seen(c);
		save_state(c);
	}
	return true;
}

static PGconn *
connect_listen(const char *conninfo)
{
	PgTarget	target = {conninfo, NULL, NULL, NULL};
	char		error[1024];
	PGconn	   *conn = pgtools_connect(&target, "nids-alerts", error, sizeof(error));
	char	   *errmsg = NULL;

	if (conn == NULL)
	{
		fprintf(stderr, "nids-alerts: %s", error);
		return NULL;
	}
	if (!pgtools_exec(conn, follow_health ? "SET TIME ZONE 'UTC'; LISTEN nids_alerts; LISTEN nids_health"
					  : "SET TIME ZONE 'UTC'; LISTEN nids_alerts", &errmsg))
	{
		fprintf(stderr, "nids-alerts: %s", errmsg);
		free(errmsg);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/*
 * --health: a change of a model's health (NOTIFY nids_health) as an EVE-style
 * line of its own type, {"timestamp", "event_type": "nids_health",
 * "nids_health": the payload}; written as it comes (the history is
 * nids.health_reports)
 */
static void
write_health(Client *c, const char *payload)
{
	char		ts[40];
	struct timespec now;
	struct tm	tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	if (fprintf(c->out, "{\"timestamp\": \"%s.%06ld+0000\", \"event_type\": \"nids_health\", "
				"\"nids_health\": %s}\n", ts, (long) (now.tv_nsec / 1000), payload) < 0 ||
		fflush(c->out) != 0)
		fatal_file("the output", "could not write");
}

static int
seconds_option(const char *arg, const char *name, int min)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v < min || v > 86400 * 365)
	{
		fprintf(stderr, "nids-alerts: --%s must be a whole number of seconds from %d, not \"%s\"\n",
				name, min, arg);
		exit(1);
	}
	return (int) v;
}

/*
 * Listen and write until stopped (or once): reconnects with backoff; 0 when
 * stopped or done, 2 when --once meets a database error.
 */
static int
follow(Client *client, const char *conninfo, int poll_s, bool once)
{
	PGconn	   *conn = NULL;
	int			backoff = 1;

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
		if (!drain(client, conn) || PQstatus(conn) != CONNECTION_OK)
		{
			PQfinish(conn);
			conn = NULL;
			if (once)
				return 2;
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
		{
			if (follow_health && strcmp(n->relname, "nids_health") == 0)
				write_health(client, n->extra);
			PQfreemem(n);
		}
	}
	if (conn)
		PQfinish(conn);
	return 0;
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
		{"health", no_argument, NULL, 4},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *conninfo = NULL;
	const char *output = NULL;
	int			poll_s = 10;
	int			overlap = 60;
	bool		once = false;
	Client		client;
	int			opt;
	int			status;
	struct sigaction sa;

	memset(&client, 0, sizeof(client));
	while ((opt = getopt_long(argc, argv, "d:o:s:h", options, NULL)) != -1)
	{
		switch (opt)
		{
			case 'd':
				conninfo = optarg;
				break;
			case 'o':
				output = optarg;
				break;
			case 's':
				client.state_path = optarg;
				break;
			case 1:
				poll_s = seconds_option(optarg, "poll", 1);
				break;
			case 2:
				overlap = seconds_option(optarg, "overlap", 0);
				break;
			case 3:
				once = true;
				break;
			case 4:
				follow_health = true;
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 1;
		}
	}
	if (optind < argc)
	{
		usage(stderr);
		return 1;
	}
	client.overlap_us = (int64_t) overlap * 1000000;
	client.out = stdout;
	if (output != NULL && (client.out = fopen(output, "a")) == NULL)
		fatal_file(output, "could not open");
	load_state(&client);
	/* a state file that cannot be written is found now, not after the first line */
	save_state(&client);

	/* no SA_RESTART: a signal ends the wait in select() */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	status = follow(&client, conninfo, poll_s, once);
	if (status != 0)
		return status;
	if (client.out != stdout && fclose(client.out) != 0)
		fatal_file(output, "could not write");
	return 0;
}
