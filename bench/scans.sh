#!/usr/bin/env bash
# Per-source scan detection, in one run: nids (nids_scans) against TRW as
# the paper has it, and Zeek- and Snort-style detectors (bench/scans.py),
# over the same connection attempts: on real scanning sources; on busy
# hosts made of real benign flows (NAT, resolver, P2P) with TCP and UDP
# scans of chosen speed and shape injected (test/shell/scans_inject.sql);
# then the cost of the scan trigger on a COPY of 100k flows, and the state
# size per source.
#   bench/scans.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
#   SCANS2018=file           also the CSE-CIC-IDS2018 sample (NMAP Portscan)
. "$(dirname "$0")/common.sh"
ROWS=${ROWS:-100000}
ATTEMPT="CASE WHEN protocol = 6 AND syn_flag_count > 0 OR protocol = 17 OR protocol = 1 AND (icmp_type IS NULL OR icmp_type = 8) THEN true ELSE false END"
FAILED="(NOT total_backward_packets > 0 OR (rst_flag_count > 0 AND NOT total_length_of_bwd_packets > 0))"
SCANNER="label ILIKE '%portscan%' OR label ILIKE '%nmap%' OR label LIKE 'scan-%'"

compare() { # table: nids vs the three on its rows
	local t=$1
	P -c "\\copy (SELECT host(source_ip), host(destination_ip), destination_port::int, extract(epoch FROM \"timestamp\"),
		$FAILED, bool_or($SCANNER) OVER (PARTITION BY source_ip), protocol = 6 FROM $t
		WHERE $ATTEMPT AND source_ip IS NOT NULL AND destination_ip IS NOT NULL AND \"timestamp\" IS NOT NULL)
		TO '$BENCH_TMP/$t.attempts' WITH (FORMAT csv)"
	P -c "\\copy (SELECT host(src_ip), attempts FROM nids_scans('SELECT * FROM $t')) TO '$BENCH_TMP/$t.nids' WITH (FORMAT csv)"
	/usr/bin/python3 bench/scans.py "$BENCH_TMP/$t.attempts" "$BENCH_TMP/$t.nids"
}

echo
echo "1. real scanning sources, in time order with their benign neighbours (the data given)"
compare flows
if [ -n "${SCANS2018:-}" ]; then
	"$(/usr/lib/postgresql/15/bin/pg_config --bindir)/nids-load" -t flows2018 "$SCANS2018" >/dev/null
	echo "   CSE-CIC-IDS2018 sample ($SCANS2018)"
	compare flows2018
fi

echo
echo "2. busy hosts made of the real benign flows (NAT, resolver, P2P: never scanners) and TCP and UDP scans of chosen speed and shape"
P -f test/shell/scans_inject.sql >/dev/null
compare busy

echo
echo "3. cost: COPY of $ROWS flows with nids_scan_trigger, and the state per source"
P -c "SELECT setseed(0.3)" -c "CREATE TABLE src AS SELECT f.* FROM flows f, generate_series(1, ceil($ROWS / (SELECT count(*) FROM flows)::float8)::int) ORDER BY random() LIMIT $ROWS" >/dev/null
P -c "\\copy (SELECT * FROM src ORDER BY \"timestamp\") TO '$BENCH_TMP/flows.copy'"
cols=$(P -At -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'src'::regclass AND attnum > 0 AND NOT attisdropped")
P -c "CREATE TABLE plain (LIKE src)" -c "CREATE TABLE scanned (LIKE src)" \
  -c "CREATE TRIGGER scans AFTER INSERT ON scanned REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger()"
run() {
	P -c "TRUNCATE $1" -c "DELETE FROM nids.scan_state" -c "DELETE FROM nids.alerts" >/dev/null
	P -At -c "\\timing on" -c "\\copy $1 ($cols) FROM '$BENCH_TMP/flows.copy'" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{print $1 / 1000}'
}
stats() { sort -n | awk '{a[NR] = $1} END {printf "%.3f %.3f %.3f", a[1], a[int((NR + 1) / 2)], a[NR]}'; }
for _ in 1 2 3 4 5; do echo "plain $(run plain)"; echo "scanned $(run scanned)"; done >"$BENCH_TMP/times"
read -r plo pmed phi <<<"$(awk '$1 == "plain" {print $2}' "$BENCH_TMP/times" | stats)"
read -r slo smed shi <<<"$(awk '$1 == "scanned" {print $2}' "$BENCH_TMP/times" | stats)"
printf '%-32s %8s %8s %8s\n' "" "min s" "median s" "max s"
printf '%-32s %8.3f %8.3f %8.3f\n' "plain table" "$plo" "$pmed" "$phi"
printf '%-32s %8.3f %8.3f %8.3f\n' "with nids_scan_trigger" "$slo" "$smed" "$shi"
awk -v s="$smed" -v p="$pmed" 'BEGIN {printf "the scan trigger adds %.3f s = %.2fx a plain COPY (goal <= 0.25x)\n", s - p, (s - p) / p}'
P -At -F ' ' -c "SELECT 'tracked sources', count(*), 'state bytes per source', max(octet_length(state)),
	'table bytes per source', pg_total_relation_size('nids.scan_state') / greatest(count(*), 1) FROM nids.scan_state"
