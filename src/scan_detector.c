/*-------------------------------------------------------------------------
 *
 * scan_detector.c
 *	  The per-source scan detector: a source's connection attempts, in
 *	  time order, against a fixed-size state.
 *
 * TCP connection attempts are the evidence of two sequential tests, each
 * the Threshold Random Walk of Jung, Paxson, Berger and Balakrishnan
 * (2004) over first contacts only:
 *	- hosts (AddressScan): each TCP attempt to a host the source has not
 *	  contacted before multiplies the likelihood ratio by
 *	  (1 - theta1) / (1 - theta0) when it failed and theta1 / theta0 when
 *	  it succeeded (theta0 0.8: a benign source's first contacts mostly
 *	  succeed; theta1 0.2: a scanner's mostly fail).  At horizontal_ratio
 *	  (99: detection 0.99, false alarms 0.01) the source is a scanner: the
 *	  fourth failure in a row; at 1 / horizontal_ratio it is benign and the
 *	  walk ends, as TRW's does.
 *	- ports of one host (PortScan): the same walk over first contacts to
 *	  ports of one destination, for the source's last SCAN_VERTICAL_HOSTS
 *	  destinations, deciding at vertical_ratio (9,900: the seventh failed
 *	  port in a row), a stricter bar since a client trying a few closed
 *	  ports of a server is common.
 * A walk that ended benign rests.  It starts again when `restart` of flow
 * time has passed since that decision, or at once when the source's new
 * first contacts look like a sweep (below); a restarted walk measures the
 * source against its own record (theta0 its share of first contacts that
 * succeeded, between the midpoint of theta0 and theta1 and theta0), so that
 * a busy host's occasional failures never add up over walk after walk,
 * while a host that starts scanning later is still caught.
 *
 * UDP flows and ICMP echo requests are weak evidence: many UDP services
 * never answer, and a dead resolver or a discovery protocol leaves a trail
 * of unanswered flows.  They never enter the walks.  They make a scanner
 * only as a sweep: sweep_hosts new hosts (AddressScan) or sweep_ports new
 * ports of one host (PortScan) left unanswered within sweep_window of
 * flow time, with at most sweep_answered of the window's first contacts
 * answered.  The window is counted from its first first contact and
 * starts anew once it has passed.
 *
 * Repeated attempts to a contacted host or port add nothing, so retries
 * and the many flows of one conversation never make a scanner.  The sets
 * of contacted hosts and ports are bitmaps of hashes (6 kB, and 256 B a
 * followed host): fixed size whatever a source contacts; a collision makes
 * a new host look contacted, which can only delay a detection.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "nids.h"
#include "scan.h"

const char *const scan_kind_names[2] = {"AddressScan", "PortScan"};

void
scan_params_default(ScanParams *p)
{
	memset(p, 0, sizeof(*p));
	p->theta0 = 0.8;
	p->theta1 = 0.2;
	p->horizontal_ratio = 99.0;
	p->vertical_ratio = 9900.0;
	p->idle = (int64) 3600 * USECS_PER_SEC;
	p->restart = (int64) 3600 * USECS_PER_SEC;
	p->sweep_window = (int64) 300 * USECS_PER_SEC;
	p->sweep_hosts = 64;
	p->sweep_ports = 64;
	p->sweep_answered = 0.1;
	p->horizontal = true;
	p->vertical = true;
	p->sweep = true;
}

static void
walk_init(ScanWalk *w)
{
	memset(w, 0, sizeof(*w));
	w->ratio = 1.0;
	w->walks = 1;
}

void
scan_source_init(ScanSource *s, TimestampTz ts)
{
	memset(s, 0, sizeof(*s));
	s->first_seen = ts;
	s->last_seen = ts;
	walk_init(&s->walk);
}

/* a source idle longer than p->idle (flow time) is forgotten */
bool
scan_source_idle(const ScanSource *s, TimestampTz ts, const ScanParams *p)
{
	return nids_time_gap_exceeds(ts, s->last_seen, p->idle);
}

static inline bool
test_and_set(uint8 *bits, uint32 bit)
{
	bool		was = (bits[bit >> 3] >> (bit & 7)) & 1;

	bits[bit >> 3] |= (uint8) (1 << (bit & 7));
	return was;
}

/*
 * A first contact counted in window w; true when the window now holds a
 * sweep: need unanswered, and at most sweep_answered of it answered.
 */
static bool
window_add(ScanWindow *w, TimestampTz ts, bool failed, int32 need, const ScanParams *p)
{
	if (w->unanswered + w->answered == 0 ||
		nids_time_gap_exceeds(ts, w->start, p->sweep_window))
	{
		w->start = ts;
		w->unanswered = 0;
		w->answered = 0;
	}
	if (failed)
		w->unanswered++;
	else
		w->answered++;
	return w->unanswered >= need &&
		w->answered <= p->sweep_answered * (w->unanswered + w->answered);
}

/*
 * One first contact of a walk; true when it decides "scanner".  A resting
 * walk starts again after p->restart, or at once when sweep says the
 * source's first contacts now look like a sweep.
 */
static bool
walk_step(ScanWalk *w, bool failed, bool sweep, double decide, TimestampTz ts,
		  const ScanParams *p)
{
	double		theta0;

	if (w->resting)
	{
		if (!sweep && !nids_time_gap_exceeds(ts, w->rest_since, p->restart))
		{
			w->contacts++;
			w->failed += failed;
			return false;
		}
		/* a new walk, against the source's own record so far */
		w->resting = false;
		w->ratio = 1.0;
		w->walks++;
		w->theta0 = (double) (w->contacts - w->failed + 1) / (w->contacts + 2);
		w->theta0 = Max(w->theta0, (p->theta0 + p->theta1) / 2);
		w->theta0 = Min(w->theta0, p->theta0);
	}
	w->contacts++;
	w->failed += failed;
	theta0 = w->theta0 > 0 ? w->theta0 : p->theta0;
	w->ratio *= failed ? (1.0 - p->theta1) / (1.0 - theta0) : p->theta1 / theta0;
	if (w->ratio >= decide)
		return true;
	if (w->ratio <= 1.0 / decide)
	{
		/* benign: the walk ends */
		w->resting = true;
		w->rest_since = ts;
		w->ratio = 1.0;
	}
	return false;
}

/* the slot of a destination among the followed ones (reused: the oldest) */
static ScanHost *
vertical_slot(ScanSource *s, uint32 dst_hash, TimestampTz ts)
{
	ScanHost   *slot = NULL;

	for (int i = 0; i < SCAN_VERTICAL_HOSTS; i++)
		if (s->vertical[i].first_contacts > 0 && s->vertical[i].dst_hash == dst_hash)
			return &s->vertical[i];
	for (int i = 0; i < SCAN_VERTICAL_HOSTS && slot == NULL; i++)
		if (s->vertical[i].first_contacts == 0)
			slot = &s->vertical[i];
	if (slot == NULL)
	{
		/* every slot is in use: the destination seen longest ago goes */
		slot = &s->vertical[0];
		for (int i = 1; i < SCAN_VERTICAL_HOSTS; i++)
			if (s->vertical[i].last < slot->last)
				slot = &s->vertical[i];
	}
	memset(slot, 0, sizeof(*slot));
	slot->dst_hash = dst_hash;
	walk_init(&slot->walk);
	slot->last = ts;
	return slot;
}

static uint32
mix32(uint32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352d;
	x ^= x >> 15;
	x *= 0x846ca68b;
	x ^= x >> 16;
	return x;
}

static void
decide_walk(ScanSource *s, ScanKind kind, const ScanWalk *w, ScanDecision *d)
{
	s->detected[kind] = true;
	d->detected = true;
	d->kind = kind;
	d->family = SCAN_TCP;
	d->score = w->ratio;
	d->attempts = s->family_attempts[SCAN_TCP];
	d->first_contacts = w->contacts;
	d->first_failed = w->failed;
	d->walks = w->walks;
}

static void
decide_sweep(ScanSource *s, ScanKind kind, const ScanWindow *w, TimestampTz ts, ScanDecision *d)
{
	s->detected[kind] = true;
	d->detected = true;
	d->kind = kind;
	d->family = SCAN_WEAK;
	d->score = w->unanswered;
	d->attempts = s->family_attempts[SCAN_WEAK];
	d->first_contacts = w->unanswered + w->answered;
	d->first_failed = w->unanswered;
	d->window = Max(ts - w->start, 0);	/* a late row: the window is not negative */
}

/* a TCP attempt: the walks */
static void
observe_tcp(ScanSource *s, const ScanAttempt *a, const ScanParams *p, ScanDecision *d)
{
	if (!test_and_set(s->host_bits, mix32(a->dst_hash) % SCAN_HOST_BITS))
	{
		bool		sweep = window_add(&s->tcp, a->ts, a->failed, p->sweep_hosts, p);

		s->hosts++;
		if (p->horizontal && !s->detected[SCAN_ADDRESS] &&
			walk_step(&s->walk, a->failed, sweep, p->horizontal_ratio, a->ts, p))
			decide_walk(s, SCAN_ADDRESS, &s->walk, d);
	}
	if (p->vertical && a->dport >= 0)
	{
		ScanHost   *h = vertical_slot(s, a->dst_hash, a->ts);

		h->last = Max(h->last, a->ts);
		if (!test_and_set(h->ports, mix32((uint32) a->dport * 2654435761u) % SCAN_PORT_BITS))
		{
			bool		sweep = window_add(&h->tcp, a->ts, a->failed, p->sweep_ports, p);

			h->first_contacts++;
			s->ports++;
			if (!s->detected[SCAN_PORT] && !d->detected &&
				walk_step(&h->walk, a->failed, sweep, p->vertical_ratio, a->ts, p))
				decide_walk(s, SCAN_PORT, &h->walk, d);
		}
	}
}

/* a UDP flow or an ICMP echo: sweeps only */
static void
observe_weak(ScanSource *s, const ScanAttempt *a, const ScanParams *p, ScanDecision *d)
{
	if (!test_and_set(s->weak_host_bits, mix32(a->dst_hash) % SCAN_WEAK_HOST_BITS))
	{
		bool		sweep = window_add(&s->weak, a->ts, a->failed, p->sweep_hosts, p);

		s->hosts++;
		if (p->sweep && p->horizontal && !s->detected[SCAN_ADDRESS] && sweep)
			decide_sweep(s, SCAN_ADDRESS, &s->weak, a->ts, d);
	}
	if (p->sweep && p->vertical && a->dport >= 0)
	{
		ScanHost   *h = vertical_slot(s, a->dst_hash, a->ts);

		h->last = Max(h->last, a->ts);
		/* UDP ports apart from TCP ones: 53/udp is not 53/tcp */
		if (!test_and_set(h->ports, mix32((uint32) (a->dport + 65536) * 2654435761u) % SCAN_PORT_BITS))
		{
			bool		sweep = window_add(&h->weak, a->ts, a->failed, p->sweep_ports, p);

			h->first_contacts++;
			s->ports++;
			if (!s->detected[SCAN_PORT] && !d->detected && sweep)
				decide_sweep(s, SCAN_PORT, &h->weak, a->ts, d);
		}
	}
}

/* the attempt a of source s: updates s, and says what it decided */
void
scan_observe(ScanSource *s, const ScanAttempt *a, const ScanParams *p, ScanDecision *d)
{
	memset(d, 0, sizeof(*d));
	s->last_seen = Max(s->last_seen, a->ts);
	s->attempts++;
	s->failed += a->failed;
	s->family_attempts[a->family]++;
	if (a->family == SCAN_TCP)
		observe_tcp(s, a, p, d);
	else
		observe_weak(s, a, p, d);
}
