#!/usr/bin/env bash
# Per-row scoring cost in SQL against XGBoost's own C-API batch predictor,
# same model, same rows, one core, one run (issues "core" and "per-row
# scoring at batch cost").
#   bench/scoring.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
. "$(dirname "$0")/common.sh"
ROWS=${ROWS:-100000}
gcc -O2 -o "$BENCH_TMP/xgb_batch" bench/xgb_batch.c -lxgboost -lm

# the issue's reference model: 10 classes, 200 rounds, depth 8
P -c "CREATE TABLE train10 AS SELECT * FROM flows WHERE label IN
	(SELECT label FROM flows GROUP BY label ORDER BY count(*) DESC, label LIMIT 10)"
P -At -c "SELECT 'trained: ' || (r->'version')::text || ', features ' || jsonb_array_length(r->'feature_names') || ', macro F1 ' || round((r->>'macro_f1')::numeric, 4)
	FROM (SELECT nids_train('train10', model => 'bench', options => '{\"exclude\": [\"id\"], \"xgboost\": {\"num_boost_round\": 200, \"max_depth\": 8}}') AS r) s"
# ROWS flows resampled from the real ones with 1% jitter, as float8[] vectors
P -c "SELECT setseed(0.5)" -c "CREATE TABLE t AS
	SELECT (SELECT array_agg(CASE WHEN v IS NULL THEN NULL ELSE v * (1 + 0.01 * (random() - 0.5)) END)
	        FROM unnest(nids_features(f, 'bench')) v) AS features, f
	FROM (SELECT f FROM train10 f, generate_series(1, ceil($ROWS / (SELECT count(*) FROM train10)::float8)::int)
	      ORDER BY random() LIMIT $ROWS) s" -c "VACUUM ANALYZE t"
P -At -c "SELECT convert_from(nids_export_xgboost('bench'), 'UTF8')" >"$BENCH_TMP/model.json"
P -At -c "\\copy (SELECT array_to_string(features, ',', 'nan') FROM t) TO '$BENCH_TMP/rows.csv'"
peer=$("$BENCH_TMP/xgb_batch" "$BENCH_TMP/model.json" "$BENCH_TMP/rows.csv" 3)
batch=$(awk '/batch_us_per_row/ {print $2}' <<<"$peer")
single=$(awk '/single_us_per_row/ {print $2}' <<<"$peer")
scan=$(time_sql "SELECT count(features) FROM t")

echo
echo "machine: $(nproc) cores; $ROWS rows; model: $(P -At -c "SELECT jsonb_array_length(metrics->'class_labels') || ' classes, ' || (metrics->'params'->>'rounds') || ' rounds, depth ' || (metrics->'params'->>'max_depth') FROM nids.models WHERE name = 'bench'")"
printf 'XGBoost C API, batch of %d, nthread=1: %8.2f us/row\n' "$ROWS" "$batch"
printf 'XGBoost C API, one call per row:      %8.2f us/row\n' "$single"
printf 'plain scan of t (SELECT count(features)): %.4f s\n' "$(cut -d' ' -f2 <<<"$scan")"
echo
printf '%-34s %10s %10s %10s %9s\n' "per row, in SQL, one core" "min us" "median us" "max us" "vs batch"
for q in "classify|SELECT count(nids_classify(features, 'bench')) FROM t" \
	"classify_proba|SELECT count(nids_classify_proba(features, 'bench')) FROM t" \
	"anomaly|SELECT count(nids_anomaly(features, 'bench')) FROM t" \
	"ensemble|SELECT count(nids_ensemble(features, 'bench')) FROM t" \
	"features + ensemble|SELECT count(nids_ensemble(nids_features(f, 'bench'), 'bench')) FROM t"; do
	name=${q%%|*}
	read -r lo med hi <<<"$(time_sql "${q#*|}")"
	awk -v n="$name" -v lo="$lo" -v med="$med" -v hi="$hi" -v rows="$ROWS" -v b="$batch" 'BEGIN {
		printf "%-34s %10.2f %10.2f %10.2f %8.2fx\n", n, lo / rows * 1e6, med / rows * 1e6, hi / rows * 1e6, (med / rows * 1e6) / b }'
done

# the novelty gate: the same classifier gated by the isolation forest alone
# (1.0's gate: version 2 made by nids_attach_benign) against the default
# gate (version 1), nids_ensemble per row (issue "novelty gate v2")
P -c "CREATE TABLE benign10 AS SELECT * FROM train10 WHERE upper(label) = 'BENIGN'" \
  -c "SELECT nids_attach_benign('bench', 'benign10', '{\"novelty\": {\"method\": \"iforest\"}}')" >/dev/null
gate=$(P -At -c "SELECT metrics->'novelty'->>'method' FROM nids.models WHERE name = 'bench' AND version = 1")
echo
printf '%-34s %10s %10s %10s\n' "per row, in SQL, one core" "min us" "median us" "max us"
for q in "ensemble, iforest gate (1.0)|SELECT count(nids_ensemble(features, 'bench@2')) FROM t" \
	"ensemble, $gate gate (default)|SELECT count(nids_ensemble(features, 'bench@1')) FROM t" \
	"novelty, $gate gate|SELECT count(nids_novelty(features, 'bench@1')) FROM t"; do
	name=${q%%|*}
	read -r lo med hi <<<"$(time_sql "${q#*|}")"
	echo "$name $med" >>"$BENCH_TMP/gates"
	awk -v n="$name" -v lo="$lo" -v med="$med" -v hi="$hi" -v rows="$ROWS" 'BEGIN {
		printf "%-34s %10.2f %10.2f %10.2f\n", n, lo / rows * 1e6, med / rows * 1e6, hi / rows * 1e6 }'
done
awk 'NR == 1 {a = $NF} NR == 2 {b = $NF} END {printf "default gate / 1.0 gate, nids_ensemble per row: %.2fx\n", b / a}' "$BENCH_TMP/gates"

# explanations, for the default model (defaults: 50 rounds, depth 6): per
# row, against nids_classify on the same model (issue "explanations")
P -At -c "SELECT nids_train('train10', model => 'dflt', options => '{\"exclude\": [\"id\"]}') ? 'version'" >/dev/null
echo
printf '%-34s %10s %10s %10s\n' "default model, per row, one core" "min us" "median us" "max us"
: >"$BENCH_TMP/explain"
for q in "classify|SELECT count(nids_classify(features, 'dflt')) FROM (SELECT features FROM t LIMIT 20000) s" \
	"explain (top 5)|SELECT count(*) FROM (SELECT features FROM t LIMIT 20000) s, nids_explain(features, 'dflt', 5)" \
	"explain_novelty (top 5)|SELECT count(*) FROM (SELECT features FROM t LIMIT 20000) s, nids_explain_novelty(features, 'dflt', 5)"; do
	name=${q%%|*}
	read -r lo med hi <<<"$(time_sql "${q#*|}" 3)"
	echo "$name $med" >>"$BENCH_TMP/explain"
	awk -v n="$name" -v lo="$lo" -v med="$med" -v hi="$hi" 'BEGIN {
		printf "%-34s %10.2f %10.2f %10.2f\n", n, lo / 20000 * 1e6, med / 20000 * 1e6, hi / 20000 * 1e6 }'
done
awk 'NR == 1 {a = $NF} NR == 2 {b = $NF} END {printf "nids_explain / nids_classify per row: %.1fx\n", b / a}' "$BENCH_TMP/explain"

# the default model against XGBoost's batch predictor on the same rows
# (issue "scoring at a third of XGBoost's batch cost": both kinds of model)
P -At -c "SELECT convert_from(nids_export_xgboost('dflt'), 'UTF8')" >"$BENCH_TMP/dflt.json"
dpeer=$("$BENCH_TMP/xgb_batch" "$BENCH_TMP/dflt.json" "$BENCH_TMP/rows.csv" 3)
dbatch=$(awk '/batch_us_per_row/ {print $2}' <<<"$dpeer")
read -r _ dmed _ <<<"$(time_sql "SELECT count(nids_classify(features, 'dflt')) FROM t")"
echo
printf 'default model (%s): XGBoost C API batch %.2f us/row, nids_classify %.2f us/row: %.2fx\n' \
	"$(P -At -c "SELECT jsonb_array_length(metrics->'class_labels') || ' classes, ' || (metrics->'params'->>'rounds') || ' rounds, depth ' || (metrics->'params'->>'max_depth') FROM nids.models WHERE name = 'dflt'")" \
	"$dbatch" "$(awk -v m="$dmed" -v r="$ROWS" 'BEGIN {print m / r * 1e6}')" \
	"$(awk -v m="$dmed" -v r="$ROWS" -v b="$dbatch" 'BEGIN {print m / r * 1e6 / b}')"

# first call in a new backend (model load and conversion)
size=$(P -At -c "SELECT pg_size_pretty(length(booster)::bigint) FROM nids.model_versions WHERE name = 'bench' AND deployed")
first=$(for _ in 1 2 3 4 5; do
	P -At -c "\\timing on" -c "SELECT nids_classify(features, 'bench') FROM t LIMIT 1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
done | sort -n | awk '{a[NR] = $1} END {printf "%.1f %.1f %.1f", a[1], a[3], a[5]}')
echo
echo "first call in a new backend (model of $size): min/median/max $first ms"

# parallel speed-up on 1M rows
P -c "CREATE TABLE t1m AS SELECT features FROM t, generate_series(1, 10)" -c "VACUUM ANALYZE t1m" \
	-c "ALTER TABLE t1m SET (parallel_workers = 2)"
read -r _ s0 _ <<<"$(WORKERS=0 time_sql "SELECT count(nids_classify(features, 'bench')) FROM t1m" 3)"
read -r _ s2 _ <<<"$(WORKERS=2 time_sql "SELECT count(nids_classify(features, 'bench')) FROM t1m" 3)"
awk -v a="$s0" -v b="$s2" 'BEGIN {printf "1M rows: %.2f s with no worker, %.2f s with 2 workers: speed-up %.2fx\n", a, b, a / b}'
