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
	bool		horizontal;
	bool		vertical;
	char	   *failed_column;	/* options.failed, or NULL */
} ScanParams;

/* one connection attempt */
typedef struct ScanAttempt
{
	TimestampTz ts;
	uint32		dst_hash;		/* the destination address, hashed */
	int32		dport;			/* -1: none */
	bool		failed;
	int64		row;			/* order among equal times */
} ScanAttempt;

#define SCAN_HOST_BITS		32768	/* contacted hosts: 4 kB, hashed */
#define SCAN_PORT_BITS		2048	/* contacted ports of one host: 256 B */
#define SCAN_VERTICAL_HOSTS	8		/* hosts whose ports are followed */

typedef struct ScanHost
{
	uint32		dst_hash;		/* 0: free */
	double		ratio;			/* likelihood ratio, ports of this host */
	int32		first_contacts;
	int32		failed;
	TimestampTz last;
	uint8		ports[SCAN_PORT_BITS / 8];
} ScanHost;

/* a source's state: fixed size, whatever it contacts */
typedef struct ScanSource
{
	TimestampTz first_seen;
	TimestampTz last_seen;
	int64		attempts;		/* since first_seen */
	int64		failed;
	int32		hosts;			/* first contacts to hosts */
	int32		hosts_failed;
	int32		ports;			/* first contacts to ports (all hosts) */
	double		ratio;			/* likelihood ratio, hosts */
	bool		detected[2];	/* 0: AddressScan, 1: PortScan */
	uint8		host_bits[SCAN_HOST_BITS / 8];
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
	double		score;			/* the likelihood ratio that decided */
	int32		first_contacts;
	int32		first_failed;
} ScanDecision;

extern void scan_params_default(ScanParams *p);
extern void scan_source_init(ScanSource *s, TimestampTz ts);
extern bool scan_source_idle(const ScanSource *s, TimestampTz ts, const ScanParams *p);
extern void scan_observe(ScanSource *s, const ScanAttempt *a, const ScanParams *p,
						 ScanDecision *d);

#endif							/* NIDS_SCAN_H */
