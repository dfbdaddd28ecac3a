#!/usr/bin/env bash
# The catalogue replicated by PostgreSQL's logical replication: a publisher
# (a second throwaway cluster, wal_level = logical) publishes
# nids.model_versions, the test cluster subscribes.  Versions arrive with
# the same content (same nids_model_id, same scores); a session that has
# scored keeps no stale version after a deploy replicated (the row trigger
# ENABLE ALWAYS); writing the catalogue on the subscriber is refused.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
SUB=nids_subscriber
pub=$(mktemp -d "${TMPDIR:-/tmp}/nids-pub.XXXXXX")
trap 'psql -X -q -d "$SUB" -c "DROP SUBSCRIPTION IF EXISTS nids_models" >/dev/null 2>&1;
	dropdb --if-exists "$SUB" >/dev/null 2>&1; scripts/tmpcluster stop "$pub"' EXIT
s() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$SUB" -c "$1"; }
envfile=$(WAL_LEVEL=logical CRON_DB=nids_pub scripts/tmpcluster start "$pub") || exit 1
p() { (. "$envfile"; psql -X -q -A -t -v ON_ERROR_STOP=1 -d nids_pub -c "$1"); }
pubhost=$(. "$envfile"; echo "$PGHOST")
pubport=$(. "$envfile"; echo "$PGPORT")

flows="CREATE TABLE f AS SELECT (g % 97)::float8 AS destination_port, (g % 13)::float8 AS total_fwd_packets,
	(g % 5)::float8 AS syn_flag_count,
	CASE WHEN g % 3 = 0 THEN 'BENIGN' WHEN g % 3 = 1 THEN 'DDoS' ELSE 'PortScan' END AS label
	FROM generate_series(1, 1500) g"
p "CREATE EXTENSION nids" || exit 1
p "$flows"
p "SELECT nids_train('f', model => 'rep', options => '{\"xgboost\": {\"num_boost_round\": 3}}') ? 'version'" >/dev/null
p "CREATE PUBLICATION nids_models FOR TABLE nids.model_versions"

createdb "$SUB" || exit 1
s "CREATE EXTENSION nids"
s "$flows"
PGOPTIONS="-c client_min_messages=warning" s "CREATE SUBSCRIPTION nids_models CONNECTION 'host=$pubhost port=$pubport dbname=nids_pub user=postgres' PUBLICATION nids_models" || exit 1
wait_for() { # SQL on the subscriber that must return t
	for _ in $(seq 1 60); do
		[ "$(s "$1")" = t ] && return 0
		sleep 0.5
	done
	return 1
}
check "the version arrives on the subscriber" wait_for "SELECT count(*) = 1 FROM nids.models WHERE name = 'rep'"
check "with the same content: the same nids_model_id" \
	test "$(s "SELECT nids_model_id('rep')")" = "$(p "SELECT nids_model_id('rep')")"
check "and the same scores" \
	test "$(s "SELECT md5(string_agg(nids_ensemble(nids_features(f, 'rep'), 'rep')::text, ',' ORDER BY destination_port, total_fwd_packets, syn_flag_count)) FROM f")" = \
	"$(p "SELECT md5(string_agg(nids_ensemble(nids_features(f, 'rep'), 'rep')::text, ',' ORDER BY destination_port, total_fwd_packets, syn_flag_count)) FROM f")"

# one long-lived subscriber session scores, the publisher deploys a new
# version meanwhile, and the same session must score with it next
out=$(psql -X -q -A -t -d "$SUB" <<SQL
SELECT 'before:' || nids_model_id('rep');
SELECT count(nids_classify(nids_features(f, 'rep'), 'rep')) FROM f;
\\! (. "$envfile"; psql -X -q -d nids_pub -c "SELECT nids_train('f', model => 'rep', options => '{\"deploy\": true, \"xgboost\": {\"num_boost_round\": 6}}')" >/dev/null)
SELECT pg_sleep(0.2);
DO \$\$ BEGIN FOR i IN 1..60 LOOP EXIT WHEN (SELECT count(*) FROM nids.models WHERE name = 'rep') = 2; PERFORM pg_sleep(0.5); END LOOP; END \$\$;
SELECT 'after:' || nids_model_id('rep');
SELECT 'version:' || (SELECT version FROM nids.models WHERE name = 'rep' AND deployed);
SELECT 'scores:' || count(*) FROM f WHERE nids_classify(nids_features(f, 'rep'), 'rep') = nids_classify(nids_features(f, 'rep@2'), 'rep@2');
SQL
)
check "the deploy replicated" grep -q "version:2" <<<"$out"
check "the long-lived session scores with the new version at its next statement" \
	test "$(sed -n 's/^after://p' <<<"$out")" = "$(p "SELECT nids_model_id('rep@2')")"
check "every flow, by the new version" grep -q "scores:1500" <<<"$out"

err=$(s "SELECT nids_train('f', model => 'local')" 2>&1)
check "registering on the subscriber is refused" grep -q 'nids.model_versions is replicated into this database by subscription "nids_models"' <<<"$err"
err=$(s "SELECT nids_deploy('rep', 1)" 2>&1)
check "so is a local deploy" grep -q "Register, deploy and drop model versions on the publisher" <<<"$err"
check "and nothing was registered" test "$(s "SELECT count(*) FROM nids.models WHERE name = 'local'")" = 0
check "scoring by id works on the subscriber with the publisher's id" \
	test "$(s "SELECT count(nids_classify_at(nids_features(f, 'rep'), $(p "SELECT nids_model_id('rep')"))) FROM f")" = 1500

echo "replication: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
