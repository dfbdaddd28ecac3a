#!/usr/bin/env bash
# A backend scoring ROWS flows (default 10 million) keeps a flat resident
# size: sample its RSS every second while it runs (issue "reliability").
#   bench/memory.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
. "$(dirname "$0")/common.sh"
ROWS=${ROWS:-10000000}
P -At -c "SELECT 'model: ' || jsonb_array_length(r->'feature_names') || ' features' FROM (SELECT nids_train('flows', options => '{\"exclude\": [\"id\"], \"xgboost\": {\"num_boost_round\": 30}}') AS r) s"
P -c "CREATE TABLE base AS SELECT row_number() OVER () AS i, nids_features(f) AS x FROM flows f" -c "CREATE INDEX ON base (i)"
n=$(P -At -c "SELECT count(*) FROM base")
P -At -c "SELECT pg_backend_pid()" -c "SET max_parallel_workers_per_gather = 0" \
	-c "SELECT count(nids_ensemble(b.x)) || ' flows scored' FROM generate_series(1, $ROWS) g JOIN base b ON b.i = 1 + g % $n" >"$BENCH_TMP/out" &
sleep 1
pid=$(head -1 "$BENCH_TMP/out")
echo "backend $pid scoring $ROWS flows (nids_ensemble); resident size every 2 s, in MiB:"
samples=()
while kill -0 "$pid" 2>/dev/null && grep -q VmRSS "/proc/$pid/status" 2>/dev/null; do
	samples+=("$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")")
	sleep 2
done
wait
tail -1 "$BENCH_TMP/out"
echo "${samples[*]}"
printf '%s\n' "${samples[@]}" | awk 'NR > 2 {if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1}
	END {printf "after warm-up: min %d MiB, max %d MiB, growth %d MiB\n", min, max, max - min}'
