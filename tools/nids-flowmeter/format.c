/*
 * format.c
 *	  A finished flow as one row of the reference's CSV: its header, column
 *	  order and value format.  Integers as integers; reals as Java's
 *	  Double.toString writes them ("0.0", "15.181818181818183", "1.0E7",
 *	  "NaN", "Infinity"), with the shortest digits that read back as the
 *	  same double; the start time as "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC
 *	  (java.time's Instant, which drops a zero fraction).  Rows are built
 *	  with a cursor into one buffer, not with printf per value.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "meter.h"

const char *const flow_csv_header =
"Flow ID,Src IP,Src Port,Dst IP,Dst Port,Protocol,Timestamp,Flow Duration,Total Fwd Packet,"
"Total Bwd packets,Total Length of Fwd Packet,Total Length of Bwd Packet,Fwd Packet Length Max,"
"Fwd Packet Length Min,Fwd Packet Length Mean,Fwd Packet Length Std,Bwd Packet Length Max,"
"Bwd Packet Length Min,Bwd Packet Length Mean,Bwd Packet Length Std,Flow Bytes/s,Flow Packets/s,"
"Flow IAT Mean,Flow IAT Std,Flow IAT Max,Flow IAT Min,Fwd IAT Total,Fwd IAT Mean,Fwd IAT Std,"
"Fwd IAT Max,Fwd IAT Min,Bwd IAT Total,Bwd IAT Mean,Bwd IAT Std,Bwd IAT Max,Bwd IAT Min,"
"Fwd PSH Flags,Bwd PSH Flags,Fwd URG Flags,Bwd URG Flags,Fwd RST Flags,Bwd RST Flags,"
"Fwd Header Length,Bwd Header Length,Fwd Packets/s,Bwd Packets/s,Packet Length Min,"
"Packet Length Max,Packet Length Mean,Packet Length Std,Packet Length Variance,FIN Flag Count,"
"SYN Flag Count,RST Flag Count,PSH Flag Count,ACK Flag Count,URG Flag Count,CWR Flag Count,"
"ECE Flag Count,Down/Up Ratio,Average Packet Size,Fwd Segment Size Avg,Bwd Segment Size Avg,"
"Fwd Bytes/Bulk Avg,Fwd Packet/Bulk Avg,Fwd Bulk Rate Avg,Bwd Bytes/Bulk Avg,Bwd Packet/Bulk Avg,"
"Bwd Bulk Rate Avg,Subflow Fwd Packets,Subflow Fwd Bytes,Subflow Bwd Packets,Subflow Bwd Bytes,"
"FWD Init Win Bytes,Bwd Init Win Bytes,Fwd Act Data Pkts,Fwd Seg Size Min,Active Mean,Active Std,"
"Active Max,Active Min,Idle Mean,Idle Std,Idle Max,Idle Min,ICMP Code,ICMP Type,"
"Total TCP Flow Time,Label";

/* the decimal digits of v >= 0, reversed into tmp; returns how many */
static int
u64_digits(uint64_t v, char *tmp)
{
	int			n = 0;

	do
	{
		tmp[n++] = (char) ('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return n;
}

static size_t
format_long(int64_t v, char *buf)
{
	char		tmp[24];
	size_t		len = 0;
	uint64_t	u = v < 0 ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;
	int			n = u64_digits(u, tmp);

	if (v < 0)
		buf[len++] = '-';
	while (n > 0)
		buf[len++] = tmp[--n];
	return len;
}

extern int	shortest_digits_fast(double v, char *digits, int size, int *exp10);

/*
 * The shortest digits of v (v > 0, finite) that read back as v (shortest.cc,
 * double-conversion): *exp10 is the decimal exponent of the first digit.
 * Returns the number of digits.
 */
static int
shortest_digits(double v, char *digits, int *exp10)
{
	return shortest_digits_fast(v, digits, 24, exp10);
}

/* v as Java's Double.toString writes it */
static size_t
format_double(double v, char *buf)
{
	char		digits[24];
	int			nd,
				exp10;
	size_t		len = 0;

	if (isnan(v))
	{
		memcpy(buf, "NaN", 3);
		return 3;
	}
	if (isinf(v))
	{
		if (v < 0)
		{
			memcpy(buf, "-Infinity", 9);
			return 9;
		}
		memcpy(buf, "Infinity", 8);
		return 8;
	}
	if (v == 0)
	{
		if (signbit(v))
			buf[len++] = '-';
		memcpy(buf + len, "0.0", 3);
		return len + 3;
	}
	if (v < 0)
	{
		buf[len++] = '-';
		v = -v;
	}
	/* whole numbers below 10^7: the common case, no search */
	if (v < 1e7 && v == floor(v))
	{
		len += format_long((int64_t) v, buf + len);
		memcpy(buf + len, ".0", 2);
		return len + 2;
	}
	nd = shortest_digits(v, digits, &exp10);
	if (v >= 1e-3 && v < 1e7)
	{
		if (exp10 >= 0)
		{
			for (int i = 0; i <= exp10; i++)
				buf[len++] = i < nd ? digits[i] : '0';
			buf[len++] = '.';
			if (nd > exp10 + 1)
				for (int i = exp10 + 1; i < nd; i++)
					buf[len++] = digits[i];
			else
				buf[len++] = '0';
		}
		else
		{
			buf[len++] = '0';
			buf[len++] = '.';
			for (int i = 0; i < -exp10 - 1; i++)
				buf[len++] = '0';
			for (int i = 0; i < nd; i++)
				buf[len++] = digits[i];
		}
		return len;
	}
	/* computerized scientific notation: d.dddE[-]n */
	buf[len++] = digits[0];
	buf[len++] = '.';
	if (nd > 1)
		for (int i = 1; i < nd; i++)
			buf[len++] = digits[i];
	else
		buf[len++] = '0';
	buf[len++] = 'E';
	len += format_long(exp10, buf + len);
	return len;
}

static size_t
format_addr(uint8_t family, const uint8_t *a, char *buf)
{
	if (family == 4)
	{
		size_t		len = 0;

		for (int i = 0; i < 4; i++)
		{
			if (i > 0)
				buf[len++] = '.';
			len += format_long(a[i], buf + len);
		}
		return len;
	}
	inet_ntop(AF_INET6, a, buf, 46);
	return strlen(buf);
}

/* microseconds since 1970 as java.time's Instant writes them, without T and Z */
static size_t
format_time(int64_t us, char *buf)
{
	int64_t		secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	int64_t		frac = us - secs * 1000000;
	time_t		t = (time_t) secs;
	struct tm	tm;
	size_t		len;

	gmtime_r(&t, &tm);
	if (tm.tm_year + 1900 > 9999)
	{
		/* java.time past year 9999: a sign, and (in the reference's JDK) no fraction */
		buf[0] = '+';
		return 1 + strftime(buf + 1, 40, "%Y-%m-%d %H:%M:%S", &tm);
	}
	len = strftime(buf, 32, "%Y-%m-%d %H:%M:%S", &tm);
	if (frac != 0)
	{
		/* Instant prints 3, 6 or 9 fraction digits: as few groups as needed */
		if (frac % 1000 == 0)
			len += (size_t) sprintf(buf + len, ".%03lld", (long long) (frac / 1000));
		else
			len += (size_t) sprintf(buf + len, ".%06lld", (long long) frac);
	}
	return len;
}

typedef struct Row
{
	char	   *buf;
	size_t		len;
} Row;

static inline void
put_long(Row *r, int64_t v)
{
	r->len += format_long(v, r->buf + r->len);
	r->buf[r->len++] = ',';
}

static inline void
put_double(Row *r, double v)
{
	r->len += format_double(v, r->buf + r->len);
	r->buf[r->len++] = ',';
}

/* the reference writes 0 (an int) where a statistic has no values */
static inline void
put_stats4(Row *r, const RunningStats *s, bool have)
{
	if (!have)
	{
		memcpy(r->buf + r->len, "0,0,0,0,", 8);
		r->len += 8;
		return;
	}
	put_double(r, s->max);
	put_double(r, s->min);
	put_double(r, stats_mean(s));
	put_double(r, stats_std(s));
}

static inline void
put_iat(Row *r, const RunningStats *s, bool have)
{
	if (!have)
	{
		memcpy(r->buf + r->len, "0,0,0,0,0,", 10);
		r->len += 10;
		return;
	}
	put_double(r, s->sum);
	put_double(r, stats_mean(s));
	put_double(r, stats_std(s));
	put_double(r, s->max);
	put_double(r, s->min);
}

static inline void
put_active(Row *r, const RunningStats *s)
{
	if (s->n == 0)
	{
		memcpy(r->buf + r->len, "0,0,0,0,", 8);
		r->len += 8;
		return;
	}
	put_double(r, stats_mean(s));
	put_double(r, stats_std(s));
	put_double(r, s->max);
	put_double(r, s->min);
}

static inline int64_t
per_bulk(int64_t total, int64_t states)
{
	return states != 0 ? total / states : 0;
}

/* the row of f, without a line end, into buf (at least 4096 bytes); returns its length */
size_t
format_flow(const Flow *f, char *buf, size_t size)
{
	Row			r = {buf, 0};
	const FlowTimes *tm = f->times;
	const RunningStats *flow_iat = tm ? &tm->flow_iat : &stats_empty;
	const RunningStats *fwd_iat = tm ? &tm->fwd_iat : &stats_empty;
	const RunningStats *bwd_iat = tm ? &tm->bwd_iat : &stats_empty;
	const RunningStats *active = tm ? &tm->active : &stats_empty;
	const RunningStats *idle = tm ? &tm->idle : &stats_empty;
	int64_t		duration = f->last_seen - f->start;
	double		seconds = (double) duration / 1000000.0;
	int64_t		packets = f->fwd_packets + f->bwd_packets;

	(void) size;
	/* Flow ID: the table's key, as the reference keeps it */
	r.len += format_addr(f->key.family, f->key.addr_a, buf + r.len);
	buf[r.len++] = '-';
	r.len += format_addr(f->key.family, f->key.addr_b, buf + r.len);
	buf[r.len++] = '-';
	r.len += format_long(f->key.port_a, buf + r.len);
	buf[r.len++] = '-';
	r.len += format_long(f->key.port_b, buf + r.len);
	buf[r.len++] = '-';
	put_long(&r, f->key.proto);
	r.len += format_addr(f->key.family, flow_src(f), buf + r.len);
	buf[r.len++] = ',';
	put_long(&r, flow_sport(f));
	r.len += format_addr(f->key.family, flow_dst(f), buf + r.len);
	buf[r.len++] = ',';
	put_long(&r, flow_dport(f));
	put_long(&r, f->key.proto);
	r.len += format_time(f->start, buf + r.len);
	buf[r.len++] = ',';
	put_long(&r, duration);
	put_long(&r, f->fwd_packets);
	put_long(&r, f->bwd_packets);
	put_double(&r, f->fwd_len.sum);
	put_double(&r, f->bwd_len.sum);
	put_stats4(&r, &f->fwd_len, f->fwd_len.n > 0);
	put_stats4(&r, &f->bwd_len, f->bwd_len.n > 0);
	put_double(&r, (double) (f->fwd_bytes + f->bwd_bytes) / seconds);
	put_double(&r, (double) packets / seconds);
	put_double(&r, stats_mean(flow_iat));
	put_double(&r, stats_std(flow_iat));
	put_double(&r, flow_iat->n > 0 ? flow_iat->max : NAN);
	put_double(&r, flow_iat->n > 0 ? flow_iat->min : NAN);
	put_iat(&r, fwd_iat, f->fwd_packets > 1);
	put_iat(&r, bwd_iat, f->bwd_packets > 1);
	put_long(&r, f->fwd_psh);
	put_long(&r, f->bwd_psh);
	put_long(&r, f->fwd_urg);
	put_long(&r, f->bwd_urg);
	put_long(&r, f->fwd_rst);
	put_long(&r, f->bwd_rst);
	put_long(&r, f->fwd_header);
	put_long(&r, f->bwd_header);
	put_double(&r, duration > 0 ? (double) f->fwd_packets / seconds : 0.0);
	put_double(&r, duration > 0 ? (double) f->bwd_packets / seconds : 0.0);
	if (packets > 0)
	{
		put_double(&r, f->all_len.min);
		put_double(&r, f->all_len.max);
		put_double(&r, stats_mean(&f->all_len));
		put_double(&r, stats_std(&f->all_len));
		put_double(&r, stats_variance(&f->all_len));
	}
	else
	{
		memcpy(buf + r.len, "0,0,0,0,0,", 10);
		r.len += 10;
	}
	for (int i = 0; i < 8; i++)
		put_long(&r, f->flag_counts[i]);
	put_double(&r, f->fwd_packets > 0 ? (double) f->bwd_packets / (double) f->fwd_packets : 0.0);
	put_double(&r, packets > 0 ? f->all_len.sum / (double) packets : 0.0);
	put_double(&r, f->fwd_packets != 0 ? f->fwd_len.sum / (double) f->fwd_packets : 0.0);
	put_double(&r, f->bwd_packets != 0 ? f->bwd_len.sum / (double) f->bwd_packets : 0.0);
	for (int d = 0; d < 2; d++)
	{
		put_long(&r, per_bulk(f->bulk_size[d], f->bulk_states[d]));
		put_long(&r, per_bulk(f->bulk_packets[d], f->bulk_states[d]));
		put_long(&r, f->bulk_duration[d] != 0
				 ? (int64_t) ((double) f->bulk_size[d] / ((double) f->bulk_duration[d] / 1000000.0)) : 0);
	}
	put_long(&r, f->sf_count > 0 ? f->fwd_packets / f->sf_count : 0);
	put_long(&r, f->sf_count > 0 ? f->fwd_bytes / f->sf_count : 0);
	put_long(&r, f->sf_count > 0 ? f->bwd_packets / f->sf_count : 0);
	put_long(&r, f->sf_count > 0 ? f->bwd_bytes / f->sf_count : 0);
	put_long(&r, f->init_win_fwd);
	put_long(&r, f->init_win_bwd);
	put_long(&r, f->act_data_fwd);
	put_long(&r, f->min_seg_fwd);
	put_active(&r, active);
	put_active(&r, idle);
	put_long(&r, f->icmp_code);
	put_long(&r, f->icmp_type);
	put_long(&r, f->cumulative_tcp);
	memcpy(buf + r.len, "NeedManualLabel", 15);
	r.len += 15;
	return r.len;
}
