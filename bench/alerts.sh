#!/usr/bin/env bash
# Incidents (issue "Incidents, not verdicts per flow"), in one run:
#  1. the sample streamed in time order, 500 flows a statement, through the
#     scoring and alert triggers: flagged flows, incidents, flows per incident;
#  2. COPY of 100k flows (time order): plain, with nids_score_trigger, and with
#     nids_alert_trigger on top; the alert trigger's cost as a share of a plain COPY;
#  3. the same 100k flows from 4 parallel COPY sessions: no lost or doubled counts.
#   bench/alerts.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
. "$(dirname "$0")/common.sh"
ROWS=${ROWS:-100000}
P -At -c "CREATE TEMP TABLE tr AS SELECT nids_train('flows', options => '{\"exclude\": [\"id\"], \"deploy\": true}') AS t" -c "SELECT 'model: ' || (r->'params'->>'rounds') || ' rounds, ' || jsonb_array_length(r->'class_labels') || ' classes'
	FROM (SELECT m.metrics AS r FROM tr, nids.models m WHERE m.name = tr.t->>'model' AND m.version = (tr.t->>'version')::int) s"
cols=$(P -At -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'flows'::regclass AND attnum > 0 AND NOT attisdropped")
P -c "CREATE TABLE live (LIKE flows, predicted_label text, probability float8, novelty float8, verdict text)" \
  -c "CREATE TRIGGER score BEFORE INSERT ON live FOR EACH ROW EXECUTE FUNCTION nids_score_trigger()" \
  -c "CREATE TRIGGER alerts AFTER INSERT ON live REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger()"

echo
echo "1. the sample in time order, 500 flows a statement"
P -c "DO \$\$ DECLARE n bigint := (SELECT count(*) FROM flows); BEGIN
	FOR i IN 0 .. n / 500 LOOP
		INSERT INTO live ($cols) SELECT $cols FROM flows ORDER BY \"timestamp\", ctid OFFSET i * 500 LIMIT 500;
	END LOOP; END \$\$"
P -At -F ' ' -c "SELECT 'flows', count(*), 'flagged', count(*) FILTER (WHERE verdict <> 'benign') FROM live"
P -At -F ' ' -c "SELECT 'incidents', count(*), 'flows per incident', round(avg(flows), 1), 'largest', max(flows) FROM nids.alerts"
P -c "SELECT kind, verdict, count(*) AS incidents, sum(flows) AS flows FROM nids.alerts GROUP BY 1, 2 ORDER BY 1, 2"

echo "2. COPY of $ROWS flows in time order"
P -c "SELECT setseed(0.2)" -c "CREATE TABLE src AS SELECT f.* FROM flows f, generate_series(1, ceil($ROWS / (SELECT count(*) FROM flows)::float8)::int) ORDER BY random() LIMIT $ROWS" >/dev/null
P -c "\\copy (SELECT * FROM src ORDER BY \"timestamp\") TO '$BENCH_TMP/flows.copy'"
P -c "CREATE TABLE plain (LIKE live)" -c "CREATE TABLE scored (LIKE live)" \
  -c "CREATE TRIGGER score BEFORE INSERT ON scored FOR EACH ROW EXECUTE FUNCTION nids_score_trigger()"
run() { # table -> seconds of one COPY (after emptying it and the incidents)
	P -c "TRUNCATE $1" -c "DELETE FROM nids.alerts" -c "DELETE FROM nids.alert_counters" >/dev/null
	P -At -c "\\timing on" -c "\\copy $1 ($cols) FROM '$BENCH_TMP/flows.copy'" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{print $1 / 1000}'
}
stats() { sort -n | awk '{a[NR] = $1} END {printf "%.3f %.3f %.3f", a[1], a[int((NR + 1) / 2)], a[NR]}'; }
# interleaved, so that the three see the same machine
for _ in 1 2 3 4 5; do
	echo "plain $(run plain)"
	echo "scored $(run scored)"
	echo "alerts $(run live)"
done >"$BENCH_TMP/times"
read -r plo pmed phi <<<"$(awk '$1 == "plain" {print $2}' "$BENCH_TMP/times" | stats)"
read -r slo smed shi <<<"$(awk '$1 == "scored" {print $2}' "$BENCH_TMP/times" | stats)"
read -r alo amed ahi <<<"$(awk '$1 == "alerts" {print $2}' "$BENCH_TMP/times" | stats)"
printf '%-48s %8s %8s %8s\n' "" "min s" "median s" "max s"
printf '%-48s %8.3f %8.3f %8.3f\n' "plain table" "$plo" "$pmed" "$phi"
printf '%-48s %8.3f %8.3f %8.3f\n' "nids_score_trigger" "$slo" "$smed" "$shi"
printf '%-48s %8.3f %8.3f %8.3f\n' "nids_score_trigger + nids_alert_trigger" "$alo" "$amed" "$ahi"
awk -v a="$amed" -v s="$smed" -v p="$pmed" 'BEGIN {printf "the alert trigger adds %.3f s on top of scoring = %.2fx a plain COPY (goal <= 0.25x)\n", a - s, (a - s) / p}'
P -At -F ' ' -c "SELECT 'incidents', count(*), 'flows in them', sum(flows) FROM nids.alerts"

echo "3. the same flows from 4 parallel COPY sessions"
P -c "TRUNCATE live" -c "DELETE FROM nids.alerts" -c "DELETE FROM nids.alert_counters" >/dev/null
for i in 0 1 2 3; do
	awk -v i="$i" 'NR % 4 == i' "$BENCH_TMP/flows.copy" >"$BENCH_TMP/part$i"
done
start=$(date +%s.%N)
for i in 0 1 2 3; do
	P -c "\\copy live ($cols) FROM '$BENCH_TMP/part$i'" >/dev/null &
done
wait
end=$(date +%s.%N)
P -At -F ' ' -c "SELECT 'rows', (SELECT count(*) FROM live), 'flagged', (SELECT count(*) FROM live WHERE verdict <> 'benign'),
	'in incidents', (SELECT coalesce(sum(flows), 0) FROM nids.alerts), 'counted aside', (SELECT coalesce(sum(flows), 0) FROM nids.alert_counters),
	'incidents', (SELECT count(*) FROM nids.alerts)"
P -At -c "SELECT CASE WHEN (SELECT count(*) FROM live WHERE verdict <> 'benign')
	= (SELECT coalesce(sum(flows), 0) FROM nids.alerts) + (SELECT coalesce(sum(flows), 0) FROM nids.alert_counters)
	THEN 'no lost or doubled counts' ELSE 'COUNTS DIFFER' END"
awk -v s="$start" -v e="$end" 'BEGIN {printf "4 sessions: %.3f s wall\n", e - s}'
