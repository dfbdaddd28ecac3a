/*
 * flow_table.c
 *	  The open flows: a chained hash table keyed by the 5-tuple in the
 *	  direction of each flow's first packet (a packet is looked up in its
 *	  own direction, then the other), and a list by last activity whose
 *	  head is the flow idle the longest, for --max-flows.
 *
 * When flows end, as the reference's flow generator decides:
 * - 120 s after the flow's first packet: the packet that comes later
 *   starts the next flow (a TCP flow's continuation keeps the old
 *   direction, and carries the connection's total time);
 * - a TCP flow that saw FIN both ways then an ACK, or a RST, is ready to
 *   end: the next SYN on its tuple ends it and starts a new one; packets
 *   before that still count in it;
 * - an ICMP packet whose type and code both differ starts a new flow;
 * - at the end of the input, every open flow.
 */
#include <stdlib.h>
#include <string.h>

#include "meter.h"

struct FlowTable
{
	Flow	  **buckets;
	uint64_t	nbuckets;		/* a power of two */
	int64_t		nflows;
	int64_t		max_flows;
	Flow	   *lru_head;
	Flow	   *lru_tail;
	Flow	   *free_list;
	Sink	   *sink;
	MeterCounts *counts;
};

static int
addr_len(uint8_t family)
{
	return family == 6 ? 16 : 4;
}

static inline uint64_t
mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

/* the key's words, mixed (the key is zero-filled past its address) */
static uint64_t
key_hash(const FlowKey *k)
{
	uint64_t	w[4];
	uint64_t	h = (uint64_t) k->family | (uint64_t) k->proto << 8 |
		(uint64_t) k->port_a << 16 | (uint64_t) k->port_b << 32;

	memcpy(w, k->addr_a, 16);
	memcpy(w + 2, k->addr_b, 16);
	h = mix64(h ^ w[0] * 0x9e3779b97f4a7c15ULL);
	h = mix64(h ^ w[1]);
	h = mix64(h ^ w[2] * 0xc2b2ae3d27d4eb4fULL);
	h = mix64(h ^ w[3]);
	return h;
}

static void
key_of(const Packet *p, bool forward, FlowKey *k)
{
	int			n = addr_len(p->family);

	memset(k, 0, sizeof(*k));
	k->family = p->family;
	k->proto = p->proto;
	if (forward)
	{
		memcpy(k->addr_a, p->src, n);
		memcpy(k->addr_b, p->dst, n);
		k->port_a = p->sport;
		k->port_b = p->dport;
	}
	else
	{
		memcpy(k->addr_a, p->dst, n);
		memcpy(k->addr_b, p->src, n);
		k->port_a = p->dport;
		k->port_b = p->sport;
	}
}

FlowTable *
flow_table_create(int64_t max_flows, Sink *sink, MeterCounts *counts)
{
	FlowTable  *t = calloc(1, sizeof(FlowTable));

	if (t == NULL)
		return NULL;
	t->nbuckets = 4096;
	t->buckets = calloc(t->nbuckets, sizeof(Flow *));
	if (t->buckets == NULL)
	{
		free(t);
		return NULL;
	}
	t->max_flows = max_flows;
	t->sink = sink;
	t->counts = counts;
	return t;
}

static void
lru_unlink(FlowTable *t, Flow *f)
{
	if (f->lru_prev)
		f->lru_prev->lru_next = f->lru_next;
	else
		t->lru_head = f->lru_next;
	if (f->lru_next)
		f->lru_next->lru_prev = f->lru_prev;
	else
		t->lru_tail = f->lru_prev;
	f->lru_prev = f->lru_next = NULL;
}

static void
lru_append(FlowTable *t, Flow *f)
{
	f->lru_prev = t->lru_tail;
	f->lru_next = NULL;
	if (t->lru_tail)
		t->lru_tail->lru_next = f;
	else
		t->lru_head = f;
	t->lru_tail = f;
}

static void
grow(FlowTable *t)
{
	uint64_t	n = t->nbuckets * 2;
	Flow	  **b = calloc(n, sizeof(Flow *));

	if (b == NULL)
		return;					/* longer chains, still correct */
	for (uint64_t i = 0; i < t->nbuckets; i++)
	{
		Flow	   *f = t->buckets[i];

		while (f)
		{
			Flow	   *next = f->hash_next;
			uint64_t	h = key_hash(&f->key) & (n - 1);

			f->hash_next = b[h];
			b[h] = f;
			f = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static Flow *
lookup(FlowTable *t, const FlowKey *k, Flow ***link)
{
	Flow	  **l = &t->buckets[key_hash(k) & (t->nbuckets - 1)];

	for (; *l; l = &(*l)->hash_next)
		if (memcmp(&(*l)->key, k, sizeof(FlowKey)) == 0)
		{
			if (link)
				*link = l;
			return *l;
		}
	return NULL;
}

static Flow *
flow_alloc(FlowTable *t)
{
	Flow	   *f = t->free_list;

	if (f)
	{
		t->free_list = f->hash_next;
		return f;
	}
	return malloc(sizeof(Flow));
}

/* write f and take it out of the table; at_end: the input ended, or it was evicted */
static void
finish(FlowTable *t, Flow *f, bool at_end)
{
	Flow	  **link = NULL;

	if (at_end && f->key.proto == PROTO_TCP)
		f->cumulative_tcp += f->last_seen - f->start;
	if (t->sink->write(t->sink, f))
		t->counts->flows++;
	else
		t->counts->write_failed++;
	if (lookup(t, &f->key, &link) == f)
		*link = f->hash_next;
	lru_unlink(t, f);
	t->nflows--;
	flow_free_times(f);
	f->hash_next = t->free_list;
	t->free_list = f;
}

static Flow *
insert(FlowTable *t, const FlowKey *k, bool swapped, const Packet *p)
{
	Flow	   *f;
	uint64_t	h;

	/* --max-flows: the flow idle the longest ends early */
	while (t->max_flows > 0 && t->nflows >= t->max_flows && t->lru_head)
	{
		t->counts->evicted++;
		finish(t, t->lru_head, true);
	}
	f = flow_alloc(t);
	if (f == NULL)
	{
		t->counts->write_failed++;
		return NULL;
	}
	flow_init(f, k, swapped, p);
	if ((uint64_t) t->nflows >= t->nbuckets)
		grow(t);
	h = key_hash(k) & (t->nbuckets - 1);
	f->hash_next = t->buckets[h];
	t->buckets[h] = f;
	lru_append(t, f);
	t->nflows++;
	return f;
}

void
flow_table_packet(FlowTable *t, const Packet *p)
{
	FlowKey		k;
	Flow	   *f;
	int64_t		ts = p->ts;
	bool		syn = (p->flags & TH_SYN) != 0;
	bool		found_back = false;

	key_of(p, true, &k);
	f = lookup(t, &k, NULL);
	if (f == NULL)
	{
		FlowKey		back;

		key_of(p, false, &back);
		f = lookup(t, &back, NULL);
		if (f == NULL)
		{
			/* a new flow: its first packet is forward */
			insert(t, &k, false, p);
			return;
		}
		k = back;
		found_back = true;
	}

	if (ts - f->start > METER_FLOW_TIMEOUT_US || (f->tcp_state == TCP_READY && syn))
	{
		bool		fresh = (f->tcp_state == TCP_READY && syn && !(p->flags & TH_ACK)) ||
			p->proto != PROTO_TCP;
		bool		swapped = f->swapped;
		int64_t		cumulative,
					last_seen = f->last_seen;
		Flow	   *next;

		if (f->key.proto == PROTO_TCP)
			f->cumulative_tcp += f->last_seen - f->start;
		cumulative = f->cumulative_tcp;
		finish(t, f, false);
		/* fresh: p's own direction (the key's b side when p came backward) */
		if (fresh)
			insert(t, &k, found_back, p);
		else if ((next = insert(t, &k, swapped, p)) != NULL)
			next->cumulative_tcp = cumulative + (ts - last_seen);
		return;
	}
	if (p->proto == PROTO_ICMP &&
		f->icmp_code != p->icmp_code && f->icmp_type != p->icmp_type)
	{
		finish(t, f, false);
		insert(t, &k, found_back, p);
		return;
	}
	flow_update_active_idle(f, ts);
	flow_add(f, p);
	if (p->flags & TH_FIN)
	{
		if (f->tcp_state == TCP_OPEN)
			f->tcp_state = TCP_FIRST_FIN;
		else if (f->tcp_state == TCP_FIRST_FIN && f->fwd_fin > 0 && f->bwd_fin > 0)
			f->tcp_state = TCP_SECOND_FIN;
	}
	else if (p->flags & TH_RST)
		f->tcp_state = TCP_READY;
	else if ((p->flags & TH_ACK) && f->tcp_state == TCP_SECOND_FIN)
		f->tcp_state = TCP_READY;
	lru_unlink(t, f);
	lru_append(t, f);
}

/*
 * A live capture: flows idle for longer than the flow timeout at capture
 * time now are written (the reference writes them when their tuple's next
 * packet comes, at the latest; a sensor cannot wait for that).  A later
 * packet of the tuple then starts a flow of its own direction, where the
 * reference would continue the old one's.
 */
void
flow_table_expire(FlowTable *t, int64_t now)
{
	while (t->lru_head && now - t->lru_head->last_seen > METER_FLOW_TIMEOUT_US)
		finish(t, t->lru_head, true);
}

/* the end of the input: every open flow, in order of last activity */
void
flow_table_flush(FlowTable *t)
{
	while (t->lru_head)
		finish(t, t->lru_head, true);
}

int64_t
flow_table_open_flows(const FlowTable *t)
{
	return t->nflows;
}

void
flow_table_destroy(FlowTable *t)
{
	Flow	   *f;

	if (t == NULL)
		return;
	while (t->lru_head)
	{
		f = t->lru_head;
		lru_unlink(t, f);
		flow_free_times(f);
		free(f);
	}
	while ((f = t->free_list) != NULL)
	{
		t->free_list = f->hash_next;
		free(f);
	}
	free(t->buckets);
	free(t);
}
