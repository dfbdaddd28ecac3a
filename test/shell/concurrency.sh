#!/usr/bin/env bash
# Scoring sessions and the trigger see no error while other sessions
# redeploy, roll back, import and train (pgbench, 4 clients); a dropped
# model is a clean 42704.
set -uo pipefail
DB=nids_conc_test
BIN=$(/usr/lib/postgresql/15/bin/pg_config --bindir)
work=$(mktemp -d)
trap 'rm -rf "$work"; dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
SECONDS_RUN=${CONCURRENCY_SECONDS:-8}
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

createdb "$DB" || exit 1
q "CREATE EXTENSION nids" || exit 1
q "CREATE TABLE f AS SELECT g::float8 AS destination_port, (g % 13)::float8 AS total_fwd_packets,
	(g % 5)::float8 AS syn_flag_count,
	CASE WHEN g % 3 = 0 THEN 'BENIGN' WHEN g % 3 = 1 THEN 'DDoS' ELSE 'PortScan' END AS label
	FROM generate_series(1, 3000) g" >/dev/null
q "SELECT nids_train('f', model => 'm', options => '{\"xgboost\": {\"num_boost_round\": 10}}') ? 'version'" >/dev/null
q "SELECT nids_train('f', model => 'm', options => '{\"xgboost\": {\"num_boost_round\": 20, \"max_depth\": 4}}') ? 'version'" >/dev/null

q "CREATE TABLE live (LIKE f, predicted_label text, probability float8, anomaly_score float8, novel boolean, verdict text);
   CREATE TRIGGER score BEFORE INSERT ON live FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('m')" >/dev/null
cat >"$work/score.sql" <<'SQL'
SELECT count(nids_classify(nids_features(f, 'm'), 'm')), count((nids_ensemble(nids_features(f, 'm'), 'm')).verdict) FROM (SELECT * FROM f LIMIT 200) f;
INSERT INTO live SELECT * FROM f LIMIT 50;
SQL
"$BIN/pgbench" -n -c 4 -j 2 -T "$SECONDS_RUN" -f "$work/score.sql" "$DB" >"$work/pgbench.out" 2>&1 &
bench=$!
# meanwhile: redeploy back and forth, import new versions, train, drop old ones
end=$((SECONDS + SECONDS_RUN - 1))
changes=0
while [ $SECONDS -lt $end ]; do
	q "SELECT nids_deploy('m', 1)" >/dev/null && changes=$((changes + 1))
	q "SELECT nids_deploy('m', 2)" >/dev/null && changes=$((changes + 1))
	q "SELECT nids_import_xgboost('m', nids_export_xgboost('m'), feature_names, class_labels, deploy => false)
		FROM nids.models WHERE name = 'm' AND deployed" >/dev/null && changes=$((changes + 1))
	q "SELECT nids_drop_model('m', max(version)) FROM nids.models WHERE name = 'm' AND version > 2" >/dev/null
	q "SELECT nids_train('f', model => 'other', options => '{\"xgboost\": {\"num_boost_round\": 2}}') ? 'version'" >/dev/null &&
		changes=$((changes + 1))
done
wait $bench
rc=$?
cat "$work/pgbench.out" | grep -E "transactions actually processed|failed|tps" | sed 's/^/# /'
check "pgbench with 4 scoring clients exits cleanly while $changes catalogue changes commit" test $rc -eq 0
check "no scoring transaction failed" bash -c "! grep -qiE 'error|aborted' '$work/pgbench.out'"
check "they did work" grep -qE "number of transactions actually processed: [1-9]" "$work/pgbench.out"
check "the trigger scored every row it inserted meanwhile" \
	test "$(q "SELECT count(*) FILTER (WHERE verdict IS NULL) || '/' || sign(count(*)) FROM live")" = "0/1"

# a dropped model: a clean 42704 for a session that had it cached
err=$(psql -X -q -A -t -d "$DB" -v VERBOSITY=verbose 2>&1 <<'SQL'
SELECT count(nids_classify(nids_features(f, 'm'), 'm')) FROM f;
SELECT nids_drop_model('m');
SELECT count(nids_classify(nids_features(f, 'm'), 'm')) FROM f;
SQL
)
check "a dropped model gives 42704 to a session that had it cached" grep -q "ERROR:  42704" <<<"$err"

echo "concurrency: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
