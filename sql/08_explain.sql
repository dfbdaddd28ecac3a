-- Explanations: nids_contributions is XGBoost's pred_contribs (TreeSHAP),
-- for imported 1.x and 2.x documents and for models nids_train makes;
-- nids_explain, nids_explain_novelty, nids.feature_importance.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\i test/fixtures/xgb_fixtures.sql
\o /dev/null
SELECT nids_import_xgboost('ex_' || name, booster, features, classes) FROM fx_models;
-- the 2.x spelling of the same document
SELECT nids_import_xgboost('ex_softprob_v2', convert_to(replace(replace(convert_from(booster, 'UTF8'),
	'"base_score":"5E-1"', '"base_score":"[5E-1]"'), '"version":[1,7,4]', '"version":[2,1,3]'), 'UTF8'),
	features, classes)
FROM fx_models WHERE name = 'softprob_json';
\o
\set ECHO all
\set SHOW_CONTEXT never

-- equal to XGBoost's own pred_contribs (computed by python3-xgboost,
-- test/fixtures/generate.py) within 1e-5, every vector, every class,
-- missing values and infinities included
SELECT m.name, count(*) AS compared,
       max((SELECT max(abs(a - b)) FROM unnest(nids_contributions(v.features, m.name, c.class), c.contribs) u(a, b))) < 1e-5 AS within_1e5
FROM (VALUES ('ex_softprob_json', 'softprob'), ('ex_softprob_ubj', 'softprob'), ('ex_softprob_v2', 'softprob'),
             ('ex_softmax_json', 'softmax'), ('ex_softmax_ubj', 'softmax'),
             ('ex_logistic_json', 'logistic'), ('ex_logistic_ubj', 'logistic')) m(name, fixture)
JOIN fx_contribs c ON c.model = m.fixture
JOIN fx_vectors v ON v.id = c.id
GROUP BY m.name ORDER BY m.name;

-- contributions plus bias are the class's margin: softmax of them is the probability
SELECT count(*) AS vectors,
       count(*) FILTER (WHERE abs(p.proba - e.p) < 1e-5) AS same_probability
FROM fx_vectors v,
     LATERAL (SELECT (nids_classify_proba(v.features, 'ex_softprob_json'))[1] AS proba) p,
     LATERAL (SELECT exp(s[1]) / (exp(s[1]) + exp(s[2]) + exp(s[3])) AS p FROM
       (SELECT ARRAY[(SELECT sum(x) FROM unnest(nids_contributions(v.features, 'ex_softprob_json', 'BENIGN')) x),
                     (SELECT sum(x) FROM unnest(nids_contributions(v.features, 'ex_softprob_json', 'DoS Hulk')) x),
                     (SELECT sum(x) FROM unnest(nids_contributions(v.features, 'ex_softprob_json', 'PortScan')) x)] AS s) q) e;
-- the default class is the predicted one; binary: the negative class's are negated
SELECT count(*) FILTER (WHERE nids_contributions(v.features, 'ex_softprob_json') =
       nids_contributions(v.features, 'ex_softprob_json', nids_classify(v.features, 'ex_softprob_json'))) = count(*) AS default_is_predicted,
       count(*) FILTER (WHERE nids_contributions(v.features, 'ex_logistic_json', 'BENIGN') =
       (SELECT array_agg(-x) FROM unnest(nids_contributions(v.features, 'ex_logistic_json', 'ATTACK')) x)) = count(*) AS negated
FROM fx_vectors v;

-- a model trained by nids_train: nids' TreeSHAP against XGBoost's own
-- (nids.predictor = xgboost calls XGBoost's pred_contribs through its C API)
\set ECHO none
\set tbl flows_ex
\set n 2000
\set seed 0.23
\set shift 1.0
\i test/fixtures/flows.sql
\o /dev/null
SELECT nids_train('flows_ex', model => 'ex_trained', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 20}}');
\o
\set ECHO all
CREATE TEMP TABLE native_c AS SELECT flow_number, nids_contributions(nids_features(f, 'ex_trained'), 'ex_trained', 'DDoS') AS c
FROM flows_ex f WHERE flow_number <= 200;
SET nids.predictor = xgboost;
SELECT count(*) AS flows,
       max((SELECT max(abs(a - b)) FROM unnest(n.c, nids_contributions(nids_features(f, 'ex_trained'), 'ex_trained', 'DDoS')) u(a, b))) < 1e-5 AS same_as_xgboost
FROM flows_ex f JOIN native_c n USING (flow_number);
RESET nids.predictor;

-- nids_classify stops adding trees once bounds on the rest settle the
-- class (nids.label_bounds, 1.2): the same class as adding every tree, on
-- a model with many rounds (where the bounds settle most flows early) and
-- on the imported fixtures
\o /dev/null
SET client_min_messages = warning;
SELECT nids_train('flows_ex', model => 'ex_rounds', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 120, "max_depth": 8}}');
RESET client_min_messages;
\o
-- a 20-round model cut by hand: its last round keeps one tree of one class
-- (the bounds' last chunk ends inside a round), as a document may
CREATE TEMP TABLE cut AS
SELECT jsonb_set(jsonb_set(jsonb_set(j,
         '{learner,gradient_booster,model,trees}',
         (SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(j #> '{learner,gradient_booster,model,trees}') WITH ORDINALITY x(e, i) WHERE i <= keep)),
         '{learner,gradient_booster,model,tree_info}',
         (SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(j #> '{learner,gradient_booster,model,tree_info}') WITH ORDINALITY x(e, i) WHERE i <= keep)),
         '{learner,gradient_booster,model,gbtree_model_param,num_trees}', to_jsonb(keep::text)) AS j
FROM (SELECT j, jsonb_array_length(j #> '{learner,gradient_booster,model,trees}')
             - array_length((SELECT class_labels FROM nids.models WHERE name = 'ex_trained'), 1) + 1 AS keep
      FROM (SELECT convert_from(nids_export_xgboost('ex_trained'), 'UTF8')::jsonb AS j) s) s;
SELECT nids_import_xgboost('excut', convert_to(j::text, 'UTF8'),
       (SELECT feature_names FROM nids.models WHERE name = 'ex_trained'),
       (SELECT class_labels FROM nids.models WHERE name = 'ex_trained')) IS NOT NULL AS imported
FROM cut;
CREATE TEMP VIEW every_label AS
SELECT 'ex_rounds' AS model, f.flow_number AS id, nids_classify(nids_features(f, 'ex_rounds'), 'ex_rounds') AS label
FROM flows_ex f
UNION ALL
SELECT 'excut', f.flow_number, nids_classify(nids_features(f, 'excut'), 'excut')
FROM flows_ex f
UNION ALL
SELECT m.name, v.id, nids_classify(v.features, m.name)
FROM fx_vectors v, (SELECT DISTINCT name FROM nids.models WHERE name LIKE 'ex\_%\_%') m;
SET nids.label_bounds = off;
CREATE TEMP TABLE every_tree AS SELECT * FROM every_label;
RESET nids.label_bounds;
SELECT count(DISTINCT a.model) AS models, count(*) AS flows, count(*) FILTER (WHERE a.label = b.label) AS same_class
FROM every_tree a JOIN every_label b USING (model, id);
DROP VIEW every_label;

-- the per-leaf tables (1.2) give the very bits TreeSHAP's recursive walk
-- gives (nids.explain_tables = off): the trained model and every imported
-- fixture model, every class
CREATE TEMP VIEW every_contribution AS
SELECT 'ex_trained' AS model, f.flow_number AS id, c.label,
       nids_contributions(nids_features(f, 'ex_trained'), 'ex_trained', c.label)::text AS c
FROM flows_ex f, unnest((SELECT class_labels FROM nids.models WHERE name = 'ex_trained')) c(label)
WHERE f.flow_number <= 300
UNION ALL
SELECT m.name, v.id, c.label, nids_contributions(v.features, m.name, c.label)::text
FROM fx_vectors v,
     (SELECT DISTINCT name, class_labels FROM nids.models WHERE name LIKE 'ex\_%\_%') m,
     unnest(m.class_labels) c(label);
SET nids.explain_tables = off;
CREATE TEMP TABLE walked AS SELECT * FROM every_contribution;
RESET nids.explain_tables;
SELECT count(DISTINCT w.model) AS models, count(*) AS contributions,
       count(*) FILTER (WHERE w.c = t.c) AS same_bits
FROM walked w JOIN every_contribution t USING (model, id, label);
DROP VIEW every_contribution;

-- nids_explain: the top contributions to the predicted class, with values
SELECT count(*) AS rows, bool_and(value IS NOT DISTINCT FROM (SELECT (nids_features(f, 'ex_trained'))[array_position(
           (SELECT feature_names FROM nids.models WHERE name = 'ex_trained'), e.feature)])) AS values_match
FROM flows_ex f, LATERAL nids_explain(nids_features(f, 'ex_trained'), 'ex_trained', 3) e WHERE f.flow_number = 11;
SELECT bool_and(ordered) AS ordered FROM (
  SELECT abs(e.contribution) >= abs(lead(e.contribution) OVER ()) OR lead(e.contribution) OVER () IS NULL AS ordered
  FROM flows_ex f, LATERAL nids_explain(nids_features(f, 'ex_trained'), 'ex_trained', 10) e WHERE f.flow_number = 11) s;
SELECT * FROM nids_explain(ARRAY[1, 2]::float8[], 'ex_trained');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM flows_ex f, nids_explain(nids_features(f, 'ex_trained'), 'ex_trained', 0) e WHERE flow_number = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_contributions(v.features, 'ex_softprob_json', 'Botnet') FROM fx_vectors v LIMIT 1;
\echo :LAST_ERROR_SQLSTATE

-- nids_explain_novelty: the per-feature terms of the distance to the
-- nearest benign prototype, largest first; all of them sum to the distance
SELECT count(*) AS rows, bool_and(e.contribution >= 0) AS nonnegative
FROM flows_ex f, LATERAL nids_explain_novelty(nids_features(f, 'ex_trained'), 'ex_trained', 5) e
WHERE f.flow_number = 11;
-- (the prototypes gate's novelty is that distance over its threshold; the
-- joint gate, the default, has the same prototypes for the same rows and
-- seed, and explains the same distance)
SELECT nids_train('flows_ex', model => 'ex_proto', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 2}, "novelty": {"method": "prototypes"}}') ? 'version' AS trained;
SELECT count(*) AS rows,
       abs(sum(e.contribution) / (SELECT (metrics->'novelty'->>'threshold')::float8 FROM nids.models WHERE name = 'ex_proto')
           - nids_novelty(nids_features(f, 'ex_proto'), 'ex_proto')) < 1e-4 AS terms_sum_to_the_novelty,
       abs(sum(e.contribution) - (SELECT sum(j.contribution) FROM nids_explain_novelty(nids_features(f, 'ex_trained'), 'ex_trained', 1000) j)) < 1e-4 AS joint_explains_the_distance
FROM flows_ex f, LATERAL nids_explain_novelty(nids_features(f, 'ex_proto'), 'ex_proto', 1000) e
WHERE f.flow_number = 11 GROUP BY f.*;
SELECT nids_drop_model('ex_proto');

-- an imported model has no novelty gate until nids_attach_benign gives it one
SELECT * FROM nids_explain_novelty((SELECT features FROM fx_vectors WHERE id = 0), 'ex_softprob_json');
\echo :LAST_ERROR_SQLSTATE

-- a version stored by 1.0 (no node covers) still scores, and explaining it says what is missing
UPDATE nids.model_versions SET native = overlay(native PLACING '\x01000000'::bytea FROM 5 FOR 4)
WHERE name = 'ex_softmax_json';
UPDATE nids.model_versions SET native = substr(native, 1, length(native) - 4 * (SELECT (get_byte(native, 27) << 24) + (get_byte(native, 26) << 16) + (get_byte(native, 25) << 8) + get_byte(native, 24)))
WHERE name = 'ex_softmax_json';
-- (its id recomputed, as ALTER EXTENSION nids UPDATE computes it for 1.0's rows)
UPDATE nids.model_versions SET model_id = nids_model_id('ex_softmax_json') WHERE name = 'ex_softmax_json';
SELECT count(nids_classify(v.features, 'ex_softmax_json')) AS still_scores FROM fx_vectors v;
SELECT nids_contributions(v.features, 'ex_softmax_json') FROM fx_vectors v LIMIT 1;
\echo :LAST_ERROR_SQLSTATE

-- global importance: per feature, splits and total gain and cover, ranked
SELECT feature, splits > 0 AS used, gain_rank FROM nids.feature_importance WHERE name = 'ex_trained' AND gain_rank <= 3 ORDER BY gain_rank;
SELECT count(*) = (SELECT cardinality(feature_names) FROM nids.models WHERE name = 'ex_softprob_json') AS every_feature
FROM nids.feature_importance WHERE name = 'ex_softprob_json';

SELECT nids_drop_model(name) FROM (SELECT DISTINCT name FROM nids.models WHERE name LIKE 'ex_%') s;
DROP TABLE flows_ex;
