/*
 * sink_copy.h
 *	  Flows into a PostgreSQL table through COPY (sink_copy.c).
 */
#ifndef NIDS_METER_SINK_COPY_H
#define NIDS_METER_SINK_COPY_H

#include "meter.h"

typedef struct CopyTarget
{
	const char *table;
	const char *dbname;
	const char *host;
	const char *port;
	const char *user;
	int64_t		batch_rows;
	int64_t		batch_ms;
} CopyTarget;

extern Sink *sink_copy_open(const CopyTarget *target, char *error, size_t errsize);

#endif							/* NIDS_METER_SINK_COPY_H */
