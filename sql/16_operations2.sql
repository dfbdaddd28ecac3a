-- Operations, round two (the frictions a new user hit): explanations of a
-- value many benign flows share, and what a trigger table without
-- addresses or times is told.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\set tbl flows_op
\set n 1500
\set seed 0.51
\set shift 1.0
\i test/fixtures/flows.sql
\o /dev/null
SELECT nids_train('flows_op', model => 'op', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 10}}');
\o
\set ECHO all
\set SHOW_CONTEXT never
\set VERBOSITY default

-- a value many benign flows share reads as the benign median when the tie
-- holds the median (port 443: 44% of benign flows; it read "higher than
-- 86.8% of benign flows", the share at or below it), and a value above a
-- tie is placed by the flows strictly below it
SELECT DISTINCT e.feature, e.value, e.benign_median, round(e.benign_percentile::numeric, 3) AS at_or_below, e.reason
FROM flows_op f, LATERAL nids_explain_verdict(nids_features(f, 'op'), 'op', 100) e
WHERE (e.feature = 'destination_port' AND e.value = 443) OR (e.feature = 'active_mean' AND e.value = 0)
ORDER BY 1;
SELECT e.feature, round(e.value::numeric, 1) AS value, e.benign_median, round(e.benign_percentile::numeric, 3) AS at_or_below, e.reason
FROM flows_op f, LATERAL nids_explain_verdict(nids_features(f, 'op'), 'op', 100) e
WHERE e.feature = 'active_mean' AND e.value > 0 AND e.benign_percentile < 1
ORDER BY e.value LIMIT 1;

-- the alert and scan triggers on a table whose flows carry no address or
-- time: the message says what the table lacks and what to do
CREATE TABLE bare_op (LIKE flows_op);
CREATE TRIGGER alerts AFTER INSERT ON bare_op REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('op');
INSERT INTO bare_op SELECT * FROM flows_op LIMIT 5;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER alerts ON bare_op;
CREATE TRIGGER scans AFTER INSERT ON bare_op REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger();
INSERT INTO bare_op SELECT * FROM flows_op LIMIT 5;
\echo :LAST_ERROR_SQLSTATE
DROP TABLE bare_op;
-- "if_better" never keeps a deployed version that cannot score the table
-- it is judged on (below nids.min_feature_coverage of its features there):
-- the new version, trained on what the table has, is deployed
CREATE TABLE narrow_op AS SELECT destination_port, flow_duration, total_fwd_packets,
	total_backward_packets, label FROM flows_op;
SELECT r ->> 'deployed' AS deployed, r ->> 'deploy_reason' AS why
FROM (SELECT nids_train('narrow_op', model => 'op', options => '{"xgboost": {"num_boost_round": 5}}') AS r) s;
SELECT version, deployed FROM nids.models WHERE name = 'op' ORDER BY version;
-- a table the deployed version can score is judged by F1 as before
SELECT r ->> 'deploy_reason' LIKE 'hold-out macro F1 %' AS judged_by_f1
FROM (SELECT nids_train('flows_op', model => 'op', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 5}}') AS r) s;
DROP TABLE narrow_op;
SELECT nids_drop_model('op');
DROP TABLE flows_op;
