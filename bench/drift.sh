#!/usr/bin/env bash
# ks_drift over a 1M-flow window of ~50 features, side by side with the
# cheapest query that reads the same data (sum of every column, one core),
# and with scipy's ks_2samp on the same columns already in memory (issue
# "drift").
# And nids_health on the same window, against ks_drift (issue "health").
#   bench/drift.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
. "$(dirname "$0")/common.sh"
# the window has the model's first 50 features: a model with more is
# compared on those (the others would be refused below 90% coverage)
export PGOPTIONS="-c nids.min_feature_coverage=0 -c client_min_messages=error"
ROWS=${ROWS:-1000000}
P -At -c "SELECT 'model: ' || jsonb_array_length(r->'feature_names') || ' features'
	FROM (SELECT nids_train('flows', model => 'drift', options => '{\"exclude\": [\"id\"], \"xgboost\": {\"num_boost_round\": 5}}') AS r) s"
# the window: the model's first 50 features, ROWS flows resampled with jitter
cols=$(P -At -c "SELECT string_agg(quote_ident(f), ', ') FROM (SELECT unnest(feature_names[1:50]) f FROM nids.models WHERE name = 'drift') s")
jcols=$(P -At -c "SELECT string_agg(format('%I * (1 + 0.02 * (random() - 0.5)) AS %I', f, f), ', ') FROM (SELECT unnest(feature_names[1:50]) f FROM nids.models WHERE name = 'drift') s")
sums=$(P -At -c "SELECT string_agg(format('sum(%I)', f), ', ') FROM (SELECT unnest(feature_names[1:50]) f FROM nids.models WHERE name = 'drift') s")
P -c "SELECT setseed(0.3)" -c "CREATE TABLE w AS SELECT $jcols FROM flows, generate_series(1, ceil($ROWS / (SELECT count(*) FROM flows)::float8)::int) LIMIT $ROWS" \
  -c "VACUUM ANALYZE w" >/dev/null
read -r slo smed shi <<<"$(time_sql "SELECT $sums FROM w" 3)"
read -r klo kmed khi <<<"$(time_sql "SELECT count(*) FROM ks_drift('SELECT * FROM w', 'drift')" 3)"
read -r hlo hmed hhi <<<"$(time_sql "SELECT count(*) FROM nids_health('SELECT * FROM w', 'drift')" 3)"
echo
echo "window: $ROWS rows x 50 features, one core"
printf '%-44s %8s %8s %8s\n' "" "min s" "median s" "max s"
printf '%-44s %8.3f %8.3f %8.3f\n' "SELECT sum(c1), ..., sum(c50) FROM w" "$slo" "$smed" "$shi"
printf '%-44s %8.3f %8.3f %8.3f\n' "ks_drift('SELECT * FROM w')" "$klo" "$kmed" "$khi"
printf '%-44s %8.3f %8.3f %8.3f\n' "nids_health('SELECT * FROM w')" "$hlo" "$hmed" "$hhi"
awk -v a="$kmed" -v b="$smed" 'BEGIN {printf "ks_drift / scan: %.2fx\n", a / b}'
awk -v a="$hmed" -v b="$kmed" 'BEGIN {printf "nids_health / ks_drift: %.2fx\n", a / b}'

# scipy's ks_2samp on the same columns, in memory (training rows as reference)
P -c "\\copy (SELECT $cols FROM flows) TO '$BENCH_TMP/ref.csv' CSV HEADER"
P -c "\\copy (SELECT $cols FROM w) TO '$BENCH_TMP/win.csv' CSV HEADER"
/usr/bin/python3 - "$BENCH_TMP/ref.csv" "$BENCH_TMP/win.csv" "$kmed" <<'PY'
import sys, time
import numpy as np, pandas as pd
from scipy.stats import ks_2samp
ref = pd.read_csv(sys.argv[1]).replace([np.inf, -np.inf], np.nan).astype(np.float32)
win = pd.read_csv(sys.argv[2]).replace([np.inf, -np.inf], np.nan).astype(np.float32)
t0 = time.time()
for c in ref.columns:
    ks_2samp(ref[c].dropna().values, win[c].dropna().values, method="asymp")
t = time.time() - t0
print("scipy ks_2samp, 50 columns in memory: %.3f s   (ks_drift / scipy: %.2fx)" % (t, float(sys.argv[3]) / t))
PY
