/*
 * meter.h
 *	  nids-flowmeter: packets to the flows and features of the reference
 *	  meter (the corrected CICFlowMeter at commit 13a0615).  One concern a
 *	  file, in the order a packet takes:
 *		capture.c	 pcap/pcapng files in order, or a live interface (libpcap)
 *		decode.c	 one layer a function, every read bounded by the captured
 *					 length: link, VLAN, IPv4/IPv6, TCP/UDP/ICMP -> Packet
 *		flow.c		 one flow's running features (no per-packet lists)
 *		flow_table.c the open flows: lookup in both directions, the
 *					 reference's timeouts and TCP teardown, eviction
 *		format.c	 a finished flow as the reference's CSV row
 *		sink_csv.c, sink_copy.c	 where rows go: stdout, or COPY into a table
 *		main.c		 options, the loop, progress and counts
 */
#ifndef NIDS_METER_H
#define NIDS_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the reference's defaults: a flow ends 120 s after its first packet; 5 s idle splits active/idle */
#define METER_FLOW_TIMEOUT_US		120000000LL
#define METER_ACTIVITY_TIMEOUT_US	5000000LL

/* protocols as the reference numbers them: anything else is 0 */
#define PROTO_DEFAULT	0
#define PROTO_ICMP		1
#define PROTO_TCP		6
#define PROTO_UDP		17

/* TCP flags */
#define TH_FIN	0x01
#define TH_SYN	0x02
#define TH_RST	0x04
#define TH_PSH	0x08
#define TH_ACK	0x10
#define TH_URG	0x20
#define TH_ECE	0x40
#define TH_CWR	0x80

/* why a packet was not a flow's */
typedef enum SkipReason
{
	SKIP_TRUNCATED,				/* shorter than a header it claims */
	SKIP_MALFORMED,				/* a header that cannot be (bad version, length) */
	SKIP_NOT_IP,				/* ARP, LLDP, ... */
	SKIP_LINK_TYPE,				/* a link type nids-flowmeter does not read */
	SKIP_BAD_RECORD,			/* a capture record that cannot be (capture.c) */
	SKIP_NUM_REASONS
} SkipReason;

extern const char *const skip_reason_names[SKIP_NUM_REASONS];

/* one packet, as a flow sees it */
typedef struct Packet
{
	int64_t		ts;				/* microseconds since 1970 */
	uint8_t		family;			/* 4 or 6 */
	uint8_t		proto;			/* PROTO_* */
	uint8_t		flags;			/* TCP flags, 0 otherwise */
	uint8_t		src[16];
	uint8_t		dst[16];
	uint16_t	sport;
	uint16_t	dport;
	int32_t		window;			/* TCP window field, 0 otherwise */
	int64_t		payload;		/* transport payload bytes */
	int64_t		header;			/* transport header bytes */
	int32_t		icmp_code;		/* -1 unless ICMP */
	int32_t		icmp_type;
	bool		payload_from_capture;	/* payload: what was captured, not IP's length */
	bool		quirk;			/* the reference's second reading of an ARP frame */
} Packet;

/* decode.c: one captured frame into p; false and *why when it is no flow's */
extern bool decode_packet(int linktype, const uint8_t *data, uint32_t caplen, uint32_t wirelen,
						  int64_t ts, Packet *p, SkipReason *why);
extern bool decode_reference_quirk(int linktype, const uint8_t *data, uint32_t caplen, int64_t ts,
								   Packet *q);

/* commons-math's SummaryStatistics, as the reference keeps them */
typedef struct RunningStats
{
	int64_t		n;
	double		sum;
	double		min;
	double		max;
	double		m1;				/* mean, updated as FirstMoment does */
	double		m2;				/* sum of squared deviations (SecondMoment) */
} RunningStats;

extern void stats_add(RunningStats *s, double x);
extern double stats_mean(const RunningStats *s);
extern double stats_variance(const RunningStats *s);
extern double stats_std(const RunningStats *s);

typedef enum TcpState
{
	TCP_OPEN,
	TCP_FIRST_FIN,
	TCP_SECOND_FIN,
	TCP_READY
} TcpState;

/* the flow key: addresses and ports in the direction of the flow's first packet */
typedef struct FlowKey
{
	uint8_t		family;
	uint8_t		proto;
	uint16_t	port_a;
	uint16_t	port_b;
	uint8_t		addr_a[16];
	uint8_t		addr_b[16];
} FlowKey;

/*
 * The statistics a flow has only from its second packet on (inter-arrival
 * times, active and idle periods): allocated then, so that the many flows
 * of one packet (scans, floods) stay small
 */
typedef struct FlowTimes
{
	RunningStats flow_iat;
	RunningStats fwd_iat;
	RunningStats bwd_iat;
	RunningStats active;
	RunningStats idle;
} FlowTimes;

/* one open flow's features: constant size whatever its packets */
typedef struct Flow
{
	FlowKey		key;			/* as the table holds it (the Flow ID) */
	bool		swapped;		/* forward is the key's b side (a continued flow) */
	TcpState	tcp_state;
	int32_t		icmp_code;
	int32_t		icmp_type;

	int64_t		start;
	int64_t		last_seen;
	int64_t		fwd_last_seen;
	int64_t		bwd_last_seen;
	int64_t		fwd_packets;
	int64_t		bwd_packets;
	int64_t		fwd_bytes;
	int64_t		bwd_bytes;
	int64_t		fwd_header;
	int64_t		bwd_header;
	RunningStats fwd_len;
	RunningStats bwd_len;
	RunningStats all_len;
	FlowTimes  *times;			/* NULL until the second packet needs it */
	int32_t		fwd_psh,
				bwd_psh,
				fwd_urg,
				bwd_urg,
				fwd_rst,
				bwd_rst,
				fwd_fin,
				bwd_fin;
	int32_t		flag_counts[8];	/* FIN SYN RST PSH ACK URG CWR ECE */
	int64_t		act_data_fwd;
	int64_t		min_seg_fwd;
	int32_t		init_win_fwd;
	int32_t		init_win_bwd;
	int64_t		start_active;
	int64_t		end_active;
	/* subflows */
	int64_t		sf_last_ts;
	int64_t		sf_count;
	/* bulks, per direction: [0] forward, [1] backward */
	int64_t		bulk_duration[2];
	int64_t		bulk_packets[2];
	int64_t		bulk_size[2];
	int64_t		bulk_states[2];
	int64_t		bulk_packet_helper[2];
	int64_t		bulk_start_helper[2];
	int64_t		bulk_size_helper[2];
	int64_t		bulk_last_ts[2];
	int64_t		cumulative_tcp;

	/* the table's links */
	struct Flow *hash_next;
	struct Flow *lru_prev;		/* by last activity: the head is the idlest */
	struct Flow *lru_next;
} Flow;

/* the flow's forward direction: source and destination address and port */
static inline const uint8_t *
flow_src(const Flow *f)
{
	return f->swapped ? f->key.addr_b : f->key.addr_a;
}

static inline const uint8_t *
flow_dst(const Flow *f)
{
	return f->swapped ? f->key.addr_a : f->key.addr_b;
}

static inline uint16_t
flow_sport(const Flow *f)
{
	return f->swapped ? f->key.port_b : f->key.port_a;
}

static inline uint16_t
flow_dport(const Flow *f)
{
	return f->swapped ? f->key.port_a : f->key.port_b;
}

extern const RunningStats stats_empty;

extern void flow_init(Flow *f, const FlowKey *key, bool swapped, const Packet *p);
extern void flow_free_times(Flow *f);
extern void flow_add(Flow *f, const Packet *p);
extern void flow_update_active_idle(Flow *f, int64_t ts);
extern bool flow_is_forward(const Flow *f, const Packet *p);

/* format.c: the reference's CSV */
extern const char *const flow_csv_header;
extern size_t format_flow(const Flow *f, char *buf, size_t size);

/* where finished flows go: open, write, flush, close (and a tick, for sinks that batch) */
typedef struct Sink
{
	bool		(*write) (struct Sink *s, const Flow *f);
	bool		(*tick) (struct Sink *s);	/* NULL: nothing waits */
	bool		(*flush) (struct Sink *s);
	void		(*close) (struct Sink *s);
	int64_t		dropped;		/* flows a full buffer could not keep */
	void	   *state;
} Sink;

static inline bool
sink_tick(Sink *s)
{
	return s->tick == NULL || s->tick(s);
}

static inline int64_t
sink_dropped(const Sink *s)
{
	return s->dropped;
}

extern Sink *sink_csv_open(void);

/* flow_table.c */
typedef struct FlowTable FlowTable;

typedef struct MeterCounts
{
	int64_t		packets;		/* frames read */
	int64_t		flow_packets;	/* frames that were some flow's */
	int64_t		quirk_packets;	/* frames read again as the reference does */
	int64_t		skipped[SKIP_NUM_REASONS];
	int64_t		flows;			/* flows written */
	int64_t		evicted;		/* flows ended early by --max-flows */
	int64_t		write_failed;	/* flows a sink could not take */
} MeterCounts;

extern FlowTable *flow_table_create(int64_t max_flows, Sink *sink, MeterCounts *counts);
extern void flow_table_packet(FlowTable *t, const Packet *p);
extern void flow_table_flush(FlowTable *t);
extern void flow_table_expire(FlowTable *t, int64_t now);
extern int64_t flow_table_open_flows(const FlowTable *t);
extern void flow_table_destroy(FlowTable *t);

#endif							/* NIDS_METER_H */
