#!/usr/bin/env bash
# How the defaults of nids_train's booster were chosen: hold-out macro F1 of
# several (max_depth, eta, rounds) settings over five stratified 80/20 splits
# of the real flows, and what each costs to score per row in SQL.
#   bench/defaults.sh [DATA]    a CSV file or a directory of them; default: the sample in data/
. "$(dirname "$0")/common.sh"
SPLITS=${SPLITS:-5}
export PGOPTIONS="-c client_min_messages=warning"

P -c "CREATE FUNCTION macro_f1(tbl regclass) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE r float8;
BEGIN
	EXECUTE format('SELECT avg(CASE WHEN 2 * tp + fp + fn = 0 THEN 0 ELSE 2.0 * tp / (2 * tp + fp + fn) END)
		FROM (SELECT c, count(*) FILTER (WHERE label = c AND predicted = c) AS tp,
		             count(*) FILTER (WHERE label <> c AND predicted = c) AS fp,
		             count(*) FILTER (WHERE label = c AND predicted <> c) AS fn
		      FROM %s, (SELECT DISTINCT label AS c FROM %s) cs GROUP BY c) s', tbl, tbl) INTO r;
	RETURN r;
END \$\$"
for s in $(seq "$SPLITS"); do
	P -c "CREATE TABLE split$s AS SELECT f.*, percent_rank() OVER (PARTITION BY label ORDER BY md5('$s' || f::text)) < 0.2 AS is_test FROM flows f" \
	  -c "CREATE TABLE train$s AS SELECT * FROM split$s WHERE NOT is_test" -c "ALTER TABLE train$s DROP COLUMN is_test" \
	  -c "CREATE TABLE test$s AS SELECT * FROM split$s WHERE is_test" -c "ALTER TABLE test$s DROP COLUMN is_test"
done

echo
printf '%-26s %-44s %8s %12s\n' "max_depth eta rounds" "macro F1 per split" "mean" "classify us"
while read -r depth eta rounds; do
	opts="{\"test_size\": 0, \"exclude\": [\"id\"], \"xgboost\": {\"max_depth\": $depth, \"eta\": $eta, \"num_boost_round\": $rounds}}"
	f1s=""
	for s in $(seq "$SPLITS"); do
		P -At -c "SELECT nids_train('train$s', model => 'sweep', options => '$opts')" >/dev/null
		P -c "DROP TABLE IF EXISTS pred" -c "CREATE TABLE pred AS SELECT label, nids_classify(nids_features(t, 'sweep'), 'sweep') AS predicted FROM test$s t"
		f1s="$f1s $(P -At -c "SELECT round(macro_f1('pred')::numeric, 4)")"
	done
	P -c "DROP TABLE IF EXISTS vec" -c "CREATE TABLE vec AS SELECT nids_features(t, 'sweep') AS v FROM flows t"
	read -r _ med _ <<<"$(time_sql "SELECT count(nids_classify(v, 'sweep')) FROM vec")"
	rows=$(P -At -c "SELECT count(*) FROM vec")
	awk -v d="$depth" -v e="$eta" -v r="$rounds" -v f="$f1s" -v med="$med" -v rows="$rows" 'BEGIN {
		n = split(f, a, " "); for (i = 1; i <= n; i++) s += a[i];
		printf "%-26s %-44s %8.4f %12.2f\n", d " " e " " r, f, s / n, med / rows * 1e6 }'
	P -c "SELECT nids_drop_model('sweep')" >/dev/null
done <<'SETTINGS'
10 0.15 150
6 0.3 100
8 0.3 60
6 0.3 50
6 0.3 30
SETTINGS
