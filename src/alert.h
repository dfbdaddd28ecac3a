/*-------------------------------------------------------------------------
 *
 * alert.h
 *	  The alert_* family: incidents in nids.alerts.  alert_reader.c turns
 *	  inserted flows (nids_alert_trigger's transition table) or a query's
 *	  rows (nids_alerts_from) into flagged flows; alert_incident.c groups
 *	  them per source, verdict and class into incidents, suppresses, counts
 *	  destinations and ports, explains and notifies;
 *	  alert_community_id.c is nids_community_id.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_ALERT_H
#define NIDS_ALERT_H

#include "postgres.h"

#include <sys/socket.h>

#include "datatype/timestamp.h"
#include "scoring.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

/* one flagged flow */
typedef struct AlertFlow
{
	uint8		family;			/* the source address, comparable: */
	uint8		bits;
	uint8		addr[16];
	inet	   *src;			/* the values as inserted */
	inet	   *dst;			/* NULL: none */
	int32		sport;			/* -1: none */
	int32		dport;
	int32		proto;
	TimestampTz ts;
	NidsVerdict verdict;		/* attack or anomaly */
	int			label;			/* the predicted class */
	double		probability;	/* NaN: not known */
	double		novelty;
	int64		row;			/* its place among the flagged flows read */
	bool		want_x;			/* its features explain an incident */
	float	   *x;				/* those features, once fetched */
} AlertFlow;

/* the sources of a statement's flows, as lock keys (alert_lock.c) */
typedef struct AlertSources
{
	uint32	   *hash;
	int64		n;
	int64		cap;
} AlertSources;

/* a batch of flows for one model */
struct AlertBatch;
typedef struct AlertBatch
{
	NidsModel  *model;
	int64		n;
	int64		cap;
	AlertFlow  *flows;
	int64		no_source;		/* flagged, but no source address or time */
	int64		rows;			/* every row read */
	AlertSources sources;		/* the source of every row read */
	/* fills x of the flows marked want_x (in flows order), or NULL: have it */
	void		(*fetch_x) (struct AlertBatch *batch, void *arg);
	void	   *fetch_arg;
} AlertBatch;

/* a scan's incident: what one batch adds to it */
typedef struct AlertScan
{
	inet	   *src;
	const char *class;			/* AddressScan, PortScan */
	TimestampTz first;
	TimestampTz last;
	int64		attempts;
	int32		protocol;		/* -1: mixed or unknown */
	Datum	   *dsts;			/* distinct inet, sorted */
	int			ndsts;
	int32	   *ports;			/* distinct, sorted */
	int			nports;
	Jsonb	   *reasons;		/* what decided, or NULL to keep */
} AlertScan;

/*
 * A flow's time from a timestamptz or timestamp column; false for
 * -infinity and infinity, which no incident or scan can be placed at
 */
static inline bool
nids_flow_time(Datum value, Oid type, TimestampTz *ts)
{
	*ts = type == TIMESTAMPTZOID ? DatumGetTimestampTz(value)
		: DatumGetTimestampTz(DirectFunctionCall1(timestamp_timestamptz, value));
	return !TIMESTAMP_NOT_FINITE(*ts);
}

extern int64 alert_apply(AlertBatch *batch, ScoreState *st);
extern void alert_scan(const AlertScan *sc);
extern void alert_require_feeder(const char *what);
extern void alert_sources_add(AlertSources *s, inet *src);
extern void alert_lock_sources(AlertSources *s);
extern void alert_find_columns(TupleDesc desc, const char *const *names, int n,
							   int *col, Oid *type);
extern TriggerData *alert_statement_trigger(FunctionCallInfo fcinfo, const char *name,
											 const char *argument);
extern Oid	nids_table_owner(const char *name);
extern char *alert_community_id(inet *src, inet *dst, int sport, int dport, int proto);

#endif							/* NIDS_ALERT_H */
