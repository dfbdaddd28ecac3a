#!/usr/bin/env bash
# nids_health on real flows (the demo's sample in data/): a model trained on
# the improved CIC-IDS2017 release says 'ok' on a held-out window of its own
# traffic and on a small benign window, and 'alarm' on the original
# release's capture (another extraction: CICFlowMeter's old version); with
# the features only the improved release has, the other capture also fails
# feature coverage.  nids_log_drift logs the health rows with the report.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
LOAD=${NIDS_LOAD:-$(/usr/lib/postgresql/15/bin/pg_config --bindir)/nids-load}
DB=nids_health_test
trap 'dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
status() { q "SELECT string_agg(check_name || '=' || status, ' ' ORDER BY check_name) FROM nids_health(\$\$$1\$\$, '$2')"; }

createdb "$DB" || exit 1
q "CREATE EXTENSION nids" || exit 1
"$LOAD" -d "$DB" -t flows data/cicids2017-improved-sample.csv.gz >/dev/null || exit 1
"$LOAD" -d "$DB" -t other_capture data/cicids2017-original-1k.csv.gz >/dev/null || exit 1
q "CREATE TABLE split AS SELECT f.*, percent_rank() OVER (PARTITION BY label ORDER BY md5(f::text)) < 0.25 AS held FROM flows f"
q "CREATE VIEW train_part AS SELECT * FROM split WHERE NOT held" >/dev/null
common='"exclude": ["held", "protocol", "fwd_rst_flags", "bwd_rst_flags", "icmp_code", "icmp_type", "total_tcp_flow_time"]'
q "SELECT nids_train('train_part', model => 'common', options => '{$common}') ? 'version'" >/dev/null
q "SELECT nids_train('train_part', model => 'all_features', options => '{\"exclude\": [\"held\"]}') ? 'version'" >/dev/null

out=$(status "SELECT * FROM split WHERE held" common)
check "a held-out window of the training traffic is ok ($out)" grep -q "overall=ok" <<<"$out"
out=$(status "SELECT * FROM split WHERE held AND label = 'BENIGN' LIMIT 20" common)
check "a small benign window is ok ($out)" grep -q "overall=ok" <<<"$out"
out=$(status "SELECT * FROM other_capture" common)
check "the original release's capture is an alarm ($out)" grep -q "overall=alarm" <<<"$out"
check "with the features both have: coverage ok" grep -q "feature_coverage=ok" <<<"$out"
check "and the drift of its benign-called flows or the novel rate says why" \
	grep -Eq "drifting_features=alarm|novel_rate=alarm" <<<"$out"
out=$(status "SELECT * FROM other_capture" all_features)
check "with features the other release lacks, coverage is not ok, and no error ($out)" \
	grep -Eq "feature_coverage=(warn|alarm)" <<<"$out"
out=$(PGOPTIONS="-c nids.min_feature_coverage=0.99" status "SELECT * FROM other_capture" all_features)
check "below nids.min_feature_coverage it is an alarm ($out)" grep -q "feature_coverage=alarm.*overall=alarm" <<<"$out"
check "expected values: coverage 1, the gate's benign_fpr, no drifting feature" \
	test "$(q "SELECT string_agg(check_name || ':' || coalesce(expected::text, '-'), ' ' ORDER BY check_name) FROM nids_health('SELECT * FROM other_capture', 'common')")" = \
	"attack_rate:- drifting_features:0 feature_coverage:1 novel_rate:0.01 overall:0"

id=$(q "SELECT nids_log_drift('SELECT * FROM other_capture', 'common')")
check "nids_log_drift logs the health rows under the report id" \
	test "$(q "SELECT count(*) FROM nids.health_reports WHERE report_id = $id AND model = 'common'")" = 5
check "and the drift rows, compared with the benign training flows" \
	test "$(q "SELECT string_agg(DISTINCT reference, ',') FROM nids.drift_reports WHERE report_id = $id")" = benign
check "the health history reads as a table" \
	test "$(q "SELECT status FROM nids.health_reports WHERE report_id = $id AND check_name = 'overall'")" = alarm
check "an unknown model is 42704" \
	bash -c "psql -X -q -d $DB -v VERBOSITY=verbose -c \"SELECT * FROM nids_health('SELECT * FROM flows', 'nope')\" 2>&1 | grep -q 42704"
check "a window that writes is refused (25006)" \
	bash -c "psql -X -q -d $DB -v VERBOSITY=verbose -c \"SELECT * FROM nids_health('SELECT * FROM flows FOR UPDATE', 'common')\" 2>&1 | grep -q 25006"

# NOTIFY nids_health: when the logged overall status changes (1.3)
notes=$(psql -X -d "$DB" 2>&1 <<'SQL'
LISTEN nids_health;
TRUNCATE nids.health_reports;
SELECT nids_log_drift('SELECT * FROM split WHERE held', 'common') > 0 AS first_ok;
SELECT nids_log_drift('SELECT * FROM other_capture', 'common') > 0 AS alarm;
SELECT nids_log_drift('SELECT * FROM other_capture', 'common') > 0 AS alarm_again;
SELECT nids_log_drift('SELECT * FROM split WHERE held', 'common') > 0 AS ok_again;
SQL
)
payloads=$(grep -o 'with payload "{.*}" received' <<<"$notes" | sed 's/^with payload "//; s/" received$//')
check "a first 'ok' says nothing; 'ok' -> 'alarm' -> 'alarm' -> 'ok' notifies twice ($(wc -l <<<"$payloads") payloads)" \
	test "$(grep -c . <<<"$payloads")" = 2
first=$(head -1 <<<"$payloads")
check "the alarm's payload: model, version, status, previous, report id, the checks not ok ($first)" \
	python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d['model'] == 'common' and d['status'] == 'alarm' and d['previous'] == 'ok' and d['report_id'] > 0 and d['version'] >= 1 and len(d['checks']) > 0 and 'overall' not in d['checks'] else 1)" "$first"
check "the way back: status ok, previous alarm, no check" \
	python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d['status'] == 'ok' and d['previous'] == 'alarm' and d['checks'] == [] else 1)" "$(tail -1 <<<"$payloads")"
first_alarm=$(psql -X -d "$DB" 2>&1 <<'SQL'
LISTEN nids_health;
TRUNCATE nids.health_reports;
SELECT nids_log_drift('SELECT * FROM other_capture', 'common') > 0 AS first_alarm;
SQL
)
check "a first logged status that is not ok notifies (previous null)" grep -q '"previous": null' <<<"$first_alarm"

# nids-alerts --health writes the change as an EVE-style line of its own type
ALERTS=${NIDS_ALERTS:-$(/usr/lib/postgresql/15/bin/pg_config --bindir)/nids-alerts}
eve=$(mktemp)
"$ALERTS" -d "$DB" -o "$eve" --poll 1 --health 2>/dev/null &
client=$!
sleep 1
q "TRUNCATE nids.health_reports; SELECT nids_log_drift('SELECT * FROM other_capture', 'common')" >/dev/null
for _ in $(seq 1 50); do grep -q nids_health "$eve" && break; sleep 0.1; done
kill "$client"
wait "$client" 2>/dev/null
check "nids-alerts --health writes it: $(grep nids_health "$eve" | cut -c1-120)" \
	python3 -c "import json,sys; d=[json.loads(l) for l in open(sys.argv[1]) if 'nids_health' in l]; sys.exit(0 if len(d) == 1 and d[0]['event_type'] == 'nids_health' and d[0]['nids_health']['status'] == 'alarm' else 1)" "$eve"
rm -f "$eve"

echo "health: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
