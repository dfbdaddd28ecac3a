/*
 * decode.c
 *	  A captured frame into a Packet, one layer a function, each handed a
 *	  pointer and what remains of the captured bytes: no read past caplen,
 *	  and no length field from the packet trusted beyond what was captured.
 *
 * What the reference reads (its packet library, jnetpcap): the first IP
 * header of the frame; TCP, UDP and ICMP directly above it (anything else,
 * tunnels and later fragments included, is a flow of protocol 0 with ports
 * 0).  Transport payload: as the IP header's total length says when IPv4
 * follows the Ethernet header directly (the link's padding is not
 * payload), what was captured after the transport header when VLAN tags
 * come between (there the reference counts the padding).
 *
 * And one quirk of its reader: a frame in which it finds no IPv4 header
 * (IPv6, ARP, 802.3 frames, link types it does not know) is read again as
 * if an IPv4 header began at the frame's first byte, and kept when that
 * header's length field is at least 20 bytes: a "flow" of protocol 0 whose
 * addresses are bytes 12-15 and 16-19 of the frame.  The models were
 * trained on flows made so; decode_reference_quirk reproduces it, for
 * IPv4 parity with the reference.
 */
#include <string.h>

#include <pcap/dlt.h>

#include "meter.h"

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2	276
#endif
#ifndef DLT_IPV4
#define DLT_IPV4		228
#endif
#ifndef DLT_IPV6
#define DLT_IPV6		229
#endif

#define ETH_IPV4	0x0800
#define ETH_IPV6	0x86DD
#define ETH_VLAN	0x8100
#define ETH_QINQ	0x88A8
#define ETH_QINQ_OLD 0x9100

const char *const skip_reason_names[SKIP_NUM_REASONS] = {
	"truncated", "malformed", "not_ip", "link_type", "bad_record"
};

#define Min32(a, b) ((a) < (b) ? (a) : (b))

static inline uint16_t
get16(const uint8_t *p)
{
	return (uint16_t) (p[0] << 8 | p[1]);
}

/*
 * The transport layer of protocol proto: len bytes are there (what the IP
 * header says, or what was captured, whichever is less).  As the
 * reference's packet library reads it: a header shorter than its minimum
 * (TCP 20, UDP 8, ICMP 4 bytes) leaves a packet of protocol 0 with ports 0;
 * a TCP data offset below 20 bytes drops the packet; a data offset past
 * the bytes there counts them all as header.
 */
static bool
decode_transport(uint8_t proto, const uint8_t *d, uint32_t len, Packet *p, SkipReason *why)
{
	switch (proto)
	{
		case 6:
			{
				uint32_t	hlen;

				if (len < 20)
					return true;	/* no TCP header: protocol 0 */
				hlen = (uint32_t) (d[12] >> 4) * 4;
				if (hlen < 20)
				{
					*why = SKIP_MALFORMED;
					return false;
				}
				if (hlen > len)
					hlen = len;
				p->proto = PROTO_TCP;
				p->sport = get16(d);
				p->dport = get16(d + 2);
				p->flags = d[13];
				p->window = get16(d + 14);
				p->header = hlen;
				p->payload = len - hlen;
				return true;
			}
		case 17:
			if (len < 8)
				return true;	/* no UDP header: protocol 0 */
			p->proto = PROTO_UDP;
			p->sport = get16(d);
			p->dport = get16(d + 2);
			p->header = 8;
			p->payload = len - 8;
			return true;
		case 1:
			if (len < 4)
				return true;	/* no ICMP header: protocol 0 */
			p->proto = PROTO_ICMP;
			p->icmp_type = d[0];
			p->icmp_code = d[1];
			return true;
		default:
			/* a flow of the addresses alone (protocol 0), as the reference keeps it */
			return true;
	}
}

/*
 * An IPv4 header and what follows.  Not checked, as the reference does not:
 * the version field (the Ethernet type said IPv4), the total length beyond
 * bounding the transport layer.  Behind VLAN tags and in the second reading
 * the transport layer is what was captured (the reference counts the link's
 * padding there).
 */
static bool
decode_ipv4(const uint8_t *d, uint32_t cap, Packet *p, SkipReason *why)
{
	uint32_t	hlen,
				total,
				len;
	uint16_t	frag;

	if (cap < 20)
	{
		*why = SKIP_TRUNCATED;
		return false;
	}
	hlen = (uint32_t) (d[0] & 0x0f) * 4;
	if (hlen < 20)
	{
		*why = SKIP_MALFORMED;
		return false;
	}
	if (cap < hlen && !p->quirk)
	{
		*why = SKIP_TRUNCATED;
		return false;
	}
	p->family = 4;
	memcpy(p->src, d + 12, 4);
	memcpy(p->dst, d + 16, 4);
	if (cap < hlen)
		return true;			/* the reference's second reading: addresses only */
	total = p->payload_from_capture ? cap : get16(d + 2);
	if (total > cap)
		total = cap;
	len = total > hlen ? total - hlen : 0;
	frag = get16(d + 6) & 0x1fff;
	if (frag != 0)
		return true;			/* a later fragment: no transport header */
	return decode_transport(d[9], d + hlen, len, p, why);
}

static bool
decode_ipv6(const uint8_t *d, uint32_t cap, Packet *p, SkipReason *why)
{
	uint32_t	plen;
	uint8_t		next;
	uint32_t	off = 40;

	if (cap < 40)
	{
		*why = SKIP_TRUNCATED;
		return false;
	}
	if ((d[0] >> 4) != 6)
	{
		*why = SKIP_MALFORMED;
		return false;
	}
	plen = get16(d + 4);
	next = d[6];
	p->family = 6;
	memcpy(p->src, d + 8, 16);
	memcpy(p->dst, d + 24, 16);
	/* extension headers: hop-by-hop, routing, destination options */
	while (next == 0 || next == 43 || next == 60)
	{
		uint32_t	ext;

		if (cap < off + 8 || plen + 40 < off + 8)
			return true;
		ext = ((uint32_t) d[off + 1] + 1) * 8;
		next = d[off];
		off += ext;
	}
	if (next == 44)
		return true;			/* a fragment: no transport header read */
	if (off > cap || plen + 40 < off)
		return true;
	if (next == 58)
		next = 0;				/* ICMPv6: a flow of the addresses alone */
	return decode_transport(next, d + off, Min32(plen + 40 - off, cap - off), p, why);
}

static bool
decode_ip(uint16_t ethertype, const uint8_t *d, uint32_t cap, Packet *p, SkipReason *why)
{
	if (ethertype == ETH_IPV4)
		return decode_ipv4(d, cap, p, why);
	if (ethertype == ETH_IPV6)
		return decode_ipv6(d, cap, p, why);
	*why = SKIP_NOT_IP;
	return false;
}

static bool
decode_ethernet(const uint8_t *d, uint32_t cap, Packet *p, SkipReason *why)
{
	uint32_t	off = 12;
	uint16_t	type;

	if (cap < 14)
	{
		*why = SKIP_TRUNCATED;
		return false;
	}
	type = get16(d + off);
	off += 2;
	/* 802.1Q and 802.1ad tags, stacked */
	while (type == ETH_VLAN || type == ETH_QINQ || type == ETH_QINQ_OLD)
	{
		if (cap < off + 4)
		{
			*why = SKIP_TRUNCATED;
			return false;
		}
		type = get16(d + off + 2);
		off += 4;
		p->payload_from_capture = true;
	}
	return decode_ip(type, d + off, cap - off, p, why);
}

static bool
decode_raw(const uint8_t *d, uint32_t cap, Packet *p, SkipReason *why)
{
	if (cap < 1)
	{
		*why = SKIP_TRUNCATED;
		return false;
	}
	if ((d[0] >> 4) == 4)
		return decode_ipv4(d, cap, p, why);
	if ((d[0] >> 4) == 6)
		return decode_ipv6(d, cap, p, why);
	*why = SKIP_NOT_IP;
	return false;
}

bool
decode_packet(int linktype, const uint8_t *data, uint32_t caplen, uint32_t wirelen,
			  int64_t ts, Packet *p, SkipReason *why)
{
	(void) wirelen;
	memset(p, 0, sizeof(*p));
	p->ts = ts;
	p->icmp_code = -1;
	p->icmp_type = -1;
	switch (linktype)
	{
		case DLT_EN10MB:
			return decode_ethernet(data, caplen, p, why);
		case DLT_LINUX_SLL:
			if (caplen < 16)
			{
				*why = SKIP_TRUNCATED;
				return false;
			}
			return decode_ip(get16(data + 14), data + 16, caplen - 16, p, why);
		case DLT_LINUX_SLL2:
			if (caplen < 20)
			{
				*why = SKIP_TRUNCATED;
				return false;
			}
			return decode_ip(get16(data), data + 20, caplen - 20, p, why);
		case DLT_RAW:
		case DLT_IPV4:
		case DLT_IPV6:
			return decode_raw(data, caplen, p, why);
		default:
			*why = SKIP_LINK_TYPE;
			return false;
	}
}

/*
 * The reference's second reading of a frame in which it found no IPv4
 * header (see above): q is the "flow" packet it makes, if any.  Its header
 * length field must say 20 bytes or more, and the frame hold that many;
 * an ARP frame (Ethernet) is read even when it is shorter, as the
 * reference reads it (its decoded ARP header leaves no bytes unclaimed).
 */
bool
decode_reference_quirk(int linktype, const uint8_t *data, uint32_t caplen, int64_t ts, Packet *q)
{
	SkipReason	why;
	bool		arp = linktype == DLT_EN10MB && caplen >= 14 && get16(data + 12) == 0x0806;

	memset(q, 0, sizeof(*q));
	q->ts = ts;
	q->icmp_code = -1;
	q->icmp_type = -1;
	q->payload_from_capture = true;
	q->quirk = arp;				/* the header may be longer than the frame */
	if (caplen >= 20 && !arp && (uint32_t) (data[0] & 0x0f) * 4 > caplen)
		return false;
	return decode_ipv4(data, caplen, q, &why);
}
