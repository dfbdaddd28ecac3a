#!/usr/bin/env bash
# Training at the seed's scale (issue "real flows in, trained models out"):
# the real sample resampled with jitter to ROWS flows (default 2,830,743,
# the full CIC-IDS2017 release), trained by nids_train and by Python XGBoost
# on the same matrix with the same parameters (nids' defaults, ROUNDS rounds,
# THREADS threads); wall time and the peak memory of the backend.
#   bench/train_scale.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
. "$(dirname "$0")/common.sh"
ROWS=${ROWS:-2830743}
ROUNDS=${ROUNDS:-20}
THREADS=${THREADS:-2}
/usr/bin/python3 bench/train_scale.py make "$DATA_DIR" "$ROWS" "$BENCH_TMP/big.csv"
chmod 644 "$BENCH_TMP/big.csv"
"$(/usr/lib/postgresql/15/bin/pg_config --bindir)/nids-load" -t big "$BENCH_TMP/big.csv"
P -c "VACUUM ANALYZE big"
out=$(P -At <<SQL
SET nids.threads = $THREADS;
CREATE TEMP TABLE tr AS SELECT nids_train('big', options => '{"test_size": 0, "xgboost": {"num_boost_round": $ROUNDS}}') AS t;
SELECT 'nids_seconds ' || round((r->'timings'->>'total_s')::numeric, 2) || E'\nnids_read_seconds ' || round((r->'timings'->>'read_s')::numeric, 2)
	|| E'\nnids_train_seconds ' || round((r->'timings'->>'train_s')::numeric, 2) || E'\nnids_features ' || jsonb_array_length(r->'feature_names')
	|| E'\ncandidate_columns ' || (jsonb_array_length(r->'feature_names') + jsonb_array_length(r->'dropped'))
FROM (SELECT m.metrics AS r FROM tr, nids.models m WHERE m.name = tr.t->>'model' AND m.version = (tr.t->>'version')::int) s;
SELECT line FROM regexp_split_to_table(pg_read_file('/proc/' || pg_backend_pid() || '/status'), E'\n') line WHERE line LIKE 'VmHWM%';
SQL
)
echo "$out"
py=$(/usr/bin/python3 bench/train_scale.py train "$BENCH_TMP/big.csv" "$ROUNDS" "$THREADS")
echo "$py"
awk -v rows="$ROWS" '
	/^nids_seconds/ {n = $2} /^nids_train_seconds/ {nt = $2} /^candidate_columns/ {d = $2}
	/^VmHWM/ {hwm = $2 / 1024} /^python_seconds/ {p = $2} /^python_peak_rss_mb/ {prss = $2}
	END {
		m = rows * d * 4 / 1048576
		printf "\n%d rows, %d candidate features: float32 matrix %.0f MiB\n", rows, d, m
		printf "nids_train total %.1f s (boosting %.1f s), Python XGBoost %.1f s: %.2fx\n", n, nt, p, n / p
		printf "backend peak RSS %.0f MiB = %.2fx the float32 matrix (Python peak %.0f MiB)\n", hwm, hwm / m, prss
	}' <<<"$out
$py"
