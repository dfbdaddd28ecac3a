/*-------------------------------------------------------------------------
 *
 * scan_detector.c
 *	  The per-source scan detector: a source's connection attempts, in
 *	  time order, against a fixed-size state.
 *
 * Two sequential tests in the manner of the Threshold Random Walk (Jung,
 * Paxson, Berger and Balakrishnan, 2004), both over first contacts only:
 *	- hosts (AddressScan): each attempt to a host the source has not
 *	  contacted before multiplies the likelihood ratio by
 *	  (1 - theta1) / (1 - theta0) when it failed and theta1 / theta0 when
 *	  it succeeded (theta0 0.8: a benign source's first contacts mostly
 *	  succeed; theta1 0.2: a scanner's mostly fail).  At horizontal_ratio
 *	  (99: detection 0.99, false alarms 0.01) the source is a scanner: the
 *	  fourth failure in a row; at 1 / horizontal_ratio it is taken as
 *	  benign and the walk starts again.
 *	- ports of one host (PortScan): the same walk over first contacts to
 *	  ports of one destination, for the source's last SCAN_VERTICAL_HOSTS
 *	  destinations, deciding at vertical_ratio (9,900: the seventh failed
 *	  port in a row), a stricter bar since a client trying a few closed
 *	  ports of a server is common.
 * Repeated attempts to a contacted host or port add nothing, so retries
 * and the many flows of one conversation never make a scanner.  The sets
 * of contacted hosts and ports are bitmaps of hashes (4 kB and 256 B a
 * host): fixed size whatever a source contacts; a collision makes a new
 * host look contacted, which can only delay a detection.
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
	p->horizontal = true;
	p->vertical = true;
}

void
scan_source_init(ScanSource *s, TimestampTz ts)
{
	memset(s, 0, sizeof(*s));
	s->first_seen = ts;
	s->last_seen = ts;
	s->ratio = 1.0;
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

/* one step of a walk; true when it decides "scanner" */
static bool
walk(double *ratio, bool failed, double decide, const ScanParams *p)
{
	*ratio *= failed ? (1.0 - p->theta1) / (1.0 - p->theta0) : p->theta1 / p->theta0;
	if (*ratio >= decide)
		return true;
	if (*ratio <= 1.0 / decide)
		*ratio = 1.0;			/* benign so far: start again */
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
	slot->ratio = 1.0;
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

/* the attempt a of source s: updates s, and says what it decided */
void
scan_observe(ScanSource *s, const ScanAttempt *a, const ScanParams *p, ScanDecision *d)
{
	memset(d, 0, sizeof(*d));
	s->last_seen = Max(s->last_seen, a->ts);
	s->attempts++;
	s->failed += a->failed;

	if (!test_and_set(s->host_bits, mix32(a->dst_hash) % SCAN_HOST_BITS))
	{
		s->hosts++;
		s->hosts_failed += a->failed;
		if (p->horizontal && !s->detected[SCAN_ADDRESS] &&
			walk(&s->ratio, a->failed, p->horizontal_ratio, p))
		{
			s->detected[SCAN_ADDRESS] = true;
			d->detected = true;
			d->kind = SCAN_ADDRESS;
			d->score = s->ratio;
			d->first_contacts = s->hosts;
			d->first_failed = s->hosts_failed;
		}
	}
	if (p->vertical && a->dport >= 0)
	{
		ScanHost   *h = vertical_slot(s, a->dst_hash, a->ts);

		h->last = Max(h->last, a->ts);
		if (!test_and_set(h->ports, mix32((uint32) a->dport * 2654435761u) % SCAN_PORT_BITS))
		{
			h->first_contacts++;
			h->failed += a->failed;
			s->ports++;
			if (!s->detected[SCAN_PORT] && !d->detected &&
				walk(&h->ratio, a->failed, p->vertical_ratio, p))
			{
				s->detected[SCAN_PORT] = true;
				d->detected = true;
				d->kind = SCAN_PORT;
				d->score = h->ratio;
				d->first_contacts = h->first_contacts;
				d->first_failed = h->failed;
			}
		}
	}
}
