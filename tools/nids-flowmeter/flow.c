/*
 * flow.c
 *	  One flow's features, updated packet by packet in constant space, as
 *	  the reference meter computes them (its BasicFlow), quirks included:
 *	  - the direction of a packet is decided by its source address alone
 *	    (not its port): forward when it is the flow's source address;
 *	  - the first packet's FIN and RST are not counted per direction, nor
 *	    its payload as forward data;
 *	  - the backward initial window is overwritten by every backward packet;
 *	  - subflows: the reference compares ts - last_ts / 1e6 with 1 (an
 *	    operator precedence slip), so with real clocks every packet starts a
 *	    subflow and calls the active/idle update;
 *	  - bulks: each direction's bulk restarts when the other direction's
 *	    last bulk packet came after its start.
 *	  Statistics are commons-math's SummaryStatistics: the mean by
 *	  FirstMoment's update, the variance by SecondMoment's, n-1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter.h"

void
stats_add(RunningStats *s, double x)
{
	double		n0 = (double) s->n;
	double		dev,
				ndev;

	if (s->n == 0)
	{
		s->min = x;
		s->max = x;
		s->m1 = 0.0;
		s->m2 = 0.0;
	}
	else
	{
		if (x < s->min || isnan(s->min))
			s->min = x;
		if (x > s->max || isnan(s->max))
			s->max = x;
	}
	s->n++;
	s->sum += x;
	dev = x - s->m1;
	ndev = dev / (double) s->n;
	s->m1 += ndev;
	s->m2 += n0 * dev * ndev;
}

double
stats_mean(const RunningStats *s)
{
	return s->n == 0 ? NAN : s->m1;
}

double
stats_variance(const RunningStats *s)
{
	if (s->n == 0)
		return NAN;
	if (s->n == 1)
		return 0.0;
	return s->m2 / ((double) s->n - 1.0);
}

double
stats_std(const RunningStats *s)
{
	if (s->n == 0)
		return NAN;
	if (s->n == 1)
		return 0.0;
	return sqrt(stats_variance(s));
}

const RunningStats stats_empty = {0, 0.0, NAN, NAN, 0.0, 0.0};

static int
addr_len(uint8_t family)
{
	return family == 6 ? 16 : 4;
}

bool
flow_is_forward(const Flow *f, const Packet *p)
{
	return memcmp(flow_src(f), p->src, addr_len(f->key.family)) == 0;
}

static FlowTimes *
times_of(Flow *f)
{
	if (f->times == NULL)
	{
		f->times = calloc(1, sizeof(FlowTimes));
		if (f->times == NULL)
		{
			fprintf(stderr, "nids-flowmeter: out of memory\n");
			exit(1);
		}
	}
	return f->times;
}

void
flow_free_times(Flow *f)
{
	free(f->times);
	f->times = NULL;
}

void
flow_update_active_idle(Flow *f, int64_t ts)
{
	if (ts - f->end_active > METER_ACTIVITY_TIMEOUT_US)
	{
		if (f->end_active - f->start_active > 0)
			stats_add(&times_of(f)->active, (double) (f->end_active - f->start_active));
		stats_add(&times_of(f)->idle, (double) (ts - f->end_active));
		f->start_active = ts;
		f->end_active = ts;
	}
	else
		f->end_active = ts;
}

static void
update_subflows(Flow *f, const Packet *p)
{
	if (f->sf_last_ts == -1)
		f->sf_last_ts = p->ts;
	/* the reference's expression, precedence and all */
	if ((double) p->ts - (double) f->sf_last_ts / 1000000.0 > 1.0)
	{
		f->sf_count++;
		flow_update_active_idle(f, p->ts);
	}
	f->sf_last_ts = p->ts;
}

/* one direction's bulk (d 0 forward, 1 backward); other_last: the other direction's last bulk packet */
static void
update_bulk(Flow *f, int d, int64_t other_last, const Packet *p)
{
	int64_t		size = p->payload;

	if (other_last > f->bulk_start_helper[d])
		f->bulk_start_helper[d] = 0;
	if (size <= 0)
		return;
	if (f->bulk_start_helper[d] == 0)
	{
		f->bulk_start_helper[d] = p->ts;
		f->bulk_packet_helper[d] = 1;
		f->bulk_size_helper[d] = size;
		f->bulk_last_ts[d] = p->ts;
	}
	else if ((double) (p->ts - f->bulk_last_ts[d]) / 1000000.0 > 1.0)
	{
		f->bulk_start_helper[d] = p->ts;
		f->bulk_last_ts[d] = p->ts;
		f->bulk_packet_helper[d] = 1;
		f->bulk_size_helper[d] = size;
	}
	else
	{
		f->bulk_packet_helper[d]++;
		f->bulk_size_helper[d] += size;
		if (f->bulk_packet_helper[d] == 4)
		{
			f->bulk_states[d]++;
			f->bulk_packets[d] += f->bulk_packet_helper[d];
			f->bulk_size[d] += f->bulk_size_helper[d];
			f->bulk_duration[d] += p->ts - f->bulk_start_helper[d];
		}
		else if (f->bulk_packet_helper[d] > 4)
		{
			f->bulk_packets[d]++;
			f->bulk_size[d] += size;
			f->bulk_duration[d] += p->ts - f->bulk_last_ts[d];
		}
		f->bulk_last_ts[d] = p->ts;
	}
}

static void
update_bulks(Flow *f, const Packet *p)
{
	if (flow_is_forward(f, p))
		update_bulk(f, 0, f->bulk_last_ts[1], p);
	else
		update_bulk(f, 1, f->bulk_last_ts[0], p);
}

static void
count_flags(Flow *f, uint8_t flags)
{
	static const uint8_t order[8] = {TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK, TH_URG, TH_CWR, TH_ECE};

	for (int i = 0; i < 8; i++)
		if (flags & order[i])
			f->flag_counts[i]++;
}

/*
 * A new flow of first packet p, kept under key; its forward direction is
 * the key's a side, or its b side when swapped (a flow that continues one
 * whose first packet went the other way)
 */
void
flow_init(Flow *f, const FlowKey *key, bool swapped, const Packet *p)
{
	memset(f, 0, sizeof(*f));
	f->key = *key;
	f->swapped = swapped;
	f->tcp_state = TCP_OPEN;
	f->sf_last_ts = -1;

	update_bulks(f, p);
	count_flags(f, p->flags);
	f->end_active = p->ts;
	f->start = p->ts;
	f->last_seen = p->ts;
	f->start_active = p->ts;
	update_subflows(f, p);
	stats_add(&f->all_len, (double) p->payload);
	if (flow_is_forward(f, p))
	{
		f->min_seg_fwd = p->header;
		f->init_win_fwd = p->window;
		stats_add(&f->fwd_len, (double) p->payload);
		f->fwd_header = p->header;
		f->fwd_last_seen = p->ts;
		f->fwd_bytes += p->payload;
		f->fwd_packets++;
		f->fwd_psh += (p->flags & TH_PSH) != 0;
		f->fwd_urg += (p->flags & TH_URG) != 0;
	}
	else
	{
		f->init_win_bwd = p->window;
		stats_add(&f->bwd_len, (double) p->payload);
		f->bwd_header = p->header;
		f->bwd_last_seen = p->ts;
		f->bwd_bytes += p->payload;
		f->bwd_packets++;
		f->bwd_psh += (p->flags & TH_PSH) != 0;
		f->bwd_urg += (p->flags & TH_URG) != 0;
	}
	f->icmp_code = p->icmp_code;
	f->icmp_type = p->icmp_type;
}

/* a later packet of the flow */
void
flow_add(Flow *f, const Packet *p)
{
	update_bulks(f, p);
	update_subflows(f, p);
	count_flags(f, p->flags);
	stats_add(&f->all_len, (double) p->payload);
	if (flow_is_forward(f, p))
	{
		if (p->payload >= 1)
			f->act_data_fwd++;
		stats_add(&f->fwd_len, (double) p->payload);
		f->fwd_header += p->header;
		f->fwd_packets++;
		f->fwd_bytes += p->payload;
		if (f->fwd_packets > 1)
			stats_add(&times_of(f)->fwd_iat, (double) (p->ts - f->fwd_last_seen));
		f->fwd_last_seen = p->ts;
		if (p->header < f->min_seg_fwd)
			f->min_seg_fwd = p->header;
		f->fwd_psh += (p->flags & TH_PSH) != 0;
		f->fwd_urg += (p->flags & TH_URG) != 0;
		f->fwd_fin += (p->flags & TH_FIN) != 0;
		f->fwd_rst += (p->flags & TH_RST) != 0;
	}
	else
	{
		stats_add(&f->bwd_len, (double) p->payload);
		f->init_win_bwd = p->window;
		f->bwd_header += p->header;
		f->bwd_packets++;
		f->bwd_bytes += p->payload;
		if (f->bwd_packets > 1)
			stats_add(&times_of(f)->bwd_iat, (double) (p->ts - f->bwd_last_seen));
		f->bwd_last_seen = p->ts;
		f->bwd_psh += (p->flags & TH_PSH) != 0;
		f->bwd_urg += (p->flags & TH_URG) != 0;
		f->bwd_fin += (p->flags & TH_FIN) != 0;
		f->bwd_rst += (p->flags & TH_RST) != 0;
	}
	stats_add(&times_of(f)->flow_iat, (double) (p->ts - f->last_seen));
	f->last_seen = p->ts;
}
