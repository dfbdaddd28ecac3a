#!/usr/bin/env bash
# Per-source scan detection on the real sample in data/: the attempt rule
# on real CICFlowMeter counters finds the two scanning sources and no
# benign one; the same rule written as options.failed decides the same;
# the trigger fed by four parallel COPY sessions decides each scanner once.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
BIN=$(/usr/lib/postgresql/15/bin/pg_config --bindir)
LOAD=${NIDS_LOAD:-$BIN/nids-load}
DB=nids_scans_test
work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"; [ -n "${KEEP_DB:-}" ] || dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

createdb "$DB" || exit 1
q "CREATE EXTENSION nids" || exit 1
"$LOAD" -d "$DB" -t flows data/cicids2017-improved-sample.csv.gz >/dev/null || exit 1

rule="CASE WHEN protocol = 6 AND syn_flag_count > 0 OR protocol = 1 AND icmp_type = 8
	THEN NOT total_backward_packets > 0 OR (rst_flag_count > 0 AND NOT total_length_of_bwd_packets > 0) END"
check "the rule on real flows: benign attempts mostly succeed (472 attempts, 12 failed)" \
	test "$(q "SELECT count(f) || ',' || count(*) FILTER (WHERE f) FROM (SELECT $rule AS f FROM flows WHERE label = 'BENIGN') s")" = "472,12"
check "and the port scans' fail (200 of 200, 196 of 199)" \
	test "$(q "SELECT string_agg(x, ',' ORDER BY label) FROM (SELECT label, count(f) || '/' || count(*) FILTER (WHERE f) AS x
		FROM (SELECT label, $rule AS f FROM flows WHERE label IN ('PortScan', 'Infiltration - Portscan')) s GROUP BY label) t")" = "199/196,200/200"
detected=$(q "SELECT string_agg(DISTINCT host(src_ip), ',') FROM nids_scans('SELECT * FROM flows')")
check "nids_scans finds both scanning sources and no other ($detected)" test "$detected" = "172.16.0.1,192.168.10.8"
check "no source of only benign flows is flagged" \
	test "$(q "SELECT count(*) FROM nids_scans('SELECT * FROM flows') s WHERE NOT EXISTS
		(SELECT 1 FROM flows f WHERE f.source_ip = s.src_ip AND f.label ILIKE '%portscan%')")" = 0
check "the rule as options.failed decides the same, at the same attempts" \
	test "$(q "SELECT count(*) FROM ((SELECT src_ip, kind, attempts FROM nids_scans('SELECT * FROM flows')
		EXCEPT SELECT src_ip, kind, attempts FROM nids_scans('SELECT *, $rule AS f FROM flows', '{\"failed\": \"f\"}'))
		UNION ALL (SELECT src_ip, kind, attempts FROM nids_scans('SELECT *, $rule AS f FROM flows', '{\"failed\": \"f\"}')
		EXCEPT SELECT src_ip, kind, attempts FROM nids_scans('SELECT * FROM flows'))) d")" = 0

# the trigger from four parallel COPY sessions, the flows split by source
# (as a loader partitioned by source address sends them), each session's in
# time order
q "CREATE TABLE live (LIKE flows);
   CREATE TRIGGER scans AFTER INSERT ON live REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger()"
for i in 0 1 2 3; do
	psql -X -q -d "$DB" -c "\\copy (SELECT * FROM flows WHERE abs(hashtext(host(source_ip))) % 4 = $i
		ORDER BY \"timestamp\") TO '$work/part$i.csv' WITH (FORMAT csv)"
	psql -X -q -d "$DB" -v ON_ERROR_STOP=1 -c "\\copy live FROM '$work/part$i.csv' WITH (FORMAT csv)" >"$work/copy$i.out" 2>&1 &
	pids[$i]=$!
done
ok=0
for i in 0 1 2 3; do wait "${pids[$i]}" && ok=$((ok + 1)); done
check "four parallel COPY sessions succeed ($ok of 4)" test "$ok" = 4
check "each scanner is decided once per kind, at the attempt nids_scans decides" \
	test "$(q "SELECT string_agg(host(src_ip) || ' ' || class || ' ' || (reasons -> 0 ->> 'attempts'), ',' ORDER BY src_ip, class)
		FROM nids.alerts WHERE kind = 'scan'")" = \
	"$(q "SELECT string_agg(host(src_ip) || ' ' || kind || ' ' || attempts, ',' ORDER BY src_ip, kind) FROM nids_scans('SELECT * FROM flows')")"
check "the state holds one fixed-size row per source seen" \
	test "$(q "SELECT count(*) = count(DISTINCT src_ip) AND min(octet_length(state)) = max(octet_length(state)) FROM nids.scan_state")" = t

# busy hosts built from the real benign flows (their own answers and
# failures), which must never be flagged, and scans of chosen speed and
# shape injected among them, which must all be
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f test/shell/scans_inject.sql >/dev/null || exit 1
t0=$(q "SELECT min(\"timestamp\") FROM busy")
found=$(q "SELECT string_agg(DISTINCT (SELECT min(label) FROM busy b WHERE b.source_ip = s.src_ip), ',')
	FROM nids_scans('SELECT * FROM busy') s")
check "scans injected into real benign flows are found, busy hosts are not ($found)" \
	test "$found" = "scan-fast-tcp,scan-slow-tcp,scan-slow-vertical,scan-udp"
check "the fast TCP sweep at its 4th attempt, the UDP sweep at its 64th unanswered host" \
	test "$(q "SELECT string_agg((SELECT min(label) FROM busy b WHERE b.source_ip = s.src_ip) || ' ' || attempts, ',' ORDER BY src_ip)
		FROM nids_scans('SELECT * FROM busy') s WHERE src_ip IN ('10.66.0.1', '10.66.0.3')")" = "scan-fast-tcp 4,scan-udp 65"
q "CREATE TABLE busy_live (LIKE busy);
   CREATE TRIGGER scans AFTER INSERT ON busy_live REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger()"
q "DELETE FROM nids.alerts; DELETE FROM nids.scan_state"
for h in $(seq 0 3 24); do
	q "INSERT INTO busy_live SELECT * FROM busy WHERE \"timestamp\" >= '$t0'::timestamptz + interval '$h hours'
		AND \"timestamp\" < '$t0'::timestamptz + interval '$((h + 3)) hours' ORDER BY \"timestamp\""
done
q "INSERT INTO busy_live SELECT * FROM busy WHERE \"timestamp\" >= '$t0'::timestamptz + interval '27 hours' ORDER BY \"timestamp\""
check "the trigger, fed three hours a statement, decides as nids_scans does" \
	test "$(q "SELECT string_agg(host(src_ip) || ' ' || class || ' ' || (reasons -> 0 ->> 'attempts'), ',' ORDER BY src_ip, class)
		FROM nids.alerts WHERE kind = 'scan'")" = \
	"$(q "SELECT string_agg(host(src_ip) || ' ' || kind || ' ' || attempts, ',' ORDER BY src_ip, kind) FROM nids_scans('SELECT * FROM busy')")"

echo "scans: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
