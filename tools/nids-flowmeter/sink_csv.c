/*
 * sink_csv.c
 *	  Finished flows as the reference's CSV on standard output: its header
 *	  once, then one row a flow, through one large stdio buffer.
 */
#include <stdio.h>
#include <stdlib.h>

#include "meter.h"

static bool
csv_write(Sink *s, const Flow *f)
{
	char		row[8192];
	size_t		len = format_flow(f, row, sizeof(row));

	(void) s;
	row[len++] = '\n';
	return fwrite(row, 1, len, stdout) == len;
}

static bool
csv_flush(Sink *s)
{
	(void) s;
	return fflush(stdout) == 0;
}

static void
csv_close(Sink *s)
{
	fflush(stdout);
	free(s);
}

Sink *
sink_csv_open(void)
{
	static char buffer[1 << 20];
	Sink	   *s = calloc(1, sizeof(Sink));

	if (s == NULL)
		return NULL;
	setvbuf(stdout, buffer, _IOFBF, sizeof(buffer));
	s->write = csv_write;
	s->flush = csv_flush;
	s->close = csv_close;
	fputs(flow_csv_header, stdout);
	fputc('\n', stdout);
	return s;
}
