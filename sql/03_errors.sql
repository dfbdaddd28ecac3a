-- Every error a user can reach while importing and scoring: a clear message
-- and a specific SQLSTATE, printed after each.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\i test/fixtures/xgb_fixtures.sql
\o /dev/null
SELECT nids_import_xgboost('er_softprob', booster, features, classes) FROM fx_models WHERE name = 'softprob_json';
\o
\set ECHO all
\set SHOW_CONTEXT never

-- wrong length
SELECT nids_classify(ARRAY[1, 2, 3]::float8[], 'er_softprob');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_classify_proba(ARRAY[1, 2, 3, 4, 5, 6, 7]::float8[], 'er_softprob');
\echo :LAST_ERROR_SQLSTATE
-- empty array
SELECT nids_classify('{}'::float8[], 'er_softprob');
\echo :LAST_ERROR_SQLSTATE
-- two dimensions
SELECT nids_classify(ARRAY[[1, 2, 3], [4, 5, 6]]::float8[], 'er_softprob');
\echo :LAST_ERROR_SQLSTATE
-- unknown model
SELECT nids_classify(ARRAY[1, 2, 3, 4, 5, 6]::float8[], 'no_such_model');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_export_xgboost('no_such_model');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_classify(ARRAY[1, 2, 3, 4, 5, 6]::float8[], repeat('x', 100));
\echo :LAST_ERROR_SQLSTATE
SELECT nids_deploy('er_softprob', 42);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_drop_model('er_softprob', 42);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_drop_model('no_such_model');
\echo :LAST_ERROR_SQLSTATE

-- bytes that do not parse
SELECT nids_import_xgboost('er_bad', '\x00010203'::bytea, ARRAY['a'], ARRAY['x', 'y']);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('er_bad', convert_to('{"learner": ', 'UTF8'), ARRAY['a'], ARRAY['x', 'y']);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('er_bad', convert_to('{"learner": {}}', 'UTF8'), ARRAY['a'], ARRAY['x', 'y']);
\echo :LAST_ERROR_SQLSTATE
-- truncated UBJSON
SELECT nids_import_xgboost('er_bad', substr(booster, 1, length(booster) / 2), features, classes)
FROM fx_models WHERE name = 'softprob_ubj';
\echo :LAST_ERROR_SQLSTATE
-- a child index out of range
SELECT nids_import_xgboost('er_bad',
	convert_to(regexp_replace(convert_from(booster, 'UTF8'), '"left_children":\[1,', '"left_children":[99999,'), 'UTF8'),
	features, classes)
FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
-- the root's right child is its left child too: XGBoost's predictor would go
-- to the node after it, so children must be side by side
SELECT nids_import_xgboost('er_bad',
	convert_to(regexp_replace(convert_from(booster, 'UTF8'), '"right_children":\[2,', '"right_children":[1,'), 'UTF8'),
	features, classes)
FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
-- a cycle with children side by side: node 1's children are node 1 and 2
SELECT nids_import_xgboost('er_bad',
	convert_to(regexp_replace(regexp_replace(convert_from(booster, 'UTF8'),
		'"left_children":\[1,3,', '"left_children":[1,1,'), '"right_children":\[2,4,', '"right_children":[2,2,'), 'UTF8'),
	features, classes)
FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
-- a split on a feature the model does not have
SELECT nids_import_xgboost('er_bad',
	convert_to(regexp_replace(convert_from(booster, 'UTF8'), '"split_indices":\[[0-9]+,', '"split_indices":[4000,'), 'UTF8'),
	features, classes)
FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
-- an objective nids does not score
SELECT nids_import_xgboost('er_bad',
	convert_to(replace(convert_from(booster, 'UTF8'), 'multi:softprob', 'reg:squarederror'), 'UTF8'),
	features, classes)
FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE

-- count mismatches
SELECT nids_import_xgboost('er_bad', booster, features[1:5], classes) FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('er_bad', booster, features, classes[1:2]) FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('er_bad', booster, features, ARRAY['BENIGN', 'A', 'B']) FROM fx_models WHERE name = 'logistic_json';
\echo :LAST_ERROR_SQLSTATE

-- bad names and NULLs
SELECT nids_import_xgboost('', booster, features, classes) FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('er_bad', booster, features, ARRAY['BENIGN', 'BENIGN', 'X']) FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('er_bad', booster, ARRAY['a', NULL, 'c', 'd', 'e', 'f'], classes) FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('er_bad', booster, '{}'::text[], classes) FROM fx_models WHERE name = 'softprob_json';
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('er_bad', NULL, ARRAY['a'], ARRAY['x', 'y']);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_deploy(NULL, 1);
\echo :LAST_ERROR_SQLSTATE

-- nothing half-written: no er_bad version exists
SELECT count(*) FROM nids.models WHERE name = 'er_bad';

-- a catalogue row edited by hand is validated when a backend loads it
UPDATE nids.model_versions SET native = substr(native, 1, 40) WHERE name = 'er_softprob';
SELECT nids_classify(ARRAY[1, 2, 3, 4, 5, 6]::float8[], 'er_softprob');
\echo :LAST_ERROR_SQLSTATE
-- a base margin that is not a number
SELECT nids_import_xgboost('er_fresh', booster, features, classes) FROM fx_models WHERE name = 'softprob_json';
UPDATE nids.model_versions SET native = overlay((SELECT native FROM nids.model_versions WHERE name = 'er_fresh')
	PLACING '\xffffff7f'::bytea FROM 33 FOR 4) WHERE name = 'er_softprob';
SELECT nids_classify(ARRAY[1, 2, 3, 4, 5, 6]::float8[], 'er_softprob');
\echo :LAST_ERROR_SQLSTATE

-- settings are checked
SET nids.threads = 0;
\echo :LAST_ERROR_SQLSTATE
SET nids.predictor = 'gpu';
\echo :LAST_ERROR_SQLSTATE
SET nids.no_such_setting = 1;
\echo :LAST_ERROR_SQLSTATE
