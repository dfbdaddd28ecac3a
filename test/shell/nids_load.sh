#!/usr/bin/env bash
# nids-load against the throwaway cluster (PGHOST/PGPORT/PGUSER are set by
# scripts/run-tests): the three CICFlowMeter naming variants, gzip,
# Infinity/NaN/empty fields, a Windows-1252 dash, malformed files.
set -uo pipefail
LOAD=${NIDS_LOAD:-$(/usr/lib/postgresql/15/bin/pg_config --bindir)/nids-load}
DB=nids_load_test
work=$(mktemp -d)
trap 'rm -rf "$work"; dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
q() { psql -X -q -A -t -d "$DB" -c "$1"; }

createdb "$DB" || exit 1
psql -X -q -d "$DB" -c 'CREATE EXTENSION nids' || exit 1

# headers exactly as the three releases write them (shared/data/README.md)
orig=' Destination Port, Flow Duration, Total Fwd Packets, Total Backward Packets,Total Length of Fwd Packets, Total Length of Bwd Packets, Fwd Packet Length Max, Fwd Packet Length Min, Fwd Packet Length Mean, Fwd Packet Length Std,Bwd Packet Length Max, Bwd Packet Length Min, Bwd Packet Length Mean, Bwd Packet Length Std,Flow Bytes/s, Flow Packets/s, Flow IAT Mean, Flow IAT Std, Flow IAT Max, Flow IAT Min,Fwd IAT Total, Fwd IAT Mean, Fwd IAT Std, Fwd IAT Max, Fwd IAT Min,Bwd IAT Total, Bwd IAT Mean, Bwd IAT Std, Bwd IAT Max, Bwd IAT Min,Fwd PSH Flags, Bwd PSH Flags, Fwd URG Flags, Bwd URG Flags, Fwd Header Length, Bwd Header Length,Fwd Packets/s, Bwd Packets/s, Min Packet Length, Max Packet Length, Packet Length Mean, Packet Length Std, Packet Length Variance,FIN Flag Count, SYN Flag Count, RST Flag Count, PSH Flag Count, ACK Flag Count, URG Flag Count, CWE Flag Count, ECE Flag Count, Down/Up Ratio, Average Packet Size, Avg Fwd Segment Size, Avg Bwd Segment Size, Fwd Header Length,Fwd Avg Bytes/Bulk, Fwd Avg Packets/Bulk, Fwd Avg Bulk Rate, Bwd Avg Bytes/Bulk, Bwd Avg Packets/Bulk,Bwd Avg Bulk Rate,Subflow Fwd Packets, Subflow Fwd Bytes, Subflow Bwd Packets, Subflow Bwd Bytes,Init_Win_bytes_forward, Init_Win_bytes_backward, act_data_pkt_fwd, min_seg_size_forward,Active Mean, Active Std, Active Max, Active Min,Idle Mean, Idle Std, Idle Max, Idle Min, Label'
improved='id,Flow ID,Src IP,Src Port,Dst IP,Dst Port,Protocol,Timestamp,Flow Duration,Total Fwd Packet,Total Bwd packets,Total Length of Fwd Packet,Total Length of Bwd Packet,Fwd Packet Length Max,Fwd Packet Length Min,Fwd Packet Length Mean,Fwd Packet Length Std,Bwd Packet Length Max,Bwd Packet Length Min,Bwd Packet Length Mean,Bwd Packet Length Std,Flow Bytes/s,Flow Packets/s,Flow IAT Mean,Flow IAT Std,Flow IAT Max,Flow IAT Min,Fwd IAT Total,Fwd IAT Mean,Fwd IAT Std,Fwd IAT Max,Fwd IAT Min,Bwd IAT Total,Bwd IAT Mean,Bwd IAT Std,Bwd IAT Max,Bwd IAT Min,Fwd PSH Flags,Bwd PSH Flags,Fwd URG Flags,Bwd URG Flags,Fwd RST Flags,Bwd RST Flags,Fwd Header Length,Bwd Header Length,Fwd Packets/s,Bwd Packets/s,Packet Length Min,Packet Length Max,Packet Length Mean,Packet Length Std,Packet Length Variance,FIN Flag Count,SYN Flag Count,RST Flag Count,PSH Flag Count,ACK Flag Count,URG Flag Count,CWR Flag Count,ECE Flag Count,Down/Up Ratio,Average Packet Size,Fwd Segment Size Avg,Bwd Segment Size Avg,Fwd Bytes/Bulk Avg,Fwd Packet/Bulk Avg,Fwd Bulk Rate Avg,Bwd Bytes/Bulk Avg,Bwd Packet/Bulk Avg,Bwd Bulk Rate Avg,Subflow Fwd Packets,Subflow Fwd Bytes,Subflow Bwd Packets,Subflow Bwd Bytes,FWD Init Win Bytes,Bwd Init Win Bytes,Fwd Act Data Pkts,Fwd Seg Size Min,Active Mean,Active Std,Active Max,Active Min,Idle Mean,Idle Std,Idle Max,Idle Min,ICMP Code,ICMP Type,Total TCP Flow Time,Label,Attempted Category'
cse='Dst Port,Protocol,Flow Duration,Tot Fwd Pkts,Tot Bwd Pkts,TotLen Fwd Pkts,TotLen Bwd Pkts,Fwd Pkt Len Max,Fwd Pkt Len Min,Fwd Pkt Len Mean,Fwd Pkt Len Std,Bwd Pkt Len Max,Bwd Pkt Len Min,Bwd Pkt Len Mean,Bwd Pkt Len Std,Flow Byts/s,Flow Pkts/s,Flow IAT Mean,Flow IAT Std,Flow IAT Max,Flow IAT Min,Fwd IAT Tot,Fwd IAT Mean,Fwd IAT Std,Fwd IAT Max,Fwd IAT Min,Bwd IAT Tot,Bwd IAT Mean,Bwd IAT Std,Bwd IAT Max,Bwd IAT Min,Fwd PSH Flags,Bwd PSH Flags,Fwd URG Flags,Bwd URG Flags,Fwd Header Len,Bwd Header Len,Fwd Pkts/s,Bwd Pkts/s,Pkt Len Min,Pkt Len Max,Pkt Len Mean,Pkt Len Std,Pkt Len Var,FIN Flag Cnt,SYN Flag Cnt,RST Flag Cnt,PSH Flag Cnt,ACK Flag Cnt,URG Flag Cnt,CWE Flag Count,ECE Flag Cnt,Down/Up Ratio,Pkt Size Avg,Fwd Seg Size Avg,Bwd Seg Size Avg,Fwd Byts/b Avg,Fwd Pkts/b Avg,Fwd Blk Rate Avg,Bwd Byts/b Avg,Bwd Pkts/b Avg,Bwd Blk Rate Avg,Subflow Fwd Pkts,Subflow Fwd Byts,Subflow Bwd Pkts,Subflow Bwd Byts,Init Fwd Win Byts,Init Bwd Win Byts,Fwd Act Data Pkts,Fwd Seg Size Min,Active Mean,Active Std,Active Max,Active Min,Idle Mean,Idle Std,Idle Max,Idle Min,Label'

# rows: numeric columns from a formula; identifiers, label and the
# improved release's Attempted Category where each variant has them
make_csv() { # header, rows, label-of-row awk expression, file[, timestamp expression]
	local header=$1 rows=$2 labels=$3 out=$4 stamp=${5:-'"2017-07-07 11:" (i % 60) ":00.0"'}
	printf '%s\r\n' "$header" >"$out"
	awk -v n="$rows" -v header="$header" "BEGIN {
		nf = split(header, h, \",\");
		for (i = 1; i <= n; i++) {
			line = \"\";
			for (j = 1; j <= nf; j++) {
				name = h[j]; gsub(/^ +| +\$/, \"\", name);
				if (name == \"Label\") v = $labels;
				else if (name == \"Flow ID\") v = \"10.0.0.\" i \"-10.0.0.1-\" i \"-80-6\";
				else if (name == \"Src IP\" || name == \"Dst IP\" || name == \"Source IP\" || name == \"Destination IP\") v = \"192.168.10.\" (i % 250);
				else if (name == \"Timestamp\") v = $stamp;
				else if (name == \"Attempted Category\") v = -1;
				else if (name == \"Flow Bytes/s\" && i % 17 == 0) v = \"Infinity\";
				else if (name == \"Flow Packets/s\" && i % 19 == 0) v = \"NaN\";
				else if (name == \"Idle Std\" && i % 13 == 0) v = \"\";
				else v = ((i * (j + 3)) % 97) * (i % 2 ? 1 : 3) + (j == 1 ? (i % 2) * 1000 : 0);
				line = line (j > 1 ? \",\" : \"\") v;
			}
			printf \"%s\\r\\n\", line;
		}
	}" >>"$out"
}
make_csv "$orig" 300 '(i % 2 ? "BENIGN" : "Web Attack \226 Brute Force")' "$work/original.csv"
make_csv "$improved" 200 '(i % 2 ? "BENIGN" : "Web Attack \357\277\275 Brute Force")' "$work/improved.csv"
make_csv "$cse" 150 '(i % 2 ? "Benign" : "Brute Force -Web")' "$work/cse2018.csv"
gzip -c "$work/cse2018.csv" >"$work/cse2018.csv.gz"

out=$("$LOAD" -d "$DB" -t flows "$work/original.csv" "$work/improved.csv" 2>&1)
check "loads the original and improved releases into one table" test $? -eq 0
check "prints rows per file" grep -q "original.csv: 300 rows loaded into flows" <<<"$out"
check "counts every row" test "$(q 'SELECT count(*) FROM flows')" = 500
check "canonical names: the second Fwd Header Length is fwd_header_length_1" \
	test "$(q "SELECT count(*) FROM information_schema.columns WHERE table_name = 'flows' AND column_name IN ('fwd_header_length', 'fwd_header_length_1', 'destination_port', 'total_fwd_packets', 'flow_bytes_s', 'init_win_bytes_forward', 'cwe_flag_count')")" = 7
check "improved names map to the same columns (Dst Port, Total Fwd Packet)" \
	test "$(q 'SELECT count(*) FROM flows WHERE destination_port IS NOT NULL AND total_fwd_packets IS NOT NULL')" = 500
check "features only the improved release has keep their own names" \
	test "$(q "SELECT count(*) FROM flows WHERE protocol IS NOT NULL AND fwd_rst_flags IS NOT NULL")" = 200
check "addresses are inet, the source port integer, other identifiers and the label text, features float8" \
	test "$(q "SELECT string_agg(column_name || ' ' || data_type, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = 'flows' AND column_name IN ('source_ip', 'destination_ip', 'source_port', 'flow_id', 'label', 'flow_duration', 'attempted_category')")" = "attempted_category text,destination_ip inet,flow_duration double precision,flow_id text,label text,source_ip inet,source_port integer"
check "Infinity and NaN load as values, empty fields as NULL" \
	test "$(q "SELECT count(*) FILTER (WHERE flow_bytes_s = 'Infinity') > 0 AND count(*) FILTER (WHERE flow_packets_s = 'NaN') > 0 AND count(*) FILTER (WHERE idle_std IS NULL) > 0 FROM flows")" = t
check "a Windows-1252 or broken dash in a label becomes '-'" \
	test "$(q "SELECT count(*) FROM flows WHERE label = 'Web Attack - Brute Force'")" = 250

out=$("$LOAD" -d "$DB" -t flows2018 "$work/cse2018.csv.gz" 2>&1)
check "loads gzip and the CSE-CIC-IDS2018 names" test "$(q 'SELECT count(*) FROM flows2018')" = 150
check "2018 names are canonical too (Tot Fwd Pkts, Flow Byts/s, Init Fwd Win Byts)" \
	test "$(q "SELECT count(*) FROM information_schema.columns WHERE table_name = 'flows2018' AND column_name IN ('total_fwd_packets', 'flow_bytes_s', 'init_win_bytes_forward', 'average_packet_size')")" = 4

# a model trained on one release scores a table loaded from another
q "SELECT nids_train('flows', options => '{\"xgboost\": {\"num_boost_round\": 5}}') ? 'version'" >/dev/null
check "a model trained on CIC-IDS2017 scores CSE-CIC-IDS2018 rows" \
	test "$(q 'SELECT count(nids_classify(nids_features(f))) FROM flows2018 f')" = 150

# labels of every release in one spelling; --raw-labels keeps them
make_csv "$improved" 40 '(i % 4 == 0 ? "Botnet" : i % 4 == 1 ? "Portscan - Attempted" : i % 4 == 2 ? "DoS attacks-Hulk" : "Infiltration \226 Portscan")' "$work/labels.csv"
"$LOAD" -d "$DB" -t labels "$work/labels.csv" >/dev/null 2>&1
check "labels are harmonised: Botnet -> Bot, Portscan - Attempted -> PortScan - Attempted, DoS attacks-Hulk -> DoS Hulk" \
	test "$(q "SELECT string_agg(DISTINCT label, '|' ORDER BY label) FROM labels")" = "Bot|DoS Hulk|Infiltration - Portscan|PortScan - Attempted"
check "2018 labels too: Benign -> BENIGN, Brute Force -Web -> Web Attack - Brute Force" \
	test "$(q "SELECT string_agg(DISTINCT label, '|' ORDER BY label) FROM flows2018")" = "BENIGN|Web Attack - Brute Force"
"$LOAD" -d "$DB" --raw-labels -t raw_labels "$work/labels.csv" >/dev/null 2>&1
check "--raw-labels keeps them as written (but for the dash)" \
	test "$(q "SELECT string_agg(DISTINCT label, '|' ORDER BY label) FROM raw_labels")" = "Botnet|DoS attacks-Hulk|Infiltration - Portscan|Portscan - Attempted"

# timestamps: timestamptz in each release's format, read in the session's TimeZone
check "the improved release's timestamps are timestamptz" \
	test "$(q "SELECT data_type FROM information_schema.columns WHERE table_name = 'flows' AND column_name = 'timestamp'")" = "timestamp with time zone"
check "and keep their value (2017-07-07 11:05:00)" \
	test "$(q "SELECT count(*) FROM flows WHERE timestamp = '2017-07-07 11:05:00'")" = 4
cse_ts=$(sed 's/^Dst Port,Protocol,/Dst Port,Protocol,Timestamp,/' <<<"$cse")
make_csv "$cse_ts" 20 '"Benign"' "$work/cse_ts.csv" '(i < 10 ? "0" i : i) "/02/2018 08:31:01"'
PGTZ=UTC "$LOAD" -d "$DB" -t cse_ts "$work/cse_ts.csv" >/dev/null 2>&1
check "CSE-CIC-IDS2018 timestamps are day first (14/02/2018 08:31:01)" \
	test "$(PGTZ=UTC q "SELECT count(*) FROM cse_ts WHERE timestamp = '2018-02-14 08:31:01+00'")" = 1
orig_ts="Flow ID, Source IP, Timestamp,$orig"
make_csv "$orig_ts" 20 '"BENIGN"' "$work/orig_ts.csv" '(i % 2 ? "3/7/2017 8:55" : "7/7/2017 3:30:01 PM")'
PGTZ=UTC "$LOAD" -d "$DB" -t orig_ts "$work/orig_ts.csv" >/dev/null 2>&1
check "the original release's are day first, 12-hour with PM" \
	test "$(PGTZ=UTC q "SELECT string_agg(DISTINCT timestamp::text, '|' ORDER BY timestamp::text) FROM orig_ts")" = "2017-07-03 08:55:00+00|2017-07-07 15:30:01+00"
make_csv "$improved" 10 '"BENIGN"' "$work/odd_ts.csv" '"yesterday"'
"$LOAD" -d "$DB" -t odd_ts "$work/odd_ts.csv" >/dev/null 2>&1
check "a timestamp that parses in no release's format stays text" \
	test "$(q "SELECT data_type || ':' || min(timestamp) FROM information_schema.columns, odd_ts WHERE table_name = 'odd_ts' AND column_name = 'timestamp' GROUP BY data_type")" = "text:yesterday"

# headers that are not CICFlowMeter's are refused; unknown columns named
sed 's/,/;/g' "$work/original.csv" >"$work/semicolon.csv"
out=$("$LOAD" -d "$DB" -t semi "$work/semicolon.csv" 2>&1)
check "a ';' separated file is refused (exit 1)" test $? -eq 1
check "with the file, line and reason" grep -q "semicolon.csv:1: the header is one column: fields must be separated by ','" <<<"$out"
check "and no table is made" test "$(q "SELECT to_regclass('semi') IS NULL")" = t
printf 'a,b,c,Label\r\n1,2,3,x\r\n' >"$work/foreign.csv"
out=$("$LOAD" -d "$DB" -t foreign "$work/foreign.csv" 2>&1)
check "a header with too few known flow features is refused" grep -q "foreign.csv:1: the header names 0 CICFlowMeter flow features (of 4 columns); at least 10 are expected" <<<"$out"
sed '1s/ Flow Duration/ Flow Duraton/' "$work/original.csv" >"$work/typo.csv"
out=$("$LOAD" -d "$DB" -t typo "$work/typo.csv" 2>&1)
check "a header typo loads, with a warning naming the nearest known name" \
	grep -q 'warning: unknown column " Flow Duraton" loaded as flow_duraton; did you mean flow_duration?' <<<"$out"

# malformed files: refused with the file and line, nothing of them loaded
cp "$work/original.csv" "$work/bad_number.csv"
sed -i '4s/^[^,]*,/80,abc/' "$work/bad_number.csv"
out=$("$LOAD" -d "$DB" -t flows "$work/bad_number.csv" 2>&1)
rc=$?
check "a bad number fails the load" test $rc -ne 0
check "and names the file and line" grep -q "bad_number.csv:4:" <<<"$out"
check "and loads nothing of that file" test "$(q 'SELECT count(*) FROM flows')" = 500
awk -F, 'NR == 5 {OFS = ","; $3 = "192.168.10.300"} {print}' "$work/improved.csv" >"$work/bad_address.csv"
out=$("$LOAD" -d "$DB" -t flows "$work/bad_address.csv" 2>&1)
check "a malformed address is refused with its file, line and column" \
	grep -q 'bad_address.csv:5: column "source_ip": "192.168.10.300" is not an IP address' <<<"$out"
head -n 10 "$work/original.csv" >"$work/short_row.csv"
printf '1,2,3\r\n' >>"$work/short_row.csv"
out=$("$LOAD" -d "$DB" -t newtable "$work/short_row.csv" 2>&1)
check "a row with too few fields is refused with its line" grep -q "short_row.csv:11: expected 79 fields, found 3" <<<"$out"
check "and a table created for that file is not left behind" test "$(q "SELECT to_regclass('newtable') IS NULL")" = t
out=$("$LOAD" -d "$DB" -t flows "$work/does_not_exist.csv" 2>&1)
check "a missing file is reported" grep -q "does_not_exist.csv: cannot open" <<<"$out"
: >"$work/empty.csv"
out=$("$LOAD" -d "$DB" -t flows "$work/empty.csv" 2>&1)
check "an empty file is reported" grep -q "no header" <<<"$out"
out=$("$LOAD" -d "$DB" 2>&1)
check "usage without -t" test $? -eq 2

echo "nids-load: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
