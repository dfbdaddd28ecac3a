#!/usr/bin/env bash
# Incidents end to end on the real sample in data/: flows streamed in time
# order through the scoring and alert triggers (as COPY from four parallel
# sessions) become incidents with no lost or doubled counts; NOTIFY
# nids_alerts carries a small JSON payload; nids-alerts, a real client
# LISTENing, writes one EVE line per new or changed incident, each of
# which parses and names an incident, and after a restart with its state
# file it writes only what changed.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
BIN=$(/usr/lib/postgresql/15/bin/pg_config --bindir)
LOAD=${NIDS_LOAD:-$BIN/nids-load}
ALERTS=${NIDS_ALERTS:-$BIN/nids-alerts}
DB=nids_alerts_test
work=$(mktemp -d)
chmod 755 "$work"
client=
cleanup() {
	[ -n "$client" ] && kill "$client" 2>/dev/null
	rm -rf "$work"
	dropdb --if-exists "$DB" >/dev/null 2>&1
}
trap cleanup EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

createdb "$DB" || exit 1
q "CREATE EXTENSION nids" || exit 1
"$LOAD" -d "$DB" -t flows data/cicids2017-improved-sample.csv.gz >/dev/null || exit 1
q "SELECT nids_train('flows', model => 'default', options => '{\"xgboost\": {\"num_boost_round\": 20}}') ? 'version'" >/dev/null
q "CREATE TABLE live (LIKE flows, predicted_label text, probability float8, novelty float8, verdict text);
   CREATE TRIGGER score BEFORE INSERT ON live FOR EACH ROW EXECUTE FUNCTION nids_score_trigger();
   CREATE TRIGGER alerts AFTER INSERT ON live REFERENCING NEW TABLE AS new_flows
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger()" >/dev/null

# the client listens before any flow arrives
"$ALERTS" -d "$DB" -o "$work/eve.json" -s "$work/state" --poll 1 2>"$work/client.err" &
client=$!
sleep 1

# four sessions COPY the flows at once, each a quarter of every source's
# flows, in time order within each session
q "COPY (SELECT * FROM flows ORDER BY \"timestamp\") TO '$work/all.csv' WITH (FORMAT csv)" 2>/dev/null ||
	psql -X -q -d "$DB" -c "\\copy (SELECT * FROM flows ORDER BY \"timestamp\") TO '$work/all.csv' WITH (FORMAT csv)"
cols=$(q "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 'flows'::regclass AND attnum > 0 AND NOT attisdropped")
for i in 0 1 2 3; do
	awk -v i="$i" 'NR % 4 == i' "$work/all.csv" >"$work/part$i.csv"
	psql -X -q -d "$DB" -v ON_ERROR_STOP=1 -c "\\copy live ($cols) FROM '$work/part$i.csv' WITH (FORMAT csv)" \
		>"$work/copy$i.out" 2>&1 &
	pids[$i]=$!
done
copies_ok=0
for i in 0 1 2 3; do
	wait "${pids[$i]}" && copies_ok=$((copies_ok + 1))
done
check "four parallel COPY sessions succeed ($copies_ok of 4)" test "$copies_ok" = 4
check "every flow is in" test "$(q "SELECT count(*) FROM live")" = "$(q "SELECT count(*) FROM flows")"
flagged=$(q "SELECT count(*) FROM live WHERE verdict <> 'benign'")
check "no flagged flow lost or counted twice ($flagged flagged)" \
	test "$(q "SELECT coalesce(sum(flows), 0) + coalesce((SELECT sum(flows) FROM nids.alert_counters), 0) FROM nids.alerts")" = "$flagged"
check "no two incidents of one source, verdict and class overlap within the gap" \
	test "$(q "SELECT count(*) FROM nids.alerts a JOIN nids.alerts b ON a.alert_id < b.alert_id
		AND a.src_ip = b.src_ip AND a.class = b.class AND a.verdict = b.verdict AND a.kind = b.kind
		AND a.first_seen <= b.last_seen + interval '10 min' AND b.first_seen <= a.last_seen + interval '10 min'")" = 0
incidents=$(q "SELECT count(*) FROM nids.alerts")
check "flows become incidents, not one alert per flow ($flagged flows, $incidents incidents)" \
	test "$incidents" -gt 0 -a "$((incidents * 10))" -lt "$flagged"
check "destinations and ports are the distinct ones of each incident" \
	test "$(q "SELECT count(*) FROM nids.alerts a WHERE destinations <> (SELECT count(*) FROM nids.alert_destinations d WHERE d.alert_id = a.alert_id)
		OR ports <> (SELECT count(*) FROM nids.alert_ports p WHERE p.alert_id = a.alert_id)")" = 0

# the client has written every incident
for _ in $(seq 50); do
	[ "$(wc -l <"$work/eve.json")" -ge "$incidents" ] && break
	sleep 0.2
done
q "CREATE TABLE eve_lines (line text)"
psql -X -q -d "$DB" -c "\\copy eve_lines FROM '$work/eve.json' WITH (FORMAT text)"
check "nids-alerts wrote lines ($(wc -l <"$work/eve.json"))" test "$(wc -l <"$work/eve.json")" -ge "$incidents"
check "each line parses as JSON with Suricata's alert fields" \
	test "$(q "SELECT count(*) FROM eve_lines WHERE line::jsonb ->> 'event_type' = 'alert'
		AND line::jsonb ? 'src_ip' AND line::jsonb ? 'timestamp' AND line::jsonb -> 'alert' ? 'signature'")" = "$(wc -l <"$work/eve.json")"
check "each line names an incident, and every incident has a line" \
	test "$(q "SELECT count(DISTINCT a.alert_id) FROM eve_lines e JOIN nids.alerts a
		ON a.alert_id = (e.line::jsonb -> 'nids' ->> 'alert_id')::bigint")" = "$incidents"
kill "$client"
wait "$client" 2>/dev/null
client=

# NOTIFY: new incidents and rises in severity, a small payload
payloads=$(psql -X -d "$DB" 2>&1 <<'SQL'
LISTEN nids_alerts;
INSERT INTO nids.alert_severity VALUES ('DDoS', 1);
INSERT INTO live SELECT * FROM live WHERE predicted_label = 'DDoS' LIMIT 5;
INSERT INTO live SELECT (jsonb_populate_record(NULL::live, to_jsonb(l) || '{"source_ip": "10.77.0.1"}')).*
	FROM live l WHERE predicted_label = 'PortScan' LIMIT 3;
SQL
)
check "a rise in severity notifies" grep -q '"class": "DDoS".*"severity": 1\|"severity": 1.*"class": "DDoS"' <<<"$payloads"
check "a new incident notifies, with its source" grep -q '"src_ip": "10.77.0.1' <<<"$payloads"
check "payloads are small JSON objects with alert_id, kind, severity, class, src_ip" \
	bash -c "grep -o 'payload \"[^\"]*\\(\"[^\"]*\\)*' <<<\"\$0\" | head -1 | grep -q alert_id" "$payloads"

# a restart with the state file writes only what changed since
before=$(wc -l <"$work/eve.json")
"$ALERTS" -d "$DB" -o "$work/eve.json" -s "$work/state" --once 2>>"$work/client.err"
after=$(wc -l <"$work/eve.json")
changed=$(q "SELECT count(*) FROM nids.alerts WHERE updated_at > (SELECT max((line::jsonb -> 'nids' ->> 'updated_at')::timestamptz) FROM eve_lines)")
check "after a restart only the changed incidents are written again ($((after - before)) lines, $changed changed)" \
	test "$((after - before))" = "$changed"
check "the client reported no error" test ! -s "$work/client.err"

echo "alerts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
