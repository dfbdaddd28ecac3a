-- Hostile input, round two: what an ordinary role can send nids, and what
-- it gets back (a clear ERROR with a specific SQLSTATE, never a crash).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\i test/fixtures/xgb_fixtures.sql
\set ECHO all
\set SHOW_CONTEXT never
CREATE TEMP TABLE doc AS
	SELECT convert_from(booster, 'UTF8') AS json, features, classes
	FROM fx_models WHERE name = 'softprob_json';

-- nids and XGBoost must read the same document: a key twice is refused,
-- in JSON (XGBoost would take the second "trees", nids the first) ...
SELECT nids_import_xgboost('dup', convert_to(replace(json, '"trees":', '"trees":[],"trees":'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('dup', convert_to('{"version":[1,7,4],' || substr(json, 2), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
-- ... and in UBJSON: {"a": {}, "a": {}}
SELECT nids_import_xgboost('dup', '\x7b6901617b7d6901617b7d7d'::bytea, ARRAY['f'], ARRAY['x', 'y']);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS imported FROM nids.models WHERE name = 'dup';

-- what the differential fuzzer (fuzz/fuzz_xgboost_diff.c) found XGBoost reads
-- differently, or crashes on: refused too
SELECT nids_import_xgboost('diff', convert_to(replace(json, '"num_trees":"30"', '"num_trees":"29"'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('diff', convert_to(regexp_replace(json, '"default_left":\[1', '"default_left":[5'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('diff', convert_to(regexp_replace(json, '"categories_nodes":\[\]', '"categories_nodes":[0]'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('diff', convert_to(replace(json, '"num_target":"1"', '"num_target":"2"'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
-- white space inside an empty array: XGBoost refuses it (found by
-- fuzz/fuzz_xgboost_diff), so nids does too
SELECT nids_import_xgboost('diff', convert_to(regexp_replace(json, '"categories":\[\]', '"categories":[ ]'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
-- base_score in brackets is XGBoost 2.1's spelling of one number: an open
-- bracket alone is not (found by fuzz/fuzz_xgboost_diff: XGBoost 1.7 read
-- "[1E5" as another number)
SELECT nids_import_xgboost('diff', convert_to(regexp_replace(json, '"base_score":"[^"]*"', '"base_score":"[1E5"'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('diff', convert_to(regexp_replace(json, '"base_score":"[^"]*"', '"base_score":"5E-1]"'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
-- feature names and types nids does not read, but XGBoost refuses unless
-- they are strings (found by fuzz/fuzz_xgboost_diff)
SELECT nids_import_xgboost('diff', convert_to(regexp_replace(json, '"feature_types":\[[^]]*\]', '"feature_types":[-Infinity]'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('diff', convert_to(regexp_replace(json, '"feature_names":\[[^]]*\]', '"feature_names":["a",{}]'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('diff', convert_to(replace(json, '"size_leaf_vector":"0"}', '"size_leaf_vector":"1"}'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('diff', convert_to(regexp_replace(json, '"parents":\[2147483647,0,0,1,1', '"parents":[2147483647,0,0,1,-1'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('diff', convert_to(regexp_replace(json, '"id":1,', '"id":0,'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE
-- XGBoost 2.x writes size_leaf_vector 1 for scalar leaves: that imports
SELECT nids_import_xgboost('diff2', convert_to(replace(replace(json, '"size_leaf_vector":"0"', '"size_leaf_vector":"1"'),
	'"version":[1,7,4]', '"version":[2,0,3]'), 'UTF8'), features, classes) AS version FROM doc;
SELECT nids_drop_model('diff2');

-- a base_score beyond float32 is a document nids cannot use (22P03, not XX000)
SELECT nids_import_xgboost('big_base', convert_to(regexp_replace(json, '"base_score":"[^"]*"', '"base_score":"1E300"'), 'UTF8'),
	features, classes) FROM doc;
\echo :LAST_ERROR_SQLSTATE

-- documents larger than nids.max_model_bytes are refused before parsing
SHOW nids.max_model_bytes;
SET nids.max_model_bytes = 1024;
SELECT nids_import_xgboost('huge', decode(repeat('7b', 2000), 'hex'), ARRAY['f'], ARRAY['x', 'y']);
\echo :LAST_ERROR_SQLSTATE
RESET nids.max_model_bytes;

-- training: one value mapping everywhere (a numeric beyond float8 is the
-- largest float32, in training as in scoring), option values out of range
-- are 22023, labels too long to tell apart are refused
CREATE TABLE h_flows AS
	SELECT (g % 97)::numeric AS destination_port, (g % 13)::float8 AS total_fwd_packets,
		CASE WHEN g % 10 = 0 THEN 1e400::numeric ELSE (g % 7)::numeric END AS flow_duration,
		CASE WHEN g % 3 = 0 THEN 'BENIGN' WHEN g % 3 = 1 THEN 'DDoS' ELSE 'PortScan' END AS label
	FROM generate_series(1, 1500) g;
SELECT nids_train('h_flows', model => 'h', options => '{"xgboost": {"num_boost_round": 3}}') ? 'version' AS trained;
SELECT nids_classify(ARRAY[1, 1, 1e308]::float8[], 'h') = nids_classify(ARRAY[1, 1, 'Infinity']::float8[], 'h') AS same_extreme;
SELECT nids_train('h_flows', model => 'h2', options => '{"xgboost": {"max_depth": 1e400}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('h_flows', model => 'h2', options => '{"test_size": -1e400}');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE h_long AS SELECT * FROM h_flows;
UPDATE h_long SET label = repeat('x', 300) || label WHERE label = 'DDoS';
SELECT nids_train('h_long', model => 'h2', options => '{"xgboost": {"num_boost_round": 1}}');
\echo :LAST_ERROR_SQLSTATE

-- a window query runs read-only, with everything it calls: no writes, no
-- nextval, no row locks anywhere in it, no deploys (25006)
CREATE TABLE h_log (n int);
CREATE FUNCTION h_write() RETURNS int VOLATILE LANGUAGE sql AS 'INSERT INTO h_log VALUES (1) RETURNING 1';
CREATE FUNCTION h_flip() RETURNS int VOLATILE LANGUAGE plpgsql AS
	$$BEGIN PERFORM nids_deploy('h', 1); RETURN 1; END$$;
CREATE SEQUENCE h_seq;
SELECT count(*) FROM ks_drift('SELECT *, h_write() FROM h_flows', 'h');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM ks_drift('SELECT *, nextval(''h_seq'') FROM h_flows', 'h');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM ks_drift('SELECT *, h_flip() FROM h_flows', 'h');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM ks_drift('SELECT * FROM (SELECT * FROM h_flows FOR UPDATE) s', 'h');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM ks_drift('WITH c AS (SELECT * FROM h_flows FOR SHARE) SELECT * FROM c', 'h');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM ks_drift('SELECT * FROM h_flows WHERE EXISTS (SELECT 1 FROM h_log FOR UPDATE)', 'h');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_log_drift('SELECT *, h_write() FROM h_flows', 'h');
\echo :LAST_ERROR_SQLSTATE
SELECT (SELECT count(*) FROM h_log) AS rows_written, (SELECT is_called FROM h_seq) AS sequence_used,
	(SELECT count(*) FROM nids.drift_reports WHERE model = 'h') AS reports;
-- reading is fine, and so is scoring inside the window
SELECT count(*) AS features FROM ks_drift('SELECT f.*, nids_classify(nids_features(f, ''h''), ''h'') FROM h_flows f', 'h');
-- and the transaction is writable again afterwards
INSERT INTO h_log VALUES (2);
SELECT count(*) AS logged FROM h_log;

DROP TABLE h_flows, h_long, h_log;
DROP FUNCTION h_write(), h_flip();
DROP SEQUENCE h_seq;
SELECT nids_drop_model('h');
