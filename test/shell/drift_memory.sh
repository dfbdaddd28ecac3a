#!/usr/bin/env bash
# ks_drift keeps the backend's private memory flat over windows whose values
# are detoasted into copies: float8[] vectors short enough to be stored with
# a one-byte header, and numeric columns.  1M rows must not grow it by tens
# of megabytes.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
DB=nids_drift_memory_test
trap 'dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

createdb "$DB" || exit 1
q "CREATE EXTENSION nids" || exit 1
q "CREATE TABLE f AS SELECT (g % 97)::float8 AS destination_port, (g % 13)::float8 AS total_fwd_packets,
	(g % 5)::float8 AS syn_flag_count,
	CASE WHEN g % 3 = 0 THEN 'BENIGN' WHEN g % 3 = 1 THEN 'DDoS' ELSE 'PortScan' END AS label
	FROM generate_series(1, 3000) g" >/dev/null
q "SELECT nids_train('f', options => '{\"xgboost\": {\"num_boost_round\": 5}}') ? 'version'" >/dev/null
n=$(q "SELECT array_length(feature_names, 1) FROM nids.models WHERE name = 'default'")
q "CREATE TABLE w AS SELECT array_fill(g::float8, ARRAY[$n]) AS v FROM generate_series(1, 1000000) g" >/dev/null
check "the window's vectors are stored short (under 127 bytes)" test "$(q "SELECT pg_column_size(v) FROM w LIMIT 1")" -lt 127
q "CREATE TABLE wn AS SELECT (g % 97)::numeric AS destination_port, (g % 13)::numeric AS total_fwd_packets,
	(g % 5)::numeric AS syn_flag_count FROM generate_series(1, 1000000) g" >/dev/null

# growth WINDOW_QUERY: runs ks_drift on it in a new backend and prints how
# much that backend's private memory grew at most, in kB
growth() {
	local out job pid="" base peak v
	out=$(mktemp)
	psql -X -q -A -t -d "$DB" -c "SELECT pg_backend_pid()" -c "SELECT pg_sleep(0.5)" \
		-c "SELECT count(*) FROM ks_drift('$1')" >"$out" 2>&1 &
	job=$!
	for _ in $(seq 50); do
		pid=$(head -1 "$out")
		[ -n "$pid" ] && break
		sleep 0.1
	done
	base=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null)
	peak=$base
	while kill -0 "$job" 2>/dev/null; do
		v=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null)
		[ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
		sleep 0.05
	done
	wait "$job"
	grep -qx "$n" "$out" || echo "ks_drift did not read the window: $(cat "$out")" >&2
	rm -f "$out"
	echo $((peak - base))
}

g=$(growth "SELECT v FROM w")
echo "# float8[] window: private memory grew by $g kB over 1M rows"
check "a window of short float8[] vectors grows private memory by less than 20 MB" test "$g" -lt 20480
g=$(growth "SELECT * FROM wn")
echo "# numeric window: private memory grew by $g kB over 1M rows"
check "a window of numeric columns grows private memory by less than 20 MB" test "$g" -lt 20480

echo "drift memory: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
