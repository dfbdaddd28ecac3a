#!/usr/bin/env bash
# Which version scores: a statement scores with the version its snapshot
# shows deployed.  Another session deploys (here through dblink, so that
# one psql script can interleave the two):
#  - READ COMMITTED: the next statement of this transaction scores with it;
#  - REPEATABLE READ: the transaction keeps the version it saw first, as
#    nids.models does, until it ends.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
DB=nids_snapshot_test
trap 'dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB" || exit 1
q "CREATE EXTENSION nids; CREATE EXTENSION dblink" || exit 1
# version 1 knows three classes, version 2 two: the length of
# nids_classify_proba says which one scored
q "CREATE TABLE f AS SELECT (g % 97)::float8 AS destination_port, (g % 13)::float8 AS total_fwd_packets,
	CASE WHEN g % 3 = 0 THEN 'BENIGN' WHEN g % 3 = 1 THEN 'DDoS' ELSE 'PortScan' END AS label
	FROM generate_series(1, 900) g;
	CREATE TABLE f2 AS SELECT destination_port, total_fwd_packets,
	CASE WHEN label = 'BENIGN' THEN 'BENIGN' ELSE 'DDoS' END AS label FROM f" >/dev/null
q "SELECT nids_train('f', model => 's', options => '{\"xgboost\": {\"num_boost_round\": 2}}') ? 'version'" >/dev/null
q "SELECT nids_train('f2', model => 's', options => '{\"deploy\": true, \"xgboost\": {\"num_boost_round\": 2}}') ? 'version'" >/dev/null
q "SELECT nids_deploy('s', 1)" >/dev/null
conn="dbname=$DB host=$PGHOST port=$PGPORT user=$PGUSER"
deploy() { echo "SELECT * FROM dblink('$conn', 'SELECT nids_deploy(''s'', $1)::text') AS t(done text);"; }
classes="SELECT array_length(nids_classify_proba(nids_features(f, 's'), 's'), 1) AS classes, (SELECT version FROM nids.models WHERE name = 's' AND deployed) AS listed FROM f LIMIT 1;"

out=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" <<SQL 2>&1
BEGIN ISOLATION LEVEL READ COMMITTED;
$classes
$(deploy 2)
$classes
COMMIT;
BEGIN ISOLATION LEVEL REPEATABLE READ;
$classes
$(deploy 1)
$classes
COMMIT;
$classes
SQL
)
lines=$(grep '|' <<<"$out" | tr '\n' ' ')
check "READ COMMITTED: version 1 scores, as listed" test "$(sed -n 1p <<<"$(grep '|' <<<"$out")")" = "3|1"
check "READ COMMITTED: after another session deploys, the next statement scores with version 2" \
	test "$(sed -n 2p <<<"$(grep '|' <<<"$out")")" = "2|2"
check "REPEATABLE READ: version 2 scores" test "$(sed -n 3p <<<"$(grep '|' <<<"$out")")" = "2|2"
check "REPEATABLE READ: after another session deploys version 1, the transaction still scores and lists version 2" \
	test "$(sed -n 4p <<<"$(grep '|' <<<"$out")")" = "2|2"
check "after it commits, version 1 scores" test "$(sed -n 5p <<<"$(grep '|' <<<"$out")")" = "3|1"
[ "$failed" -eq 0 ] || echo "# $lines"

echo "snapshot: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
