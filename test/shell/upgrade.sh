#!/usr/bin/env bash
# The update paths: a database with nids 1.0, its models (imported and
# trained) and drift reports, one with nids 1.1, its models, reports and
# a flow table with the scoring trigger, and one with nids 1.2, its models,
# reports, incidents and a flow table with the scoring, alert and scan
# triggers, are each updated with ALTER EXTENSION nids UPDATE.  Every stored version must score identically
# afterwards, the reports and triggers must stay, and the whole pg_regress
# suite must then pass on each updated database.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# pg_regress's own database name: the expected output names it
DB=contrib_regression
trap 'dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB" || exit 1
check "nids 1.0 installs" q "CREATE EXTENSION nids VERSION '1.0'"

# models and reports made by 1.0, and what 1.0 scores
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" >/dev/null <<'SQL' || { echo "not ok - 1.0 set-up"; exit 1; }
\i test/fixtures/xgb_fixtures.sql
CREATE TABLE legacy_vectors AS SELECT id, features FROM fx_vectors;
SELECT nids_import_xgboost('legacy_' || name, booster, features, classes) FROM fx_models;
CREATE TABLE legacy_flows AS SELECT (g % 97)::float8 AS destination_port,
	(g % 13)::float8 AS total_fwd_packets, (g % 7)::numeric AS syn_flag_count,
	((g * 7919) % 1000)::float8 AS flow_duration,
	CASE WHEN g % 3 = 0 THEN 'BENIGN' WHEN g % 3 = 1 THEN 'DDoS' ELSE 'PortScan' END AS label
	FROM generate_series(1, 3000) g;
SELECT nids_train('legacy_flows', model => 'legacy_trained',
	options => '{"xgboost": {"num_boost_round": 5}}');
SELECT nids_log_drift('SELECT * FROM legacy_flows WHERE destination_port > 40', 'legacy_trained');
-- a version whose benign flows differ from its other classes: its only
-- distribution (all training flows) is far from its benign flows
CREATE TABLE legacy_sep AS SELECT CASE WHEN g % 10 < 3 THEN 443 ELSE 1000 + g % 500 END::float8 AS destination_port,
	(CASE WHEN g % 10 < 3 THEN 5 ELSE 1 END + g % 3)::float8 AS total_fwd_packets,
	CASE WHEN g % 10 < 3 THEN 'BENIGN' ELSE 'DDoS' END AS label
	FROM generate_series(1, 2000) g;
SELECT nids_train('legacy_sep', model => 'sep10', options => '{"xgboost": {"num_boost_round": 5}}');
CREATE TABLE scores_before AS
	SELECT m.name, v.id, nids_classify(v.features, m.name) AS label,
		nids_classify_proba(v.features, m.name) AS proba
	FROM nids.models m, legacy_vectors v WHERE m.name LIKE 'legacy_%' AND m.name <> 'legacy_trained';
CREATE TABLE trained_before AS
	SELECT f.ctid::text AS row, (e).* FROM legacy_flows f,
		LATERAL (SELECT nids_ensemble(nids_features(f, 'legacy_trained'), 'legacy_trained') AS e) s;
CREATE TABLE drift_before AS
	SELECT * FROM ks_drift('SELECT * FROM legacy_flows WHERE destination_port > 40', 'legacy_trained');
SQL

check "ALTER EXTENSION nids UPDATE succeeds" q "ALTER EXTENSION nids UPDATE"
check "the extension is now 1.3" test "$(q "SELECT extversion FROM pg_extension WHERE extname = 'nids'")" = "1.3"
check "update paths 1.0 -> 1.1 -> 1.2 -> 1.3 are known" \
	test "$(q "SELECT count(*) FROM pg_extension_update_paths('nids') WHERE (source, target) IN (('1.0', '1.1'), ('1.1', '1.2'), ('1.2', '1.3'), ('1.0', '1.3'), ('1.1', '1.3')) AND path IS NOT NULL")" = 5
check "every imported 1.0 version scores identically" \
	test "$(q "SELECT count(*) FILTER (WHERE (nids_classify(v.features, b.name), nids_classify_proba(v.features, b.name))
			IS DISTINCT FROM (b.label, b.proba)) || '/' || count(*)
		FROM scores_before b JOIN legacy_vectors v ON v.id = b.id")" = "0/$(q "SELECT count(*) FROM scores_before")"
check "the trained 1.0 version's ensemble verdicts are identical" \
	test "$(q "SELECT count(*) FROM legacy_flows f JOIN trained_before b ON b.row = f.ctid::text,
		LATERAL (SELECT nids_ensemble(nids_features(f, 'legacy_trained'), 'legacy_trained') AS e) s
		WHERE (s.e).label IS DISTINCT FROM b.label OR (s.e).probability IS DISTINCT FROM b.probability
		OR (s.e).anomaly_score IS DISTINCT FROM b.anomaly_score OR (s.e).novel IS DISTINCT FROM b.novel
		OR (s.e).verdict IS DISTINCT FROM b.verdict")" = 0
check "ks_drift gives the same statistics (a 1.0 version has one reference: all its training flows)" \
	test "$(q "(SELECT feature, ks_statistic, p_value, n_reference, n_window FROM drift_before EXCEPT
		SELECT feature, ks_statistic, p_value, n_reference, n_window FROM ks_drift('SELECT * FROM legacy_flows WHERE destination_port > 40', 'legacy_trained'))")" = ""
check "and levels by the 1.1 rule ('high' needs significance too)" \
	test "$(q "SELECT count(*) FROM ks_drift('SELECT * FROM legacy_flows WHERE destination_port > 40', 'legacy_trained')
		WHERE drift_level IS DISTINCT FROM CASE WHEN NOT p_value < 0.05 / (SELECT cardinality(feature_names) FROM nids.models WHERE name = 'legacy_trained')
			THEN 'none' WHEN ks_statistic > 0.5 THEN 'high' ELSE 'significant' END")" = 0
check "the 1.0 drift report is still there" test "$(q "SELECT count(DISTINCT report_id) FROM nids.drift_reports")" = 1
check "a trained 1.0 version's health on its own training flows raises no alarm (like with like: every flow against every training flow; benign-called flows against all of them alarmed)" \
	test "$(q "SELECT string_agg(status, ',') FROM nids_health('SELECT * FROM legacy_sep', 'sep10') WHERE check_name IN ('drifting_features', 'overall')" 2>/dev/null)" = ok,ok
check "1.1 logs a new report after it (the sequence's next value, under this node's tag)" \
	test "$(q "SELECT nids_log_drift('SELECT * FROM legacy_flows', 'legacy_trained') & 4294967295")" = 2
check "nids_deploy (now C) rolls back a 1.0 version" \
	q "SELECT nids_import_xgboost('legacy_softprob_json', booster, feature_names, class_labels) FROM nids.model_versions WHERE name = 'legacy_softprob_json';
	   SELECT nids_deploy('legacy_softprob_json', 1)"
check "and the rolled-back version is deployed" \
	test "$(q "SELECT version FROM nids.models WHERE name = 'legacy_softprob_json' AND deployed")" = 1
check "the internal 1.0 helpers are gone" \
	test "$(q "SELECT count(*) FROM pg_proc WHERE proname IN ('_register_model', '_check_window_query')")" = 0

# the whole regression suite on an updated database, its catalogue emptied
run_suite() {
	local out
	q "SELECT nids_drop_model(name) FROM (SELECT DISTINCT name FROM nids.models) m;
	   TRUNCATE nids.drift_reports, nids.health_reports; ALTER SEQUENCE nids.drift_report_id RESTART" >/dev/null
	out=$(mktemp -d)
	if make -s installcheck REGRESS_OPTS="--inputdir=. --outputdir=$out --use-existing --dbname=$DB" >"$out/log" 2>&1; then
		check "the pg_regress suite passes on the database updated from $1" true
	else
		cat "$out/log" "$out/regression.diffs" 2>/dev/null | head -80
		check "the pg_regress suite passes on the database updated from $1" false
	fi
	rm -rf "$out"
}
q "DROP TABLE legacy_vectors, legacy_flows, legacy_sep, scores_before, trained_before, drift_before" >/dev/null
run_suite 1.0

# 1.1: a trained version, a drift report, and a flow table scored by the trigger
dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB" || exit 1
check "nids 1.1 installs" q "CREATE EXTENSION nids VERSION '1.1'"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" >/dev/null <<'SQL' || { echo "not ok - 1.1 set-up"; exit 1; }
\set tbl flows11
\set n 1500
\set seed 0.31
\set shift 1.0
\i test/fixtures/flows.sql
SELECT nids_train('flows11', model => 'm11', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 8}}');
SELECT nids_log_drift('SELECT * FROM flows11', 'm11');
CREATE TABLE live11 (LIKE flows11);
ALTER TABLE live11 ADD COLUMN predicted_label text, ADD COLUMN novelty float8, ADD COLUMN verdict text;
CREATE TRIGGER score BEFORE INSERT ON live11 FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('m11');
INSERT INTO live11 SELECT * FROM flows11 WHERE flow_number <= 700;
CREATE TABLE ensemble11 AS SELECT f.flow_number, (nids_ensemble(nids_features(f, 'm11'), 'm11')).* FROM flows11 f;
CREATE TABLE health11 AS SELECT * FROM nids_health('SELECT * FROM flows11', 'm11');
SQL
check "ALTER EXTENSION nids UPDATE from 1.1 succeeds" q "ALTER EXTENSION nids UPDATE"
check "the extension is 1.3" test "$(q "SELECT extversion FROM pg_extension WHERE extname = 'nids'")" = "1.3"
check "the 1.1 version's verdicts are identical" \
	test "$(q "SELECT count(*) FROM flows11 f JOIN ensemble11 b USING (flow_number),
		LATERAL (SELECT nids_ensemble(nids_features(f, 'm11'), 'm11') AS e) s
		WHERE (s.e).label IS DISTINCT FROM b.label OR (s.e).probability IS DISTINCT FROM b.probability
		OR (s.e).novelty IS DISTINCT FROM b.novelty OR (s.e).verdict IS DISTINCT FROM b.verdict")" = 0
check "and its health is the same" \
	test "$(q "SELECT count(*) FROM (SELECT * FROM health11 EXCEPT SELECT * FROM nids_health('SELECT * FROM flows11', 'm11')) d")" = 0
check "the 1.1 trigger scores rows inserted after the update as before" \
	test "$(q "INSERT INTO live11 SELECT * FROM flows11 WHERE flow_number > 700;
		SELECT count(*) FROM live11 l JOIN ensemble11 b USING (flow_number)
		WHERE l.verdict IS DISTINCT FROM b.verdict OR l.predicted_label IS DISTINCT FROM b.label")" = 0
check "the 1.1 drift report is still there" test "$(q "SELECT count(DISTINCT report_id) FROM nids.drift_reports")" = 1
check "the 1.1 flow table takes the 1.2 alert trigger" \
	q "ALTER TABLE live11 ADD COLUMN source_ip inet, ADD COLUMN \"timestamp\" timestamptz;
	   CREATE TRIGGER alerts AFTER INSERT ON live11 REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('m11');
	   INSERT INTO live11 SELECT f.*, NULL, NULL, NULL, '10.9.9.9', now() FROM flows11 f WHERE label = 'DDoS'"
check "and its flows open an incident" \
	test "$(q "SELECT count(*) FROM nids.alerts WHERE src_ip = '10.9.9.9' AND class = 'DDoS'")" = 1
q "DROP TABLE live11, flows11, ensemble11, health11; DELETE FROM nids.alerts" >/dev/null
run_suite 1.1

# 1.2: a trained and an adapted version, drift and health reports, a flow
# table with the scoring, alert and scan triggers, its incidents and scan
# state, and a loader role that 1.2 would have let feed
dropdb --if-exists "$DB" >/dev/null 2>&1
createdb "$DB" || exit 1
q "DROP ROLE IF EXISTS up_loader; DROP ROLE IF EXISTS up_admin" >/dev/null 2>&1
check "nids 1.2 installs" q "CREATE EXTENSION nids VERSION '1.2'"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" >/dev/null <<'SQL' || { echo "not ok - 1.2 set-up"; exit 1; }
SET client_min_messages = warning;
\set tbl flows12
\set n 1500
\set seed 0.32
\set shift 1.0
\i test/fixtures/flows.sql
\set tbl local12
\set n 600
\set seed 0.33
\set shift 2.5
\i test/fixtures/flows.sql
SELECT nids_train('flows12', model => 'm12', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 8}}');
SELECT nids_adapt('m12', 'SELECT * FROM local12 WHERE label = ''BENIGN''');
SELECT nids_log_drift('SELECT * FROM flows12', 'm12');
CREATE ROLE up_loader;
CREATE TABLE live12 (LIKE flows12, source_ip inet, destination_ip inet, "timestamp" timestamptz,
	predicted_label text, probability float8, novelty float8, verdict text);
CREATE TRIGGER score BEFORE INSERT ON live12 FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('m12');
CREATE TRIGGER alerts AFTER INSERT ON live12 REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('m12');
CREATE TRIGGER scans AFTER INSERT ON live12 REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger();
GRANT INSERT ON live12 TO up_loader;
GRANT SELECT ON flows12 TO up_loader;
INSERT INTO live12 SELECT f.*, ('10.8.0.' || (f.flow_number::int % 3))::inet, ('10.9.0.' || (f.flow_number::int % 200))::inet,
	'2024-08-01 10:00+00'::timestamptz + f.flow_number * interval '1 s'
	FROM flows12 f WHERE flow_number <= 700;
CREATE TABLE ensemble12 AS SELECT f.flow_number, v.version, (nids_ensemble(nids_features(f, 'm12@' || v.version), 'm12@' || v.version)).*
	FROM flows12 f, (SELECT version FROM nids.models WHERE name = 'm12') v;
CREATE TABLE health12 AS SELECT * FROM nids_health('SELECT * FROM flows12', 'm12');
CREATE TABLE alerts12 AS SELECT alert_id, kind, class, src_ip, flows FROM nids.alerts;
SQL
check "an adaptation on the 1.2 catalogue, by the 1.3 library, has no decision threshold to store" \
	test "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'nids.model_versions'::regclass AND attname = 'benign_threshold'")" = 0
check "1.2 made incidents and scan state to keep" \
	test "$(q "SELECT (SELECT count(*) > 0 FROM alerts12) AND (SELECT count(*) > 0 FROM nids.scan_state)")" = t
check "ALTER EXTENSION nids UPDATE from 1.2 succeeds" q "ALTER EXTENSION nids UPDATE"
check "the extension is 1.3" test "$(q "SELECT extversion FROM pg_extension WHERE extname = 'nids'")" = "1.3"
check "the 1.2 versions' verdicts (trained and adapted) are identical" \
	test "$(q "SELECT count(*) FROM flows12 f JOIN ensemble12 b USING (flow_number),
		LATERAL (SELECT nids_ensemble(nids_features(f, 'm12@' || b.version), 'm12@' || b.version) AS e) s
		WHERE (s.e).label IS DISTINCT FROM b.label OR (s.e).probability IS DISTINCT FROM b.probability
		OR (s.e).novelty IS DISTINCT FROM b.novelty OR (s.e).verdict IS DISTINCT FROM b.verdict")" = 0
check "and its health is the same" \
	test "$(q "SELECT count(*) FROM (SELECT * FROM health12 EXCEPT SELECT * FROM nids_health('SELECT * FROM flows12', 'm12')) d")" = 0
check "the 1.2 incidents are all still there" \
	test "$(q "SELECT count(*) FROM alerts12 o JOIN nids.alerts a USING (alert_id) WHERE a.flows = o.flows")" = "$(q "SELECT count(*) FROM alerts12")"
refused=$(psql -X -q -d "$DB" -v VERBOSITY=verbose 2>&1 <<'SQL'
SET ROLE up_loader;
INSERT INTO live12 SELECT f.*, '10.8.0.1', '10.9.0.1', '2024-08-01 11:00+00' FROM flows12 f WHERE flow_number = 701;
SQL
)
check "the 1.2 loader, not a member of nids_feeder, is refused by the triggers (42501)" grep -q "ERROR:  42501" <<<"$refused"
check "granted nids_feeder, it feeds: the incidents grow" \
	test "$(q "GRANT nids_feeder TO up_loader; SET ROLE up_loader;
		INSERT INTO live12 SELECT f.*, ('10.8.0.' || (f.flow_number::int % 3))::inet, ('10.9.0.' || (f.flow_number::int % 200))::inet,
			'2024-08-01 10:00+00'::timestamptz + f.flow_number * interval '1 s' FROM flows12 f WHERE flow_number > 700;
		RESET ROLE;
		SELECT sum(a.flows) > sum(o.flows) FROM alerts12 o JOIN nids.alerts a USING (alert_id)")" = t
check "the 1.2 trigger scored the rows inserted after the update as before" \
	test "$(q "SELECT count(*) FILTER (WHERE l.verdict IS DISTINCT FROM b.verdict OR l.predicted_label IS DISTINCT FROM b.label)
		|| '/' || count(*) FROM live12 l JOIN ensemble12 b USING (flow_number)
		WHERE b.version = (SELECT version FROM nids.models WHERE name = 'm12' AND deployed)")" = 0/1500
check "a member of nids_admin adapts after the update" \
	test "$(q "CREATE ROLE up_admin IN ROLE nids_admin; GRANT SELECT ON flows12, local12 TO up_admin; SET ROLE up_admin;
		SELECT nids_adapt('m12@1', 'SELECT * FROM local12 WHERE label = ''BENIGN''') ->> 'method'")" = retrained
check "and the version adapted on 1.3 has its decision threshold; the 1.2 ones none" \
	test "$(q "SELECT string_agg((benign_threshold IS NOT NULL)::text, ',' ORDER BY version) FROM nids.model_summary WHERE name = 'm12'")" = "false,false,true"
# a version with a threshold cannot go into a catalogue that cannot store it
tau_dir=$(mktemp -d)
chmod 755 "$tau_dir"
psql -X -q -d "$DB" -c "COPY (SELECT encode(nids_export_model('m12@3'), 'base64')) TO STDOUT" >"$tau_dir/tau.b64"
chmod 644 "$tau_dir/tau.b64"
createdb "${DB}_12" >/dev/null
refused=$(psql -X -q -d "${DB}_12" -v VERBOSITY=verbose 2>&1 <<SQL
CREATE EXTENSION nids VERSION '1.2';
CREATE TABLE b (t text);
\copy b FROM '$tau_dir/tau.b64'
SELECT nids_import_model(decode(t, 'base64'), false) FROM b;
SQL
)
dropdb "${DB}_12" >/dev/null 2>&1
rm -rf "$tau_dir"
check "a bundle with a threshold is refused by a 1.2 catalogue (55000, update first)" \
	grep -q "ERROR:  55000: the nids catalogue cannot store a decision threshold before 1.3" <<<"$refused"
q "DROP TABLE live12, flows12, local12, ensemble12, health12, alerts12; DELETE FROM nids.alerts; DELETE FROM nids.scan_state;
   DROP OWNED BY up_loader, up_admin; DROP ROLE up_loader, up_admin" >/dev/null
run_suite 1.2

echo "upgrade: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
