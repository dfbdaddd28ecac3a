#!/usr/bin/env bash
# COPY of 100k real-shaped flows into a table with and without
# nids_score_trigger (issue "scoring on insert").
#   bench/trigger.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
. "$(dirname "$0")/common.sh"
ROWS=${ROWS:-100000}
P -At -c "CREATE TEMP TABLE tr AS SELECT nids_train('flows', options => '{\"exclude\": [\"id\"]}') AS t" -c "SELECT 'model: ' || (r->'params'->>'rounds') || ' rounds, ' || jsonb_array_length(r->'class_labels') || ' classes, ' || jsonb_array_length(r->'feature_names') || ' features'
	FROM (SELECT m.metrics AS r FROM tr, nids.models m WHERE m.name = tr.t->>'model' AND m.version = (tr.t->>'version')::int) s"
P -c "SELECT setseed(0.2)" -c "CREATE TABLE src AS SELECT f.* FROM flows f, generate_series(1, ceil($ROWS / (SELECT count(*) FROM flows)::float8)::int) ORDER BY random() LIMIT $ROWS" >/dev/null
P -c "\\copy src TO '$BENCH_TMP/flows.copy'"
P -c "CREATE TABLE plain (LIKE src, predicted_label text, probability float8, anomaly_score float8, novel boolean, verdict text)" \
  -c "CREATE TABLE scored (LIKE plain)" \
  -c "CREATE TRIGGER score BEFORE INSERT ON scored FOR EACH ROW EXECUTE FUNCTION nids_score_trigger()"
cols=$(P -At -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'src'::regclass AND attnum > 0 AND NOT attisdropped")
run() { # table -> seconds of one COPY (after TRUNCATE)
	P -c "TRUNCATE $1" >/dev/null
	P -At -c "\\timing on" -c "\\copy $1 ($cols) FROM '$BENCH_TMP/flows.copy'" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{print $1 / 1000}'
}
stats() { sort -n | awk '{a[NR] = $1} END {printf "%.3f %.3f %.3f", a[1], a[int((NR + 1) / 2)], a[NR]}'; }
read -r plo pmed phi <<<"$(for _ in 1 2 3 4 5; do run plain; done | stats)"
read -r tlo tmed thi <<<"$(for _ in 1 2 3 4 5; do run scored; done | stats)"
echo
echo "COPY of $ROWS flows ($(P -At -c 'SELECT count(*) FROM pg_attribute WHERE attrelid = '"'src'::regclass"' AND attnum > 0') columns), one session"
printf '%-40s %8s %8s %8s\n' "" "min s" "median s" "max s"
printf '%-40s %8.3f %8.3f %8.3f\n' "plain table" "$plo" "$pmed" "$phi"
printf '%-40s %8.3f %8.3f %8.3f\n' "with nids_score_trigger (all 5 columns)" "$tlo" "$tmed" "$thi"
awk -v a="$tmed" -v b="$pmed" 'BEGIN {printf "the trigger adds %.3f s = %.2fx what a plain COPY costs (%.1f us per row)\n", a - b, (a - b) / b, (a - b) / '"$ROWS"' * 1e6}'
P -c "SELECT verdict, count(*) FROM scored GROUP BY 1 ORDER BY 1"
