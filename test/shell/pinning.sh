#!/usr/bin/env bash
# A model in use stays valid while the cache moves on (issue: use-after-free
# reachable by an ordinary role).  ks_drift, nids_log_drift and
# nids_attach_benign hold their model while a query of the user's runs; a
# scoring call inside that query may pick up a deploy committed by another
# session and refresh the cache.  Here the window query itself makes that
# happen on every row: it redeploys through a second connection (dblink),
# takes a lock it never held (which delivers the invalidation), and scores.
# Every call must finish with the report it would give without the deploys.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
DB=nids_pinning_test
trap '[ -n "${KEEP:-}" ] || dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB" || exit 1
q "CREATE EXTENSION nids; CREATE EXTENSION dblink" || exit 1
q "CREATE TABLE f AS SELECT g AS i, (g % 97)::float8 AS destination_port, (g % 13)::float8 AS total_fwd_packets,
	(g % 5)::float8 AS syn_flag_count, ((g * 7919) % 1000)::float8 AS flow_duration,
	CASE WHEN g % 3 = 0 THEN 'BENIGN' WHEN g % 3 = 1 THEN 'DDoS' ELSE 'PortScan' END AS label
	FROM generate_series(1, 3000) g" >/dev/null
q "SELECT nids_train('f', model => 'p', options => '{\"exclude\": [\"i\"], \"xgboost\": {\"num_boost_round\": 5}}') ? 'version'" >/dev/null
q "SELECT nids_train('f', model => 'p', options => '{\"exclude\": [\"i\", \"flow_duration\"], \"xgboost\": {\"num_boost_round\": 9}}') ? 'version'" >/dev/null
q "SELECT nids_deploy('p', 1)"
# 40 tables, one per row of the window: locking one for the first time
# makes the backend read the invalidations other sessions sent
for t in $(seq 1 40); do echo "CREATE TABLE lock_$t ();"; done | psql -X -q -d "$DB"
started=$(q "SELECT backend_start FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
conn="dbname=$DB host=$PGHOST port=$PGPORT user=$PGUSER"
q "CREATE FUNCTION churn(i int, r f) RETURNS text VOLATILE LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM * FROM dblink('$conn', format('SELECT nids_deploy(''p'', %s)::text', 1 + i % 2)) AS t(done text);
	EXECUTE format('SELECT count(*) FROM lock_%s', i);
	RETURN nids_classify(nids_features(r, 'p'), 'p');
END \$\$"
q "CREATE VIEW churning AS SELECT f.*, churn(f.i, f) AS scored FROM f WHERE i <= 40"

window="SELECT * FROM churning"
quiet="SELECT * FROM f WHERE i <= 40"
# each call starts from version 1, deployed in a transaction of its own (the
# churn waits for the name's lock, which a deploy holds to its commit)
report="SELECT md5(string_agg(format('%s %s %s %s', feature, ks_statistic, p_value, drift_level), ',' ORDER BY feature))"
q "SELECT nids_deploy('p', 1)"
check "ks_drift finishes while its window redeploys the model 40 times" \
	q "SELECT count(*) FROM ks_drift('$window', 'p')"
q "SELECT nids_deploy('p', 1)"
churned=$(q "$report FROM ks_drift('$window', 'p')")
q "SELECT nids_deploy('p', 1)"
check "and reports what it reports without the churn" \
	test "$churned" = "$(q "$report FROM ks_drift('$quiet', 'p')")"
q "SELECT nids_deploy('p', 1)"
check "nids_log_drift finishes too, with the version it started with" \
	test "$(q "SELECT DISTINCT version FROM nids.drift_reports WHERE report_id = $(q "SELECT nids_log_drift('$window', 'p')")")" = 1
q "SELECT nids_deploy('p', 1)"
check "nids_attach_benign reads a view that redeploys, and keeps its model" \
	test "$(q "SELECT metrics->>'from_version' FROM nids.models WHERE name = 'p'
		AND version = $(q "SELECT nids_attach_benign('p', 'churning', '{\"deploy\": false}')")")" = 1
# the same churn made in this very session: a view that deploys locally (a
# read that is not a window query may write), read by nids_attach_benign and
# inserted through the scoring trigger
q "CREATE FUNCTION flip(i int, r f) RETURNS text VOLATILE LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM nids_deploy('p', 1 + i % 2);
	RETURN nids_classify(nids_features(r, 'p'), 'p');
END \$\$"
q "CREATE VIEW flipping AS SELECT f.*, flip(f.i, f) AS scored FROM f WHERE i <= 40"
q "SELECT nids_deploy('p', 1)"
check "nids_attach_benign reads a view that redeploys in its own session" \
	test "$(q "SELECT metrics->>'from_version' FROM nids.models WHERE name = 'p'
		AND version = $(q "SELECT nids_attach_benign('p', 'flipping', '{\"deploy\": false}')")")" = 1
q "CREATE TABLE live (LIKE f, scored text, predicted_label text, verdict text);
   CREATE TRIGGER score BEFORE INSERT ON live FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('p')"
check "the trigger scores every row of an INSERT whose rows redeploy the model" \
	test "$(q "INSERT INTO live SELECT * FROM flipping; SELECT count(verdict) FROM live")" = 40
check "the server never restarted" \
	test "$(q "SELECT backend_start FROM pg_stat_activity WHERE backend_type = 'checkpointer'")" = "$started"

echo "pinning: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
