/*
 * nids-flowmeter: packets (pcap/pcapng files or a live interface) into the
 * flows and features of the reference meter, as CSV or straight into a
 * PostgreSQL table through COPY, where nids' triggers score them.
 *
 *   nids-flowmeter (-r FILE ... | -i IFACE) [-f BPF] (--csv | -t TABLE [-d DBNAME]
 *       [-h HOST] [-p PORT] [-U USER]) [--batch-rows N] [--batch-ms MS]
 *       [--max-flows N] [--stats FILE]
 *
 * main() parses the options into one struct and runs the loop: a frame
 * from the capture, decoded into a packet, into the flow table, whose
 * finished flows go to the sink.  Exit status 0; 1 for bad usage or input
 * (the message names the file and packet); 2 for database errors.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "meter.h"
#include "sink_copy.h"

typedef struct Options
{
	char	  **files;
	int			nfiles;
	const char *iface;
	const char *filter;
	bool		csv;
	CopyTarget	copy;
	int64_t		max_flows;
	const char *stats;
	bool		quiet;
} Options;

#define Max64(a, b) ((a) > (b) ? (a) : (b))

static volatile sig_atomic_t stopping = 0;
static Capture *volatile capturing = NULL;

/* SIGINT, SIGTERM: stop reading (a live read may be waiting in libpcap), then flush */
static void
on_signal(int sig)
{
	(void) sig;
	stopping = 1;
	if (capturing)
		capture_break(capturing);
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: nids-flowmeter (-r FILE ... | -i IFACE) [-f BPF] (--csv | -t TABLE [-d DBNAME]\n"
			"                      [-h HOST] [-p PORT] [-U USER]) [--batch-rows N] [--batch-ms MS]\n"
			"                      [--max-flows N] [--stats FILE] [-q]\n"
			"Packets into the flows and features nids' models were trained on (CICFlowMeter's).\n"
			"  -r FILE            a pcap or pcapng file; several are read in order as one capture\n"
			"  -i IFACE           a live interface (needs CAP_NET_RAW)\n"
			"  -f BPF             a capture filter, as tcpdump takes it\n"
			"  --csv              flows as CSV on standard output\n"
			"  -t TABLE           flows into TABLE through COPY (created as nids-load creates it)\n"
			"  -d, -h, -p, -U     database, host, port, user (default: the PG* environment)\n"
			"  --batch-rows N     flows per transaction (default 1000)\n"
			"  --batch-ms MS      longest wait before a transaction (default 1000)\n"
			"  --max-flows N      open flows at most (default 1000000); the idlest ends early\n"
			"  --stats FILE       the final counts as JSON\n"
			"  -q                 no progress line\n"
			"Exit status: 0 done, 1 bad usage or input, 2 database error.\n");
}

static int64_t
number_option(const char *arg, const char *name, int64_t min, int64_t max)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v < min || v > max)
	{
		fprintf(stderr, "nids-flowmeter: %s must be a whole number from %lld to %lld, not \"%s\"\n",
				name, (long long) min, (long long) max, arg);
		exit(1);
	}
	return v;
}

static void
parse_options(int argc, char **argv, Options *o)
{
	static struct option longopts[] = {
		{"csv", no_argument, NULL, 1},
		{"batch-rows", required_argument, NULL, 2},
		{"batch-ms", required_argument, NULL, 3},
		{"max-flows", required_argument, NULL, 4},
		{"stats", required_argument, NULL, 5},
		{"help", no_argument, NULL, 6},
		{NULL, 0, NULL, 0}
	};
	int			c;

	memset(o, 0, sizeof(*o));
	o->files = calloc(argc, sizeof(char *));
	o->max_flows = 1000000;
	o->copy.batch_rows = 1000;
	o->copy.batch_ms = 1000;
	while ((c = getopt_long(argc, argv, "r:i:f:t:d:h:p:U:q", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'r':
				o->files[o->nfiles++] = optarg;
				break;
			case 'i':
				o->iface = optarg;
				break;
			case 'f':
				o->filter = optarg;
				break;
			case 't':
				o->copy.table = optarg;
				break;
			case 'd':
				o->copy.dbname = optarg;
				break;
			case 'h':
				o->copy.host = optarg;
				break;
			case 'p':
				o->copy.port = optarg;
				break;
			case 'U':
				o->copy.user = optarg;
				break;
			case 'q':
				o->quiet = true;
				break;
			case 1:
				o->csv = true;
				break;
			case 2:
				o->copy.batch_rows = number_option(optarg, "--batch-rows", 1, 10000000);
				break;
			case 3:
				o->copy.batch_ms = number_option(optarg, "--batch-ms", 1, 3600000);
				break;
			case 4:
				o->max_flows = number_option(optarg, "--max-flows", 1, INT64_C(1) << 40);
				break;
			case 5:
				o->stats = optarg;
				break;
			case 6:
				usage(stdout);
				exit(0);
			default:
				usage(stderr);
				exit(1);
		}
	}
	if (optind < argc || (o->nfiles > 0) == (o->iface != NULL) || o->csv == (o->copy.table != NULL))
	{
		if (optind < argc)
			fprintf(stderr, "nids-flowmeter: unexpected argument \"%s\"\n", argv[optind]);
		else if ((o->nfiles > 0) == (o->iface != NULL))
			fprintf(stderr, "nids-flowmeter: give -r FILE (one or more) or -i IFACE\n");
		else
			fprintf(stderr, "nids-flowmeter: give --csv or -t TABLE\n");
		usage(stderr);
		exit(1);
	}
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
progress(const Options *o, Capture *cap, const MeterCounts *n, int64_t open_flows, double elapsed,
		 bool last)
{
	double		pct = capture_progress(cap);
	int64_t		skipped = 0;

	/* the running line on a terminal only; the last one always */
	if (o->quiet || (!last && !isatty(STDERR_FILENO)))
		return;
	for (int i = 0; i < SKIP_NUM_REASONS; i++)
		skipped += n->skipped[i];
	fprintf(stderr, "\rnids-flowmeter: %lld packets, %lld flows written, %lld open, %.0f packets/s, %lld skipped",
			(long long) n->packets, (long long) n->flows, (long long) open_flows,
			elapsed > 0 ? (double) n->packets / elapsed : 0.0, (long long) skipped);
	if (skipped > 0)
	{
		fputs(" (", stderr);
		for (int i = 0, first = 1; i < SKIP_NUM_REASONS; i++)
			if (n->skipped[i] > 0)
			{
				fprintf(stderr, "%s%s %lld", first ? "" : ", ", skip_reason_names[i],
						(long long) n->skipped[i]);
				first = 0;
			}
		fputc(')', stderr);
	}
	if (pct >= 0 && !last)
		fprintf(stderr, ", %s %.0f%%", capture_current(cap), pct);
	fputs(last ? "\n" : "   ", stderr);
}

static bool
write_stats(const char *path, const MeterCounts *n, double elapsed, const Sink *sink)
{
	FILE	   *f = fopen(path, "w");

	if (f == NULL)
	{
		fprintf(stderr, "nids-flowmeter: could not write %s: %s\n", path, strerror(errno));
		return false;
	}
	fprintf(f, "{\"packets\": %lld, \"flow_packets\": %lld, \"flows\": %lld, \"evicted\": %lld, "
			"\"dropped\": %lld, \"seconds\": %.3f, \"skipped\": {",
			(long long) n->packets, (long long) n->flow_packets, (long long) n->flows,
			(long long) n->evicted, (long long) (n->write_failed + sink_dropped(sink)), elapsed);
	for (int i = 0; i < SKIP_NUM_REASONS; i++)
		fprintf(f, "%s\"%s\": %lld", i ? ", " : "", skip_reason_names[i], (long long) n->skipped[i]);
	fprintf(f, "}}\n");
	return fclose(f) == 0;
}

/* one captured frame into the flow table, counted */
static void
meter_frame(FlowTable *table, MeterCounts *counts, const CapturedFrame *frame)
{
	Packet		p;
	Packet		q;
	SkipReason	why;
	bool		ok = decode_packet(frame->linktype, frame->data, frame->caplen,
								   frame->wirelen, frame->ts, &p, &why);

	counts->packets++;
	if (ok)
	{
		counts->flow_packets++;
		flow_table_packet(table, &p);
	}
	else
		counts->skipped[why]++;
	/* no IPv4 header found: the reference reads the frame again (decode.c) */
	if ((!ok || p.family != 4) &&
		decode_reference_quirk(frame->linktype, frame->data, frame->caplen, frame->ts, &q))
	{
		counts->quirk_packets++;
		flow_table_packet(table, &q);
	}
}

int
main(int argc, char **argv)
{
	Options		o;
	Capture    *cap;
	Sink	   *sink;
	FlowTable  *table;
	MeterCounts counts;
	char		error[1024];
	double		start,
				last_progress = 0;
	int64_t		last_ts = 0;
	int			status = 0;
	struct sigaction sa;

	parse_options(argc, argv, &o);
	memset(&counts, 0, sizeof(counts));

	/* the table is checked (or made) before any packet is read */
	if (o.csv)
		sink = sink_csv_open();
	else
	{
		sink = sink_copy_open(&o.copy, error, sizeof(error));
		if (sink == NULL)
		{
			fprintf(stderr, "nids-flowmeter: %s\n", error);
			return 2;
		}
	}
	cap = o.iface ? capture_open_live(o.iface, o.filter, error, sizeof(error))
		: capture_open_files(o.files, o.nfiles, o.filter, error, sizeof(error));
	if (cap == NULL)
	{
		fprintf(stderr, "nids-flowmeter: %s\n", error);
		sink->close(sink);
		return 1;
	}
	table = flow_table_create(o.max_flows, sink, &counts);
	capturing = cap;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	start = now_seconds();
	while (!stopping)
	{
		CapturedFrame frame;
		CaptureResult r = capture_next(cap, &frame);

		if (r == CAPTURE_END)
			break;
		if (r == CAPTURE_ERROR)
		{
			fprintf(stderr, "nids-flowmeter: %s\n", capture_error(cap));
			status = 1;
			break;
		}
		if (r == CAPTURE_FRAME)
		{
			meter_frame(table, &counts, &frame);
			last_ts = frame.ts;
		}
		if (r == CAPTURE_TIMEOUT || (counts.packets & 0x3ff) == 0)
		{
			double		now = now_seconds();

			/* live: the capture's clock moves on without packets too */
			if (capture_is_live(cap))
			{
				struct timespec wall;

				clock_gettime(CLOCK_REALTIME, &wall);
				flow_table_expire(table, Max64(last_ts, (int64_t) wall.tv_sec * 1000000 + wall.tv_nsec / 1000));
			}

			if (!sink_tick(sink))
			{
				status = 2;
				break;
			}
			if (now - last_progress >= 1.0)
			{
				progress(&o, cap, &counts, flow_table_open_flows(table), now - start, false);
				last_progress = now;
			}
		}
	}
	/* the end of the input, a signal or an error: every open flow is written */
	counts.skipped[SKIP_BAD_RECORD] = capture_bad_records(cap);
	flow_table_flush(table);
	if (!sink->flush(sink) && status == 0)
		status = 2;
	progress(&o, cap, &counts, 0, now_seconds() - start, true);
	if (o.stats && !write_stats(o.stats, &counts, now_seconds() - start, sink) && status == 0)
		status = 1;
	if (sink_dropped(sink) > 0 || counts.write_failed > 0)
		fprintf(stderr, "nids-flowmeter: %lld flows could not be written\n",
				(long long) (sink_dropped(sink) + counts.write_failed));
	flow_table_destroy(table);
	capturing = NULL;
	capture_close(cap);
	sink->close(sink);
	free(o.files);
	return status;
}
