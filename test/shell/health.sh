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

echo "health: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
