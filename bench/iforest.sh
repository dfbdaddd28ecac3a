#!/usr/bin/env bash
# The novelty gate on real flows (issue "isolation forest and ensemble"):
# ROC-AUC against scikit-learn's IsolationForest on the same benign rows and
# features, and the zero-day table: each attack family left out of
# training, then how much of it the classifier alone and the ensemble flag.
#   bench/iforest.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
. "$(dirname "$0")/common.sh"
# ROUNDS=n trains the classifiers with n rounds instead of the default
XGB=
[ -n "${ROUNDS:-}" ] && XGB=", \"xgboost\": {\"num_boost_round\": $ROUNDS}"

P -c "CREATE TABLE split AS SELECT f.*, percent_rank() OVER (PARTITION BY label ORDER BY md5(f::text)) < 0.2 AS is_test FROM flows f"
P -c "CREATE TABLE train_t AS SELECT * FROM split WHERE NOT is_test" -c "CREATE TABLE test_t AS SELECT * FROM split WHERE is_test" \
  -c "ALTER TABLE train_t DROP COLUMN is_test" -c "ALTER TABLE test_t DROP COLUMN is_test"
P -At -c "SELECT 'nids_train: ' || jsonb_array_length(r->'feature_names') || ' features' FROM (SELECT nids_train('train_t', options => '{\"test_size\": 0, \"exclude\": [\"id\"]$XGB}') AS r) s"
cols=$(P -At -c "SELECT string_agg(quote_ident(f), ', ') FROM (SELECT unnest(feature_names) f FROM nids.models WHERE name = 'default') s")
P -c "\\copy (SELECT $cols FROM train_t WHERE upper(label) = 'BENIGN') TO '$BENCH_TMP/benign.csv' CSV HEADER"
P -c "\\copy (SELECT $cols, label FROM test_t) TO '$BENCH_TMP/test.csv' CSV HEADER"
P -c "\\copy (SELECT nids_anomaly(nids_features(t)) AS anomaly FROM test_t t) TO '$BENCH_TMP/nids.csv' CSV HEADER"
echo
/usr/bin/python3 bench/iforest.py "$BENCH_TMP/benign.csv" "$BENCH_TMP/test.csv" "$BENCH_TMP/nids.csv"

echo
echo "zero-day: each attack family left out of training (${ROUNDS:-default} rounds), scored on its held-out flows"
printf '%-28s %7s %12s %12s %14s\n' "left-out family" "flows" "classifier" "ensemble" "benign flagged"
P -At -F'|' -c "SELECT label FROM test_t WHERE upper(label) <> 'BENIGN' GROUP BY label ORDER BY label" | while read -r fam; do
	P -c "DROP TABLE IF EXISTS zd; CREATE TABLE zd AS SELECT * FROM train_t WHERE label <> \$\$$fam\$\$" >/dev/null
	P -At -c "SELECT nids_train('zd', model => 'zd', options => '{\"test_size\": 0, \"exclude\": [\"id\"]$XGB}') ? 'version'" >/dev/null
	P -At -F' ' -c "WITH v AS (SELECT t.label, nids_ensemble(nids_features(t, 'zd'), 'zd') AS v FROM test_t t
			WHERE t.label = \$\$$fam\$\$ OR upper(t.label) = 'BENIGN')
		SELECT count(*) FILTER (WHERE label = \$\$$fam\$\$),
		       avg(((v).verdict = 'attack')::int) FILTER (WHERE label = \$\$$fam\$\$),
		       avg(((v).verdict <> 'benign')::int) FILTER (WHERE label = \$\$$fam\$\$),
		       avg(((v).verdict <> 'benign')::int) FILTER (WHERE upper(label) = 'BENIGN') FROM v" |
		awk -v f="$fam" '{printf "%-28s %7d %11.1f%% %11.1f%% %13.1f%%\n", f, $1, $2 * 100, $3 * 100, $4 * 100}'
	P -c "SELECT nids_drop_model('zd')" >/dev/null
done
