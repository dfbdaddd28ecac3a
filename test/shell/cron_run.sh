#!/usr/bin/env bash
# pg_cron for real: a job made by nids_schedule_drift runs to completion and
# logs its report (pg_cron 1.4 runs jobs on the minute: up to ~70 s here, 110 s allowed).
# And on a server that listens on no TCP address, scheduling says that
# pg_cron could not connect, instead of every run failing at 3 a.m.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
DB=nids_tap				# cron.database_name of the test cluster
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
other=$(mktemp -d "${TMPDIR:-/tmp}/nids-cron.XXXXXX")
trap 'q "DROP TABLE IF EXISTS cron_run_flows; SELECT nids_drop_model(''cron_run'') FROM nids.models WHERE name = ''cron_run'' LIMIT 1" >/dev/null 2>&1; scripts/tmpcluster stop "$other"' EXIT

q "CREATE EXTENSION IF NOT EXISTS nids; CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null 2>&1
q "CREATE TABLE cron_run_flows AS SELECT g::float8 AS destination_port, (g % 7)::float8 AS total_fwd_packets,
	CASE WHEN g % 2 = 0 THEN 'BENIGN' ELSE 'PortScan' END AS label FROM generate_series(1, 600) g" >/dev/null
q "SELECT nids_train('cron_run_flows', model => 'cron_run', options => '{\"xgboost\": {\"num_boost_round\": 2}}') ? 'version'" >/dev/null
job=$(q "SELECT nids_schedule_drift('nids_cron_run', '* * * * *', 'SELECT * FROM cron_run_flows WHERE destination_port > 300', 'cron_run')")
check "a job is scheduled every minute" test -n "$job"
status=
for _ in $(seq 1 110); do
	status=$(q "SELECT status FROM cron.job_run_details WHERE jobid = $job AND status IN ('succeeded', 'failed') LIMIT 1")
	[ -n "$status" ] && break
	sleep 1
done
check "pg_cron ran it to completion (status: ${status:-none})" test "$status" = succeeded
check "and its drift report is in nids.drift_reports" \
	test "$(q "SELECT count(DISTINCT report_id) FROM nids.drift_reports WHERE model = 'cron_run'")" -ge 1
[ "$status" = failed ] && q "SELECT return_message FROM cron.job_run_details WHERE jobid = $job" | sed 's/^/# /'
check "nids_unschedule_drift removes it" test "$(q "SELECT nids_unschedule_drift('nids_cron_run')")" = t

# a second server, socket only, whose pg_cron would connect to localhost
env2=$(CRON_DB=nids_tap CRON_HOST=localhost scripts/tmpcluster start "$other")
err=$( (. "$env2"; psql -X -q -d nids_tap -v VERBOSITY=verbose 2>&1 <<'SQL'
CREATE EXTENSION pg_cron;
CREATE EXTENSION nids;
CREATE TABLE f AS SELECT g::float8 AS destination_port, CASE WHEN g % 2 = 0 THEN 'BENIGN' ELSE 'PortScan' END AS label FROM generate_series(1, 100) g;
SELECT nids_train('f', model => 'm', options => '{"xgboost": {"num_boost_round": 1}}') IS NOT NULL;
SELECT nids_schedule_drift('j', '* * * * *', 'SELECT * FROM f', 'm');
SQL
))
check "socket-only server, cron.host = localhost: scheduling is refused (55000)" grep -q "ERROR:  55000" <<<"$err"
check "and the hint names cron.host and the socket directory" grep -q "Set cron.host to the server's Unix socket directory" <<<"$err"

echo "cron run: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
