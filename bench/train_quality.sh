#!/usr/bin/env bash
# Macro F1 and per-class F1 of nids_train's defaults against Python XGBoost
# with balanced weights, on one fixed stratified split of the real flows
# (issue "real flows in, trained models out").
#   bench/train_quality.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
. "$(dirname "$0")/common.sh"

# a fixed stratified 80/20 split, by a hash of each row
P -c "CREATE TABLE split AS SELECT f.*, percent_rank() OVER (PARTITION BY label ORDER BY md5(f::text)) < 0.2 AS is_test FROM flows f"
P -c "CREATE TABLE train_t AS SELECT * FROM split WHERE NOT is_test" \
  -c "CREATE TABLE test_t AS SELECT * FROM split WHERE is_test" \
  -c "ALTER TABLE train_t DROP COLUMN is_test" -c "ALTER TABLE test_t DROP COLUMN is_test"
P -At -c "CREATE TEMP TABLE tr AS SELECT nids_train('train_t', options => '{\"test_size\": 0, \"exclude\": [\"id\"]}') AS t" -c "SELECT 'nids_train: ' || round((r->'timings'->>'total_s')::numeric, 1) || ' s, ' || jsonb_array_length(r->'feature_names') || ' features kept'
	FROM (SELECT m.metrics AS r FROM tr, nids.models m WHERE m.name = tr.t->>'model' AND m.version = (tr.t->>'version')::int) s"
P -c "\\copy (SELECT label, nids_classify(nids_features(t)) AS predicted FROM test_t t) TO '$BENCH_TMP/nids.csv' CSV HEADER"
cols=$(P -At -c "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) FROM information_schema.columns
	WHERE table_name = 'train_t' AND data_type = 'double precision'")
P -c "\\copy (SELECT $cols, label FROM train_t) TO '$BENCH_TMP/train.csv' CSV HEADER"
P -c "\\copy (SELECT $cols, label FROM test_t) TO '$BENCH_TMP/test.csv' CSV HEADER"
/usr/bin/python3 bench/train_quality.py "$BENCH_TMP/train.csv" "$BENCH_TMP/test.csv" "$BENCH_TMP/nids.csv"
