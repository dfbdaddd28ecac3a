/*-------------------------------------------------------------------------
 *
 * alert_community_id.c
 *	  nids_community_id: the Community ID v1 flow hash (Corelight's
 *	  specification, as Zeek and Suricata write it), so that an incident
 *	  can be looked up in the logs of the network's other monitors.
 *
 * The hash is SHA-1 over the seed (2 bytes), the two addresses, the
 * protocol and a zero byte, then for TCP, UDP, SCTP, ICMP and ICMPv6 the
 * two ports, all in network byte order, the endpoints ordered so that the
 * smaller address:port comes first (both directions give one id).  ICMP
 * has no ports: its type and code map to a port pair, the type and its
 * counterpart for request/reply types (then ordered as ports are), the
 * type and code for one-way messages (never reordered).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/sha1.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "alert.h"

PG_FUNCTION_INFO_V1(nids_community_id);

#define PROTO_ICMP		1
#define PROTO_TCP		6
#define PROTO_UDP		17
#define PROTO_ICMPV6	58
#define PROTO_SCTP		132

/* ICMP request/reply types and their counterparts; -1: one-way */
static int
icmp_counterpart(int proto, int type)
{
	static const int v4[][2] = {
		{8, 0}, {0, 8}, {13, 14}, {14, 13}, {15, 16}, {16, 15},
		{10, 9}, {9, 10}, {17, 18}, {18, 17}
	};
	static const int v6[][2] = {
		{128, 129}, {129, 128}, {130, 131}, {131, 130}, {133, 134}, {134, 133},
		{135, 136}, {136, 135}, {139, 140}, {140, 139}, {144, 145}, {145, 144}
	};
	const int	(*map)[2] = proto == PROTO_ICMP ? v4 : v6;
	int			n = proto == PROTO_ICMP ? lengthof(v4) : lengthof(v6);

	for (int i = 0; i < n; i++)
		if (map[i][0] == type)
			return map[i][1];
	return -1;
}

static inline void
check_range(const char *what, int value, int max)
{
	if (value < 0 || value > max)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s %d is out of range (0 to %d)", what, value, max)));
}

/* (a, pa) < (b, pb): addresses as bytes in network order, then ports */
static bool
endpoint_less(const unsigned char *a, int pa, const unsigned char *b, int pb, int len)
{
	int			c = memcmp(a, b, len);

	return c < 0 || (c == 0 && pa < pb);
}

static char *
community_id(inet *src, inet *dst, int sport, int dport, int proto, int seed)
{
	int			alen;
	const unsigned char *a;
	const unsigned char *b;
	bool		ports,
				one_way = false;
	unsigned char buf[2 + 16 + 16 + 2 + 4];
	int			n = 0;
	uint8		digest[SHA1_DIGEST_LENGTH];
	pg_cryptohash_ctx *ctx;
	char		out[3 + 32];
	int			len;

	if (ip_family(src) != ip_family(dst))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source and destination addresses are of different families")));
	check_range("port", sport, 65535);
	check_range("port", dport, 65535);
	check_range("protocol", proto, 255);
	check_range("seed", seed, 65535);
	alen = ip_family(src) == PGSQL_AF_INET ? 4 : 16;
	a = ip_addr(src);
	b = ip_addr(dst);
	ports = proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP ||
		proto == PROTO_ICMP || proto == PROTO_ICMPV6;
	if (proto == PROTO_ICMP || proto == PROTO_ICMPV6)
	{
		/* sport is the ICMP type, dport its code */
		int			counterpart = icmp_counterpart(proto, sport);

		if (counterpart >= 0)
			dport = counterpart;
		else
			one_way = true;
	}
	if (!ports)
		sport = dport = 0;
	if (!one_way && !endpoint_less(a, sport, b, dport, alen))
	{
		const unsigned char *t = a;
		int			tp = sport;

		a = b;
		b = t;
		sport = dport;
		dport = tp;
	}
	buf[n++] = (unsigned char) (seed >> 8);
	buf[n++] = (unsigned char) seed;
	memcpy(buf + n, a, alen);
	n += alen;
	memcpy(buf + n, b, alen);
	n += alen;
	buf[n++] = (unsigned char) proto;
	buf[n++] = 0;
	if (ports)
	{
		buf[n++] = (unsigned char) (sport >> 8);
		buf[n++] = (unsigned char) sport;
		buf[n++] = (unsigned char) (dport >> 8);
		buf[n++] = (unsigned char) dport;
	}
	ctx = pg_cryptohash_create(PG_SHA1);
	if (pg_cryptohash_init(ctx) < 0 || pg_cryptohash_update(ctx, buf, n) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
	{
		pg_cryptohash_free(ctx);
		elog(ERROR, "could not compute a SHA-1 digest");
	}
	pg_cryptohash_free(ctx);
	memcpy(out, "1:", 2);
	len = pg_b64_encode((const char *) digest, SHA1_DIGEST_LENGTH, out + 2, sizeof(out) - 3);
	if (len < 0)
		elog(ERROR, "could not encode a digest in base64");
	return pnstrdup(out, 2 + len);
}

/* an incident's first flow's id; NULL when the flow cannot have one */
char *
alert_community_id(inet *src, inet *dst, int sport, int dport, int proto)
{
	if (src == NULL || dst == NULL || proto < 0 || proto > 255 ||
		ip_family(src) != ip_family(dst))
		return NULL;
	if (sport < 0 || sport > 65535 || dport < 0 || dport > 65535)
	{
		/* a protocol with ports needs them; the others hash none */
		if (proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP ||
			proto == PROTO_ICMP || proto == PROTO_ICMPV6)
			return NULL;
		sport = dport = 0;
	}
	return community_id(src, dst, sport, dport, proto, 0);
}

Datum
nids_community_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(community_id(PG_GETARG_INET_PP(0), PG_GETARG_INET_PP(1),
												  PG_GETARG_INT32(2), PG_GETARG_INT32(3),
												  PG_GETARG_INT32(4), PG_GETARG_INT32(5))));
}
