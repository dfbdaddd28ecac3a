#!/usr/bin/env bash
# Hostile input, round four, where one session is not enough:
# - one feeder's open transaction does not stop another feeder's inserts
#   of other sources (and does hold back the same source's);
# - the scan trigger's memory does not grow with the sources of a
#   statement (20,000 sources: it peaked above 500 MB in 1.2);
# - NOTIFY payloads cut a long class name on a character boundary.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
DB=nids_hostile4_test
work=$(mktemp -d)
holder=
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	rm -rf "$work"
	dropdb --if-exists "$DB" >/dev/null 2>&1
}
trap cleanup EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

createdb "$DB" || exit 1
q "CREATE EXTENSION nids" || exit 1
psql -X -q -d "$DB" -v tbl=flows -v n=1200 -v seed=0.44 -v shift=1.0 -f test/fixtures/flows.sql >/dev/null || exit 1
# a class whose name is longer than a payload keeps (200 bytes), in two-byte characters
long="Überwachung-$(printf 'ü%.0s' $(seq 1 120))"
q "UPDATE flows SET label = '$long' WHERE label = 'DDoS'" || exit 1
q "SELECT nids_train('flows', model => 'h4', options => '{\"exclude\": [\"flow_number\"], \"xgboost\": {\"num_boost_round\": 10}}') ? 'version'" >/dev/null || exit 1
q "CREATE ROLE h4_feeder_a IN ROLE nids_feeder; CREATE ROLE h4_feeder_b IN ROLE nids_feeder" >/dev/null 2>&1
q "CREATE TABLE live (LIKE flows, source_ip inet, destination_ip inet, \"timestamp\" timestamptz,
	predicted_label text, probability float8, novelty float8, verdict text);
   CREATE TRIGGER score BEFORE INSERT ON live FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('h4');
   CREATE TRIGGER alerts AFTER INSERT ON live REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('h4');
   CREATE TRIGGER scans AFTER INSERT ON live REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger();
   GRANT INSERT ON live TO h4_feeder_a, h4_feeder_b; GRANT SELECT ON flows TO h4_feeder_a, h4_feeder_b" >/dev/null || exit 1
# the flagged flows of one source, at one flow time
rows() {
	echo "INSERT INTO live SELECT f.*, '$1'::inet, ('10.9.0.' || (f.flow_number::int % 50))::inet,
		'2024-07-01 10:00+00'::timestamptz + f.flow_number * interval '1 s'
		FROM flows f WHERE f.label <> 'BENIGN' AND f.flow_number::int % 4 = $2"
}

# 1. locks per source: A inserts flows of 10.1.1.1 and keeps its transaction open
psql -X -q -d "$DB" -v ON_ERROR_STOP=1 >"$work/holder.out" 2>&1 <<SQL &
SET application_name = 'h4_holder';
SET ROLE h4_feeder_a;
BEGIN;
$(rows 10.1.1.1 0);
SELECT pg_sleep(30);
COMMIT;
SQL
holder=$!
for _ in $(seq 1 100); do
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'h4_holder' AND query LIKE '%pg_sleep%'")" = 1 ] && break
	sleep 0.2
done
check "the holder's insert is done and its transaction open" \
	test "$(q "SELECT state FROM pg_stat_activity WHERE application_name = 'h4_holder'")" = "active"
start=$(date +%s%N)
out=$(psql -X -q -d "$DB" -v ON_ERROR_STOP=1 2>&1 <<SQL
SET ROLE h4_feeder_b;
SET lock_timeout = '5s';
$(rows 10.2.2.2 1);
SQL
)
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "another feeder's insert of another source commits meanwhile (${ms} ms)" test $rc -eq 0
check "... at once (under 3 s; the lock timeout is 5 s)" test $ms -lt 3000
check "... and opens its incidents" test "$(q "SELECT count(*) > 0 FROM nids.alerts WHERE src_ip = '10.2.2.2'")" = t
out=$(psql -X -q -d "$DB" -v VERBOSITY=verbose 2>&1 <<SQL
SET ROLE h4_feeder_b;
SET lock_timeout = '1s';
$(rows 10.1.1.1 2);
SQL
)
check "an insert of the open transaction's source waits for it (55P03 at its lock timeout)" grep -q "ERROR:  55P03" <<<"$out"
# the holder gives up (its transaction rolls back)
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'h4_holder'" >/dev/null
wait "$holder" 2>/dev/null
holder=

# 2. the scan trigger over 20,000 sources in one statement: its memory
# stays bounded (sampled from the backend's anonymous memory)
q "CREATE TABLE sweep (source_ip inet, destination_ip inet, destination_port integer, protocol integer,
	\"timestamp\" timestamptz, syn_flag_count float8, total_backward_packets float8);
   CREATE TRIGGER scans AFTER INSERT ON sweep REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger()" >/dev/null
psql -X -q -d "$DB" -v ON_ERROR_STOP=1 >"$work/sweep.out" 2>&1 <<'SQL' &
SET application_name = 'h4_sweep';
SELECT pg_sleep(0.5);
INSERT INTO sweep SELECT ('10.' || (i / 65536) || '.' || (i / 256 % 256) || '.' || (i % 256))::inet,
	'10.200.0.1', 22, 6, '2024-07-01 10:00+00'::timestamptz + i * interval '1 ms', 1, 0
FROM generate_series(1, 20000) i;
SQL
sweep=$!
pid=
peak=0
while kill -0 "$sweep" 2>/dev/null; do
	[ -z "$pid" ] && pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'h4_sweep'")
	if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
		kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
		[ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
	fi
	sleep 0.05
done
wait "$sweep"
rc=$?
echo "# the scan trigger over 20,000 sources: backend anonymous memory peaked at $((peak / 1024)) MB"
check "20,000 sources in one statement are kept" \
	test $rc -eq 0 -a "$(q "SELECT count(*) FROM nids.scan_state")" -ge 20000
check "the backend's memory was sampled" test "$peak" -gt 0
check "and stayed under 150 MB (26 kB a source, 500 MB, before)" test "$peak" -lt $((150 * 1024))

# 3. a payload cuts the long class on a character boundary: valid UTF-8
payloads=$(psql -X -d "$DB" 2>&1 <<SQL
LISTEN nids_alerts;
$(rows 10.3.3.3 3);
SQL
)
grep -o 'with payload "{.*}" received' <<<"$payloads" | sed 's/^with payload "//; s/" received$//' >"$work/payloads"
check "incidents of the long class notified" grep -q 'Überwachung-ü' "$work/payloads"
check "every payload is valid UTF-8" iconv -f UTF-8 -t UTF-8 "$work/payloads" -o /dev/null
cut=$(grep -o '"class": "Überwachung-[ü]*"' "$work/payloads" | head -1 | sed 's/^"class": "//; s/"$//')
check "the class is cut to at most 200 bytes, on a character boundary ($(printf %s "$cut" | wc -c) bytes)" \
	test "$(printf %s "$cut" | wc -c)" -le 200 -a "$(printf %s "$cut" | wc -c)" -ge 199

q "DROP TABLE live, sweep; DROP OWNED BY h4_feeder_a, h4_feeder_b" >/dev/null
q "DROP ROLE h4_feeder_a, h4_feeder_b" >/dev/null
echo "hostile4: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
