/*-------------------------------------------------------------------------
 *
 * scan.h
 *	  The scan_* family: per-source detection of the scans and sweeps that
 *	  no single flow shows.  scan_detector.c is the detector (attempts in
 *	  time order against per-source state, no I/O); scan_trigger.c runs it
 *	  in nids_scan_trigger (state in nids.scan_state) and nids_scans, and
 *	  turns detections into incidents of kind 'scan'.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NIDS_SCAN_H
#define NIDS_SCAN_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* the detector's parameters (options of nids_scans and the trigger) */
typedef struct ScanParams
{
	double		theta0;			/* P(first contact succeeds | benign) */
	double		theta1;			/* P(first contact succeeds | scanner) */
	double		horizontal_ratio;	/* likelihood ratio that decides: hosts */
	double		vertical_ratio;	/* ... ports of one host */
	int64		idle;			/* microseconds of flow time that forget a source */
	int64		restart;		/* ... after a benign decision, before a new walk */
	int64		sweep_window;	/* microseconds of flow time a sweep is counted in */
	int32		sweep_hosts;	/* unanswered new hosts that make a sweep */
	int32		sweep_ports;	/* unanswered new ports of one host that make one */
	double		sweep_answered; /* the largest share answered in a sweep */
	bool		horizontal;
	bool		vertical;
	bool		sweep;			/* UDP and ICMP sweeps */
	char	   *failed_column;	/* options.failed, or NULL */
} ScanParams;

/* what an attempt is evidence of */
typedef enum ScanFamily
{
	SCAN_TCP,					/* a TCP connection attempt: the walks */
	SCAN_WEAK					/* a UDP flow or an ICMP echo: sweeps only */
} ScanFamily;

/* one connection attempt */
typedef struct ScanAttempt
{
	TimestampTz ts;
	uint32		dst_hash;		/* the destination address, hashed */
	int32		dport;			/* -1: none */
	bool		failed;
	uint8		family;			/* ScanFamily */
	int64		row;			/* order among equal times */
} ScanAttempt;

#define SCAN_HOST_BITS		32768	/* contacted hosts (TCP): 4 kB, hashed */
#define SCAN_WEAK_HOST_BITS	8192	/* ... by UDP or ICMP: 1 kB */
#define SCAN_PORT_BITS		2048	/* contacted ports of one host: 256 B */
#define SCAN_VERTICAL_HOSTS	8		/* hosts whose ports are followed */

/*
 * A sequential test (a walk): its likelihood ratio, and when it rests
 * after a benign decision.  contacts/failed are every first contact it has
 * seen, resting or not: a walk that starts again measures against them.
 */
typedef struct ScanWalk
{
	double		ratio;
	double		theta0;			/* this walk's theta0; 0: the parameter's */
	TimestampTz rest_since;
	bool		resting;
	int32		walks;			/* walks started: 1 + restarts */
	int32		contacts;
	int32		failed;
} ScanWalk;

/* unanswered first contacts within one sweep window */
typedef struct ScanWindow
{
	TimestampTz start;
	int32		unanswered;
	int32		answered;
} ScanWindow;

typedef struct ScanHost
{
	uint32		dst_hash;		/* 0: free */
	int32		first_contacts; /* 0: the slot is free */
	TimestampTz last;
	ScanWalk	walk;			/* TCP first contacts to its ports */
	ScanWindow	tcp;			/* the restart's sweep rule */
	ScanWindow	weak;			/* UDP ports */
	uint8		ports[SCAN_PORT_BITS / 8];
} ScanHost;

/* a source's state: fixed size, whatever it contacts */
typedef struct ScanSource
{
	TimestampTz first_seen;
	TimestampTz last_seen;
	int64		attempts;		/* since first_seen, every family */
	int64		failed;
	int64		family_attempts[2];
	int32		hosts;			/* first contacts to hosts, every family */
	int32		ports;			/* first contacts to ports (all hosts) */
	ScanWalk	walk;			/* TCP first contacts to hosts */
	ScanWindow	tcp;			/* the restart's sweep rule */
	ScanWindow	weak;			/* UDP/ICMP first contacts to hosts */
	bool		detected[2];	/* 0: AddressScan, 1: PortScan */
	uint8		host_bits[SCAN_HOST_BITS / 8];
	uint8		weak_host_bits[SCAN_WEAK_HOST_BITS / 8];
	ScanHost	vertical[SCAN_VERTICAL_HOSTS];
} ScanSource;

typedef enum ScanKind
{
	SCAN_ADDRESS,				/* many hosts */
	SCAN_PORT					/* many ports of one host */
} ScanKind;

extern const char *const scan_kind_names[2];

/* what one attempt decided */
typedef struct ScanDecision
{
	bool		detected;		/* a scan decided at this attempt */
	ScanKind	kind;
	ScanFamily	family;			/* the walk (TCP) or a sweep (UDP, ICMP) */
	double		score;			/* the likelihood ratio, or the unanswered count */
	int64		attempts;		/* the source's attempts of that family */
	int32		first_contacts;
	int32		first_failed;
	int32		walks;			/* the walk that decided: 1, or a restart */
	int64		window;			/* a sweep's window, microseconds */
} ScanDecision;

extern void scan_params_default(ScanParams *p);
extern void scan_source_init(ScanSource *s, TimestampTz ts);
extern bool scan_source_idle(const ScanSource *s, TimestampTz ts, const ScanParams *p);
extern void scan_observe(ScanSource *s, const ScanAttempt *a, const ScanParams *p,
						 ScanDecision *d);

#endif							/* NIDS_SCAN_H */
