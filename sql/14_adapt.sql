-- Adapting to a network: nids_adapt fits a new, undeployed version to the
-- local network from flows of a period believed benign.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\set tbl flows_ad
\set n 2000
\set seed 0.37
\set shift 1.0
\i test/fixtures/flows.sql
\set tbl local_ad
\set n 1200
\set seed 0.38
\set shift 2.5
\i test/fixtures/flows.sql
\o /dev/null
SELECT nids_train('flows_ad', model => 'ad', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 10}}');
\o
\set ECHO all
\set SHOW_CONTEXT never

-- another network: its benign traffic is 2.5 times larger and faster
CREATE TEMP TABLE local_quiet AS SELECT * FROM local_ad WHERE label = 'BENIGN';
-- nids_health on a network far from the training one says the model does
-- not fit, and names the next step
\set ECHO none
\set tbl far_ad
\set n 600
\set seed 0.39
\set shift 20
\i test/fixtures/flows.sql
\set ECHO all
SELECT check_name, status FROM nids_health('SELECT * FROM far_ad WHERE label = ''BENIGN''', 'ad') ORDER BY check_name;
-- on traffic like the training flows: no NOTICE
SELECT check_name, status FROM nids_health('SELECT * FROM flows_ad', 'ad') WHERE check_name = 'overall';
-- a window without most of the model's features: train on what it has
SELECT check_name, status FROM nids_health('SELECT destination_port, label FROM local_ad', 'ad')
WHERE check_name IN ('feature_coverage', 'overall') ORDER BY check_name;
-- both
SELECT check_name, status FROM nids_health('SELECT destination_port, flow_duration, total_fwd_packets, label FROM far_ad WHERE label = ''BENIGN''', 'ad')
WHERE status = 'alarm' ORDER BY check_name;
SELECT r->>'method' AS method, (r->>'version')::int > 1 AS new_version, r->>'adapted_from' AS adapted_from,
	round((r->>'local_flagged_before')::numeric, 3) AS local_flagged_before,
	round((r->>'local_flagged_after')::numeric, 3) AS local_flagged_after,
	(r->>'attack_recall_after')::float8 >= (r->>'attack_recall_before')::float8 - 0.02 AS keeps_attack_recall,
	jsonb_typeof(r->'features_dropped') AS dropped, r->'local_flows' AS local_flows, r->'deployed' AS deployed
FROM (SELECT nids_adapt('ad', 'SELECT * FROM local_quiet') AS r) s;
SELECT version, deployed, metrics->'adaptation'->>'adapted_from' AS adapted_from,
	metrics->'adaptation'->>'training_source' AS training_source
FROM nids.model_versions WHERE name = 'ad' ORDER BY version;
-- an adapted version is one new version, its summary filled as a trained one's
SELECT version, train_rows > 0 AS has_train_rows, macro_f1 > 0.5 AS has_macro_f1, novelty_method
FROM nids.model_summary WHERE name = 'ad' ORDER BY version;
-- an adapted version adapts again, from the same training source
SELECT r->>'method' AS method, r->>'adapted_from' LIKE 'ad@%' AND r->>'adapted_from' <> 'ad@1' AS from_the_adapted,
	r->>'training_source' AS training_source
FROM (SELECT nids_adapt('ad@' || (SELECT max(version) FROM nids.model_versions WHERE name = 'ad'),
	'SELECT * FROM local_quiet', '{"seed": 7}') AS r) s;
-- options.source_benign: by default the training source's benign flows are
-- replaced by the local ones ("drop"); "keep" adds the local ones to them
SELECT o.opt, r->>'source_benign' AS source_benign, r->>'why' LIKE 'retrained from the training source''s attack flows%' AS attack_flows_only,
	(r->>'attack_recall_after')::float8 >= (r->>'attack_recall_before')::float8 - 0.02 AS keeps_attack_recall
FROM (VALUES ('{}'), ('{"source_benign": "keep"}'), ('{"source_benign": "drop"}')) o(opt),
	LATERAL (SELECT nids_adapt('ad@1', 'SELECT * FROM local_quiet', o.opt::jsonb) AS r) s;
-- without a training source (an imported version) only the gate and the
-- benign reference are fitted to the local flows, and the report says so
SELECT nids_import_xgboost('ad_imported', booster, feature_names, class_labels) AS version
FROM nids.model_versions WHERE name = 'ad' AND version = 1;
SELECT r->>'method' AS method, r->>'why' LIKE 'the training source is not known%' AS says_why,
	r->'features_dropped' AS dropped, r->'attack_recall_after' AS recall
FROM (SELECT nids_adapt('ad_imported', 'SELECT * FROM local_quiet') AS r) s;
-- options.deploy deploys the adapted version
CREATE TEMP TABLE adapted AS SELECT nids_adapt('ad_imported', 'SELECT * FROM local_quiet', '{"deploy": true}') AS r;
SELECT (r->>'version')::int = (SELECT version FROM nids.models WHERE name = 'ad_imported' AND deployed) AS deployed
FROM adapted;
-- versions follow each other (no version made and dropped on the way); a
-- recalibrated version of an imported model has no hold-out to report
SELECT name, array_agg(version ORDER BY version) AS versions,
	array_agg(train_rows IS NOT NULL ORDER BY version) AS has_train_rows
FROM nids.model_summary WHERE name IN ('ad', 'ad_imported') GROUP BY name ORDER BY name;

-- bad input: too few flows, unknown options, a query that writes, too few features
SELECT nids_adapt('ad', 'SELECT * FROM local_quiet LIMIT 39');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('ad', 'SELECT * FROM local_quiet', '{"window": 3}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('ad', 'SELECT * FROM local_quiet', '{"drop_ks": 2}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('ad', 'SELECT * FROM local_quiet', '{"source_benign": "some"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('ad', 'SELECT * FROM local_quiet', '{"source_benign": ["drop"]}');
\echo :LAST_ERROR_SQLSTATE
CREATE FUNCTION ad_write() RETURNS int LANGUAGE sql AS 'INSERT INTO local_ad (label) VALUES (''x'') RETURNING 1';
SELECT nids_adapt('ad', 'SELECT *, ad_write() FROM local_quiet');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('ad', 'SELECT destination_port, flow_duration FROM local_quiet');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('no_such_model', 'SELECT * FROM local_quiet');
\echo :LAST_ERROR_SQLSTATE
SHOW search_path;
-- the benign query resolves names with the caller's search_path, and only it
CREATE SCHEMA adapt_s;
CREATE TABLE adapt_s.quiet AS SELECT * FROM local_quiet;
SET search_path = adapt_s, public;
SELECT nids_adapt('ad', 'SELECT * FROM quiet') ->> 'method' AS method;
SHOW search_path;
RESET search_path;
DROP SCHEMA adapt_s CASCADE;
-- adaptation is a training step in C: no PL/pgSQL, nothing reached through SQL
SELECT l.lanname, to_regprocedure('nids._adapt(text, text, jsonb, text)') AS plpgsql_left
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.proname = 'nids_adapt';
SELECT nids_drop_model('ad');
SELECT nids_drop_model('ad_imported');
