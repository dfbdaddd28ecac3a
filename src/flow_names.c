/*-------------------------------------------------------------------------
 *
 * flow_names.c
 *	  The mapping from every CICFlowMeter naming variant to one canonical
 *	  set of column names.
 *
 * Canonical names are the normalised names of the CIC-IDS2017 original
 * ("MachineLearningCVE") release.  The CIC-IDS2017 improved release
 * (Engelen et al.) and CSE-CIC-IDS2018 (CICFlowMeter-V3) name the same
 * features differently; their normalised names are listed here as aliases.
 * A feature the original release lacks (protocol, fwd_rst_flags, ...) keeps
 * its own normalised name.  This file is compiled into the extension and
 * into nids-load, so both agree by construction.
 *
 *-------------------------------------------------------------------------
 */
#include "flow.h"

#include <string.h>

typedef struct CanonicalEntry
{
	const char *name;			/* a normalised name, in any variant */
	const char *canonical;		/* its canonical name */
	CanonicalKind kind;
} CanonicalEntry;

#define F(n)		{n, n, CANON_FEATURE}
#define A(n, c)		{n, c, CANON_FEATURE}
#define ID(n, c)	{n, c, CANON_IDENTIFIER}

static const CanonicalEntry entries[] = {
	/* CIC-IDS2017 original, in release order */
	F("destination_port"), F("flow_duration"), F("total_fwd_packets"),
	F("total_backward_packets"), F("total_length_of_fwd_packets"),
	F("total_length_of_bwd_packets"), F("fwd_packet_length_max"),
	F("fwd_packet_length_min"), F("fwd_packet_length_mean"),
	F("fwd_packet_length_std"), F("bwd_packet_length_max"),
	F("bwd_packet_length_min"), F("bwd_packet_length_mean"),
	F("bwd_packet_length_std"), F("flow_bytes_s"), F("flow_packets_s"),
	F("flow_iat_mean"), F("flow_iat_std"), F("flow_iat_max"), F("flow_iat_min"),
	F("fwd_iat_total"), F("fwd_iat_mean"), F("fwd_iat_std"), F("fwd_iat_max"),
	F("fwd_iat_min"), F("bwd_iat_total"), F("bwd_iat_mean"), F("bwd_iat_std"),
	F("bwd_iat_max"), F("bwd_iat_min"), F("fwd_psh_flags"), F("bwd_psh_flags"),
	F("fwd_urg_flags"), F("bwd_urg_flags"), F("fwd_header_length"),
	F("bwd_header_length"), F("fwd_packets_s"), F("bwd_packets_s"),
	F("min_packet_length"), F("max_packet_length"), F("packet_length_mean"),
	F("packet_length_std"), F("packet_length_variance"), F("fin_flag_count"),
	F("syn_flag_count"), F("rst_flag_count"), F("psh_flag_count"),
	F("ack_flag_count"), F("urg_flag_count"), F("cwe_flag_count"),
	F("ece_flag_count"), F("down_up_ratio"), F("average_packet_size"),
	F("avg_fwd_segment_size"), F("avg_bwd_segment_size"),
	F("fwd_header_length_1"), F("fwd_avg_bytes_bulk"),
	F("fwd_avg_packets_bulk"), F("fwd_avg_bulk_rate"), F("bwd_avg_bytes_bulk"),
	F("bwd_avg_packets_bulk"), F("bwd_avg_bulk_rate"), F("subflow_fwd_packets"),
	F("subflow_fwd_bytes"), F("subflow_bwd_packets"), F("subflow_bwd_bytes"),
	F("init_win_bytes_forward"), F("init_win_bytes_backward"),
	F("act_data_pkt_fwd"), F("min_seg_size_forward"), F("active_mean"),
	F("active_std"), F("active_max"), F("active_min"), F("idle_mean"),
	F("idle_std"), F("idle_max"), F("idle_min"),
	{"label", "label", CANON_LABEL},

	/* features only the later releases have: their own names */
	F("protocol"), F("fwd_rst_flags"), F("bwd_rst_flags"), F("icmp_code"),
	F("icmp_type"), F("total_tcp_flow_time"),

	/* identifiers, in every variant */
	ID("flow_id", "flow_id"), ID("source_ip", "source_ip"),
	ID("src_ip", "source_ip"), ID("source_port", "source_port"),
	ID("src_port", "source_port"), ID("destination_ip", "destination_ip"),
	ID("dst_ip", "destination_ip"), ID("timestamp", "timestamp"),
	ID("id", "id"),
	/* the improved release's annotation derives from the label */
	ID("attempted_category", "attempted_category"),

	/* CIC-IDS2017 improved (Engelen et al.) */
	A("dst_port", "destination_port"),
	A("total_fwd_packet", "total_fwd_packets"),
	A("total_bwd_packets", "total_backward_packets"),
	A("total_length_of_fwd_packet", "total_length_of_fwd_packets"),
	A("total_length_of_bwd_packet", "total_length_of_bwd_packets"),
	A("packet_length_min", "min_packet_length"),
	A("packet_length_max", "max_packet_length"),
	A("cwr_flag_count", "cwe_flag_count"),
	A("fwd_segment_size_avg", "avg_fwd_segment_size"),
	A("bwd_segment_size_avg", "avg_bwd_segment_size"),
	A("fwd_bytes_bulk_avg", "fwd_avg_bytes_bulk"),
	A("fwd_packet_bulk_avg", "fwd_avg_packets_bulk"),
	A("fwd_bulk_rate_avg", "fwd_avg_bulk_rate"),
	A("bwd_bytes_bulk_avg", "bwd_avg_bytes_bulk"),
	A("bwd_packet_bulk_avg", "bwd_avg_packets_bulk"),
	A("bwd_bulk_rate_avg", "bwd_avg_bulk_rate"),
	A("fwd_init_win_bytes", "init_win_bytes_forward"),
	A("bwd_init_win_bytes", "init_win_bytes_backward"),
	A("fwd_act_data_pkts", "act_data_pkt_fwd"),
	A("fwd_seg_size_min", "min_seg_size_forward"),

	/* CSE-CIC-IDS2018 (CICFlowMeter-V3) */
	A("tot_fwd_pkts", "total_fwd_packets"),
	A("tot_bwd_pkts", "total_backward_packets"),
	A("totlen_fwd_pkts", "total_length_of_fwd_packets"),
	A("totlen_bwd_pkts", "total_length_of_bwd_packets"),
	A("fwd_pkt_len_max", "fwd_packet_length_max"),
	A("fwd_pkt_len_min", "fwd_packet_length_min"),
	A("fwd_pkt_len_mean", "fwd_packet_length_mean"),
	A("fwd_pkt_len_std", "fwd_packet_length_std"),
	A("bwd_pkt_len_max", "bwd_packet_length_max"),
	A("bwd_pkt_len_min", "bwd_packet_length_min"),
	A("bwd_pkt_len_mean", "bwd_packet_length_mean"),
	A("bwd_pkt_len_std", "bwd_packet_length_std"),
	A("flow_byts_s", "flow_bytes_s"),
	A("flow_pkts_s", "flow_packets_s"),
	A("fwd_iat_tot", "fwd_iat_total"),
	A("bwd_iat_tot", "bwd_iat_total"),
	A("fwd_header_len", "fwd_header_length"),
	A("bwd_header_len", "bwd_header_length"),
	A("fwd_pkts_s", "fwd_packets_s"),
	A("bwd_pkts_s", "bwd_packets_s"),
	A("pkt_len_min", "min_packet_length"),
	A("pkt_len_max", "max_packet_length"),
	A("pkt_len_mean", "packet_length_mean"),
	A("pkt_len_std", "packet_length_std"),
	A("pkt_len_var", "packet_length_variance"),
	A("fin_flag_cnt", "fin_flag_count"),
	A("syn_flag_cnt", "syn_flag_count"),
	A("rst_flag_cnt", "rst_flag_count"),
	A("psh_flag_cnt", "psh_flag_count"),
	A("ack_flag_cnt", "ack_flag_count"),
	A("urg_flag_cnt", "urg_flag_count"),
	A("ece_flag_cnt", "ece_flag_count"),
	A("pkt_size_avg", "average_packet_size"),
	A("fwd_seg_size_avg", "avg_fwd_segment_size"),
	A("bwd_seg_size_avg", "avg_bwd_segment_size"),
	A("fwd_byts_b_avg", "fwd_avg_bytes_bulk"),
	A("fwd_pkts_b_avg", "fwd_avg_packets_bulk"),
	A("fwd_blk_rate_avg", "fwd_avg_bulk_rate"),
	A("bwd_byts_b_avg", "bwd_avg_bytes_bulk"),
	A("bwd_pkts_b_avg", "bwd_avg_packets_bulk"),
	A("bwd_blk_rate_avg", "bwd_avg_bulk_rate"),
	A("subflow_fwd_pkts", "subflow_fwd_packets"),
	A("subflow_fwd_byts", "subflow_fwd_bytes"),
	A("subflow_bwd_pkts", "subflow_bwd_packets"),
	A("subflow_bwd_byts", "subflow_bwd_bytes"),
	A("init_fwd_win_byts", "init_win_bytes_forward"),
	A("init_bwd_win_byts", "init_win_bytes_backward"),
};

size_t
canonical_normalise(const char *name, size_t len, char *out, size_t outsize)
{
	size_t		n = 0;
	int			pending_sep = 0;

	if (outsize == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
	{
		char		c = name[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		{
			if (pending_sep && n > 0 && n + 1 < outsize)
				out[n++] = '_';
			pending_sep = 0;
			if (n + 1 < outsize)
				out[n++] = c;
		}
		else
			pending_sep = 1;
	}
	out[n] = '\0';
	return n;
}

const char *
canonical_name(const char *normalised, CanonicalKind *kind)
{
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++)
	{
		if (strcmp(entries[i].name, normalised) == 0)
		{
			*kind = entries[i].kind;
			return entries[i].canonical;
		}
	}
	*kind = CANON_UNKNOWN;
	return normalised;
}

/* ---- labels ---- */

typedef struct LabelEntry
{
	const char *key;			/* alphanumeric words, lower case, one space */
	const char *canonical;		/* the CIC-IDS2017 original release's label */
} LabelEntry;

static const LabelEntry labels[] = {
	{"benign", "BENIGN"},
	{"bot", "Bot"}, {"botnet", "Bot"},
	{"ddos", "DDoS"}, {"ddos attacks loic http", "DDoS"},
	{"ddos attack hoic", "DDoS"}, {"ddos attack loic udp", "DDoS"},
	{"dos goldeneye", "DoS GoldenEye"}, {"dos attacks goldeneye", "DoS GoldenEye"},
	{"dos hulk", "DoS Hulk"}, {"dos attacks hulk", "DoS Hulk"},
	{"dos slowhttptest", "DoS Slowhttptest"}, {"dos attacks slowhttptest", "DoS Slowhttptest"},
	{"dos slowloris", "DoS slowloris"}, {"dos attacks slowloris", "DoS slowloris"},
	{"ftp patator", "FTP-Patator"}, {"ftp bruteforce", "FTP-Patator"},
	{"ssh patator", "SSH-Patator"}, {"ssh bruteforce", "SSH-Patator"},
	{"heartbleed", "Heartbleed"},
	{"infiltration", "Infiltration"}, {"infilteration", "Infiltration"},
	{"portscan", "PortScan"},
	{"web attack brute force", "Web Attack - Brute Force"},
	{"brute force web", "Web Attack - Brute Force"},
	{"web attack xss", "Web Attack - XSS"}, {"brute force xss", "Web Attack - XSS"},
	{"web attack sql injection", "Web Attack - Sql Injection"},
	{"sql injection", "Web Attack - Sql Injection"},
};

/* the alphanumeric words of s, lower case, joined by one space */
static size_t
label_key(const char *s, size_t len, char *out, size_t outsize)
{
	size_t		n = 0;
	int			sep = 0;

	for (size_t i = 0; i < len && n + 2 < outsize; i++)
	{
		char		c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		{
			if (sep && n > 0)
				out[n++] = ' ';
			sep = 0;
			out[n++] = c;
		}
		else
			sep = 1;
	}
	out[n] = '\0';
	return n;
}

size_t
canonical_label(const char *label, size_t len, char *out, size_t outsize)
{
	static const char attempted[] = " attempted";
	char		key[256];
	size_t		n = label_key(label, len, key, sizeof(key));
	int			is_attempted = 0;

	/* the improved release's "X - Attempted": X mapped, the suffix kept */
	if (n > sizeof(attempted) - 1 &&
		strcmp(key + n - (sizeof(attempted) - 1), attempted) == 0)
	{
		is_attempted = 1;
		key[n - (sizeof(attempted) - 1)] = '\0';
	}
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
	{
		if (strcmp(labels[i].key, key) != 0)
			continue;
		n = strlen(labels[i].canonical) + (is_attempted ? 12 : 0);
		if (n + 1 > outsize)
			return 0;
		strcpy(out, labels[i].canonical);
		if (is_attempted)
			strcat(out, " - Attempted");
		return n;
	}
	return 0;
}

/* edit distance of two short strings (at most 63 bytes each are compared) */
static int
edit_distance(const char *a, const char *b)
{
	int			row[64];
	size_t		la = strlen(a) > 63 ? 63 : strlen(a);
	size_t		lb = strlen(b) > 63 ? 63 : strlen(b);

	for (size_t j = 0; j <= lb; j++)
		row[j] = (int) j;
	for (size_t i = 1; i <= la; i++)
	{
		int			diag = row[0];

		row[0] = (int) i;
		for (size_t j = 1; j <= lb; j++)
		{
			int			up = row[j];
			int			best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *
canonical_nearest(const char *normalised, int *distance)
{
	const char *best = NULL;

	*distance = 1 << 30;
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++)
	{
		int			d = edit_distance(normalised, entries[i].name);

		if (d < *distance)
		{
			*distance = d;
			best = entries[i].canonical;
		}
	}
	return best;
}
