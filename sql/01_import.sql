-- The model catalogue: import, versions, deploy, rollback, drop, export.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\i test/fixtures/xgb_fixtures.sql
\set ECHO all

-- XGBoost models, as JSON and as UBJSON, for each supported objective
SELECT name, nids_import_xgboost('fx_' || name, booster, features, classes) AS version
FROM fx_models ORDER BY name;

SELECT name, version, deployed, feature_names, class_labels,
       metrics->>'objective' AS objective, metrics->>'format' AS format
FROM nids.models ORDER BY name, version;

-- A second import of the same name is version 2 and becomes the deployed one
SELECT nids_import_xgboost('fx_softprob_json', booster, features, classes)
FROM fx_models WHERE name = 'softprob_json';
SELECT version, deployed FROM nids.models WHERE name = 'fx_softprob_json' ORDER BY version;

-- deploy => false registers without deploying
SELECT nids_import_xgboost('fx_softprob_json', booster, features, classes, deploy => false)
FROM fx_models WHERE name = 'softprob_json';
SELECT version, deployed FROM nids.models WHERE name = 'fx_softprob_json' ORDER BY version;

-- Roll back to version 1, then drop version 3
SELECT nids_deploy('fx_softprob_json', 1);
SELECT version, deployed FROM nids.models WHERE name = 'fx_softprob_json' ORDER BY version;
SELECT nids_drop_model('fx_softprob_json', 3);
SELECT version, deployed FROM nids.models WHERE name = 'fx_softprob_json' ORDER BY version;

-- Export gives XGBoost JSON, for JSON and UBJSON imports alike: importing the
-- export again scores exactly as the original, through XGBoost's own loader.
SELECT convert_from(substr(nids_export_xgboost('fx_softprob_ubj'), 1, 10), 'UTF8') AS head;
SELECT nids_import_xgboost('fx_roundtrip', nids_export_xgboost('fx_softprob_ubj'), features, classes)
FROM fx_models WHERE name = 'softprob_ubj';
-- the export names the model's features, so XGBoost's bindings know the columns
SELECT convert_from(nids_export_xgboost('fx_softprob_ubj'), 'UTF8')::jsonb #> '{learner,feature_names}' = to_jsonb(features) AS names_exported,
       convert_from(nids_export_xgboost('fx_softprob_ubj'), 'UTF8')::jsonb #> '{learner,feature_types}' = to_jsonb(array_fill('float'::text, ARRAY[cardinality(features)])) AS types_exported
FROM fx_models WHERE name = 'softprob_ubj';
-- any version by 'name@N'
SELECT nids_export_xgboost('fx_roundtrip@1') = nids_export_xgboost('fx_roundtrip') AS by_version;
SELECT nids_export_xgboost('fx_roundtrip@2');
\echo :LAST_ERROR_SQLSTATE
SET nids.predictor = xgboost;
SELECT count(*) AS vectors,
       count(*) FILTER (WHERE nids_classify(v.features, 'fx_roundtrip') = e.label) AS same_label,
       max((SELECT max(abs(a - b)) FROM unnest(nids_classify_proba(v.features, 'fx_roundtrip'), e.proba) AS u(a, b))) < 1e-6 AS proba_within_1e6
FROM fx_vectors v JOIN fx_expected e ON e.id = v.id AND e.model = 'softprob';
RESET nids.predictor;

-- XGBoost 2.x writes base_score as "[5E-1]" and a newer version: read the same
SELECT nids_import_xgboost('fx_v2', convert_to(replace(replace(convert_from(booster, 'UTF8'),
	'"base_score":"5E-1"', '"base_score":"[5E-1]"'), '"version":[1,7,4]', '"version":[2,1,3]'), 'UTF8'),
	features, classes)
FROM fx_models WHERE name = 'softprob_json';
SELECT count(*) FILTER (WHERE nids_classify(v.features, 'fx_v2') = e.label) AS same_label
FROM fx_vectors v JOIN fx_expected e ON e.id = v.id AND e.model = 'softprob';
SELECT nids_drop_model('fx_v2');

-- Models are part of pg_dump
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'nids';

-- Dropping every version of a model
SELECT nids_drop_model('fx_roundtrip');
SELECT count(*) FROM nids.models WHERE name = 'fx_roundtrip';
