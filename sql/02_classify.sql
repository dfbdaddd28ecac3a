-- nids_classify and nids_classify_proba agree with XGBoost itself.
-- Expected labels and probabilities come from XGBoost (test/fixtures/generate.py)
-- on vectors with missing values (NULL and NaN), +/-Infinity and values beyond
-- float32, mapped as nids maps them.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\i test/fixtures/xgb_fixtures.sql
\o /dev/null
SELECT nids_import_xgboost('cl_' || name, booster, features, classes) FROM fx_models;
\o
\set ECHO all

-- native evaluator: every label equal, every probability within 1e-6
CREATE TEMP VIEW agreement AS
SELECT m.name, count(*) AS vectors,
       count(*) FILTER (WHERE nids_classify(v.features, 'cl_' || m.name) = e.label) AS same_label,
       max((SELECT max(abs(a - b)) FROM unnest(nids_classify_proba(v.features, 'cl_' || m.name), e.proba) AS u(a, b))) < 1e-6 AS proba_within_1e6
FROM fx_models m
JOIN fx_expected e ON e.model = split_part(m.name, '_', 1)
JOIN fx_vectors v ON v.id = e.id
GROUP BY m.name ORDER BY m.name;
SELECT * FROM agreement;

-- the wide node form (for models beyond 16-bit indices) agrees too
SET nids.compact_evaluator = off;
SELECT * FROM agreement;
RESET nids.compact_evaluator;

-- XGBoost's own predictor inside the backend gives the same answers
SET nids.predictor = xgboost;
SELECT * FROM agreement;
RESET nids.predictor;

-- A few flows as a user sees them
SELECT v.id, nids_classify(v.features, 'cl_softprob_json') AS label,
       (SELECT array_agg(round(p::numeric, 4)) FROM unnest(nids_classify_proba(v.features, 'cl_softprob_json')) p) AS proba
FROM fx_vectors v WHERE v.id IN (0, 1, 300, 301, 302, 303, 304) ORDER BY v.id;

-- Infinity is a value, not an error; all-missing vectors score too
SELECT nids_classify(ARRAY['Infinity', '-Infinity', 'NaN', NULL, 1e308, -1e308]::float8[], 'cl_logistic_json') IS NOT NULL AS scored;

-- NULL in, NULL out
SELECT nids_classify(NULL, 'cl_softprob_json') IS NULL AS null_features;

-- the default model name is 'default'
SELECT nids_import_xgboost('default', booster, features, classes) FROM fx_models WHERE name = 'logistic_ubj';
SELECT nids_classify(features) AS label FROM fx_vectors WHERE id = 300;

-- a new version deployed in this session is used by the next statement
SELECT nids_import_xgboost('default', booster, features, classes) FROM fx_models WHERE name = 'softprob_json';
SELECT nids_classify(features) IN ('BENIGN', 'DoS Hulk', 'PortScan') AS uses_new_version FROM fx_vectors WHERE id = 300;
SELECT nids_deploy('default', 1);
SELECT nids_classify(features) IN ('BENIGN', 'ATTACK') AS rolled_back FROM fx_vectors WHERE id = 300;
SELECT nids_drop_model('default');
