-- nids_train on generated CICFlowMeter-like flows.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\set tbl flows
\set n 3000
\set seed 0.42
\set shift 1.0
\i test/fixtures/flows.sql
\set ECHO all
SELECT label, count(*) FROM flows GROUP BY label ORDER BY label;

-- nids_train returns a short result (below); the full report is the
-- version's nids.models.metrics, which most checks here read
CREATE FUNCTION pg_temp.report(r jsonb) RETURNS jsonb LANGUAGE sql VOLATILE
AS $$ SELECT metrics FROM nids.models WHERE name = r->>'model' AND version = (r->>'version')::int $$;

-- Train with the defaults (except fewer rounds, to keep the test fast).
-- flow_number is a row counter: excluded.
CREATE TEMP TABLE result AS
SELECT pg_temp.report(nids_train('flows', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 40}}')) AS r;

-- what was kept and what was dropped, and why
SELECT r->'version' AS version, jsonb_array_length(r->'feature_names') AS features FROM result;
SELECT jsonb_array_elements_text(r->'feature_names') AS feature FROM result;
SELECT d->>'column' AS dropped, d->>'reason' AS reason FROM result, jsonb_array_elements(r->'dropped') d;
SELECT r->'class_labels' AS classes, r->'rows' AS rows FROM result;

-- hold-out quality, per class (the generated classes are well separated)
SELECT (r->>'macro_f1')::float8 > 0.9 AS good_macro_f1, (r->>'accuracy')::float8 > 0.9 AS good_accuracy FROM result;
SELECT c.key AS class, (c.value->>'support')::int AS support, (c.value->>'f1')::float8 > 0.8 AS f1_above_08
FROM result, jsonb_each(r->'per_class') c ORDER BY c.key;
SELECT jsonb_array_length(r->'confusion_matrix'->'matrix') AS confusion_rows,
       (SELECT sum(v::int) FROM jsonb_array_elements(r->'confusion_matrix'->'matrix') row, jsonb_array_elements_text(row) v) AS confusion_total
FROM result;
SELECT (r->'iforest'->>'roc_auc')::float8 > 0.5 AS iforest_better_than_chance,
       (r->'iforest'->>'threshold')::float8 BETWEEN 0 AND 1 AS threshold_in_range,
       r->'ensemble' ?& ARRAY['attack', 'anomaly', 'benign'] AS ensemble_counts
FROM result;
SELECT r->'timings' ?& ARRAY['read_s', 'preprocess_s', 'train_s', 'total_s'] AS has_timings FROM result;

-- the catalogue row matches the result
SELECT name, version, deployed, feature_names = ARRAY(SELECT jsonb_array_elements_text(r->'feature_names')) AS same_features,
       metrics->'macro_f1' = r->'macro_f1' AS same_metrics
FROM nids.models, result WHERE name = 'default';

-- scoring the training table through nids_features
SELECT count(*) FILTER (WHERE nids_classify(nids_features(f)) = f.label)::float8 / count(*) > 0.95 AS accurate
FROM flows f;

-- Deterministic: the same data and seed give the same booster and forest
SELECT pg_temp.report(nids_train('flows', model => 'again', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 40}}')) ? 'version' AS trained;
SELECT (SELECT md5(booster) FROM nids.model_versions WHERE name = 'default' AND deployed) =
       (SELECT md5(booster) FROM nids.model_versions WHERE name = 'again' AND deployed) AS same_booster,
       (SELECT md5(iforest) FROM nids.model_versions WHERE name = 'default' AND deployed) =
       (SELECT md5(iforest) FROM nids.model_versions WHERE name = 'again' AND deployed) AS same_forest;

-- Options: a stricter correlation threshold keeps more columns; deploy => false
SELECT jsonb_array_length(r->'feature_names') AS features, r->'version' AS version
FROM (SELECT pg_temp.report(nids_train('flows', 'label', 'again', '{"exclude": ["flow_number"], "correlation_threshold": 0.999, "deploy": false, "test_size": 0.3, "seed": 7, "xgboost": {"num_boost_round": 10, "max_depth": 4, "eta": 0.3}, "iforest": {"trees": 50, "sample_size": 128, "benign_fpr": 0.05, "scale": "linear"}}')) AS r) s;
SELECT version, deployed FROM nids.models WHERE name = 'again' ORDER BY version;
SELECT metrics->'iforest'->'trees' AS trees, metrics->'iforest'->'sample_size' AS sample_size,
       metrics->'iforest'->'benign_fpr' AS benign_fpr, metrics->'iforest'->'scale' AS scale,
       metrics->'params'->'max_depth' AS max_depth
FROM nids.models WHERE name = 'again' AND version = 2;
-- split points: a coin per split between the linear and the log scale unless
-- told otherwise; each choice gives another forest
SELECT metrics->'iforest'->'scale' AS default_scale FROM nids.models WHERE name = 'default';
SELECT pg_temp.report(nids_train('flows', model => 'linear', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 2}, "iforest": {"scale": "linear"}}'))->'iforest'->'scale' AS scale;
SELECT (SELECT md5(iforest) FROM nids.model_versions WHERE name = 'default' AND deployed) <>
       (SELECT md5(iforest) FROM nids.model_versions WHERE name = 'linear' AND deployed) AS other_forest,
       (SELECT count(*) FILTER (WHERE nids_anomaly(nids_features(f, 'linear'), 'linear') BETWEEN 0 AND 1)
        FROM flows f) = (SELECT count(*) FROM flows) AS linear_scores_in_range;
SELECT pg_temp.report(nids_train('flows', model => 'logscale', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 2}, "iforest": {"scale": "log"}}'))->'iforest'->'scale' AS scale;
SELECT (SELECT md5(iforest) FROM nids.model_versions WHERE name = 'logscale' AND deployed) NOT IN
       (SELECT md5(iforest) FROM nids.model_versions WHERE name IN ('default', 'linear') AND deployed) AS third_forest;
SELECT nids_drop_model('linear'), nids_drop_model('logscale');

-- A label column with another name, and a benign label in another case
CREATE TEMP TABLE flows2 AS SELECT destination_port, flow_duration, total_fwd_packets,
	CASE WHEN label = 'BENIGN' THEN 'Benign' ELSE 'Attack' END AS verdict_truth FROM flows;
SELECT r->'class_labels' AS classes, jsonb_typeof(r->'iforest') = 'object' AS has_iforest
FROM (SELECT pg_temp.report(nids_train('flows2', 'verdict_truth', 'two', '{"xgboost": {"num_boost_round": 5}}')) AS r) s;

-- Rows with a NULL label are skipped and counted
INSERT INTO flows2 SELECT 1, 2, 3, NULL;
SELECT r->'rows'->'null_label_skipped' AS skipped
FROM (SELECT pg_temp.report(nids_train('flows2', 'verdict_truth', 'two', '{"xgboost": {"num_boost_round": 5}}')) AS r) s;

-- Leakage: columns the trigger writes, and numeric columns that are not
-- CICFlowMeter flow features, are left out and reported unless included
CREATE TEMP TABLE scored AS SELECT f.*, 0.5::float8 AS probability, 0.1::float8 AS anomaly_score,
	(f.flow_number::int % 3)::float8 AS site_id FROM flows f;
CREATE TEMP TABLE leak AS
SELECT pg_temp.report(nids_train('scored', model => 'leak', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 3}}')) AS r;
SELECT o->>'column' AS left_out, o->>'reason' AS reason FROM leak, jsonb_array_elements(r->'left_out') o ORDER BY 1;
SELECT r->'feature_names' ?| ARRAY['probability', 'anomaly_score', 'site_id', 'flow_number'] AS leaked FROM leak;
SELECT r->'feature_names' ? 'site_id' AS included, jsonb_array_length(r->'left_out') AS left_out
FROM (SELECT pg_temp.report(nids_train('scored', model => 'leak', options => '{"exclude": ["flow_number"], "include": ["site_id"], "deploy": false, "xgboost": {"num_boost_round": 3}}')) AS r) s;
SELECT nids_drop_model('leak');

-- Deploying safely: over a deployed version the default is "if_better"
-- on the same hold-out rows; a version that knows other classes is not
-- deployed; deploy true/false still decide alone
SELECT r->'deployed' AS deployed, r->>'deploy_reason' AS reason
FROM (SELECT pg_temp.report(nids_train('flows', model => 'safe', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 20}}')) AS r) s;
SELECT r->'deployed' AS deployed, r->>'deploy_reason' LIKE 'hold-out macro F1 % < % of the deployed version 1 on the same rows (over the % classes with at least 10 hold-out rows)' AS worse
FROM (SELECT pg_temp.report(nids_train('flows', model => 'safe', options => '{"exclude": ["flow_number", "destination_port", "flow_duration", "total_fwd_packets", "flow_bytes_s", "fwd_packet_length_max"], "xgboost": {"num_boost_round": 1, "max_depth": 1}}')) AS r) s;
SELECT r->'deployed' AS deployed, r->>'deploy_reason' LIKE 'hold-out macro F1 % >= % of the deployed version 1 on the same rows (over the % classes with at least 10 hold-out rows)' AS as_good
FROM (SELECT pg_temp.report(nids_train('flows', model => 'safe', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 20}}')) AS r) s;
CREATE TEMP TABLE numlabel AS SELECT flow_duration, flow_bytes_s,
	CASE WHEN label = 'BENIGN' THEN 'BENIGN' ELSE (length(label) % 4)::text END AS label FROM flows;
SELECT r->'deployed' AS deployed, r->>'deploy_reason' AS reason
FROM (SELECT pg_temp.report(nids_train('numlabel', model => 'safe', options => '{"xgboost": {"num_boost_round": 2}}')) AS r) s;
SELECT r->'deployed' AS deployed, r->>'deploy_reason' AS reason
FROM (SELECT pg_temp.report(nids_train('flows', model => 'safe', options => '{"exclude": ["flow_number"], "deploy": "if_better", "test_size": 0, "xgboost": {"num_boost_round": 2}}')) AS r) s;
SELECT version, deployed FROM nids.models WHERE name = 'safe' ORDER BY version;

-- 'name@N' scores any version: shadow scoring of a candidate
SELECT count(*) FILTER (WHERE nids_classify(nids_features(f, 'safe@2'), 'safe@2') = f.label) <
       count(*) FILTER (WHERE nids_classify(nids_features(f, 'safe'), 'safe') = f.label) AS candidate_worse,
       count(*) FILTER (WHERE nids_classify(nids_features(f, 'safe@3'), 'safe@3') = nids_classify(nids_features(f, 'safe'), 'safe')) = count(*) AS deployed_is_v3
FROM flows f;
SELECT DISTINCT nids_classify(nids_features(f, 'safe@4'), 'safe@4') IN ('BENIGN', '0', '1', '2', '3') AS v4_labels FROM flows f;
SELECT nids_classify(nids_features(f, 'safe@9'), 'safe@9') FROM flows f LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_classify(nids_features(f, 'safe@0'), 'safe@0') FROM flows f LIMIT 1;
\echo :LAST_ERROR_SQLSTATE

-- the deployed version cannot be dropped while others exist
SELECT nids_drop_model('safe', 3);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_drop_model('safe', 2), nids_drop_model('safe', 4), nids_drop_model('safe', 5), nids_drop_model('safe', 1);
SELECT nids_drop_model('safe', 3);
SELECT count(*) AS safe_versions FROM nids.models WHERE name = 'safe';

-- a class without hold-out rows has no recall or F1 (null), and is not in macro F1
CREATE TEMP TABLE rare AS SELECT destination_port, flow_duration, total_fwd_packets, flow_bytes_s, label FROM flows
	UNION ALL SELECT 1, 1, 1, 1, 'Rare';
SELECT r->'per_class'->'Rare' AS rare, r->'per_class'->'BENIGN'->'f1' IS NOT NULL AS benign_f1
FROM (SELECT pg_temp.report(nids_train('rare', model => 'rare', options => '{"xgboost": {"num_boost_round": 3}}')) AS r) s;

-- nids.model_summary: one readable line per version
SELECT name, version, deployed, features > 0 AS has_features, classes, train_rows > 0 AS has_rows,
       macro_f1 > 0.5 AS good, accuracy > 0.5 AS accurate, novelty_method, benign_fpr
FROM nids.model_summary WHERE name = 'rare';
SELECT nids_drop_model('rare');
-- a class of two rows has one hold-out row, flagged as too few to judge: it
-- is left out of macro_f1_judged, which "if_better" compares
CREATE TEMP TABLE pair AS SELECT destination_port, flow_duration, total_fwd_packets, flow_bytes_s, label FROM flows
	UNION ALL SELECT 1, 1, 1, 1, 'Pair' UNION ALL SELECT 2, 2, 2, 2, 'Pair';
SELECT r->'per_class'->'Pair'->'support' AS pair_holdout_rows, r->'per_class'->'Pair'->'judged' AS pair_judged,
	r->'per_class'->'BENIGN'->'judged' AS benign_judged, (r->>'macro_f1_judged')::float8 > 0 AS judged_macro_f1
FROM (SELECT pg_temp.report(nids_train('pair', model => 'pair', options => '{"test_size": 0.1, "xgboost": {"num_boost_round": 3}}')) AS r) s;
SELECT r->'deployed' AS deployed, r->>'deploy_reason' LIKE '%too few to judge: %Pair (1)%' AS names_pair
FROM (SELECT pg_temp.report(nids_train('pair', model => 'pair', options => '{"test_size": 0.1, "xgboost": {"num_boost_round": 3}}')) AS r) s;
SELECT nids_drop_model('pair');

-- The novelty gate (options.novelty): every method trains and calibrates so
-- that at most benign_fpr of the held-out benign flows get another verdict
-- than benign, the classifier's false alarms included
CREATE TEMP TABLE gates AS
SELECT m.method, pg_temp.report(nids_train('flows', model => 'gate_' || m.method,
	options => jsonb_build_object('exclude', '["flow_number"]'::jsonb, 'xgboost', '{"num_boost_round": 10}'::jsonb,
		'novelty', jsonb_build_object('method', m.method, 'benign_fpr', 0.05)))) AS r
FROM unnest(ARRAY['iforest', 'uncertainty', 'prototypes', 'combined', 'joint']) AS m(method);
SELECT method, r->'novelty'->>'method' AS stored, r->'novelty'->>'calibrated_on' AS calibrated_on,
       (r->'novelty'->>'benign_flagged')::float8 <= 0.05 AS within_fpr,
       (r->'novelty'->>'threshold')::float8 >= 0 AS threshold_ok,
       r->'novelty' ? 'prototypes' AS has_prototypes
FROM gates ORDER BY method;
-- novelty is the gate's score over its threshold; novel is novelty > 1
SELECT g.method,
       count(*) FILTER (WHERE (v).novelty = nids_novelty(nids_features(f, 'gate_' || g.method), 'gate_' || g.method)) = count(*) AS same_novelty,
       count(*) FILTER (WHERE (v).novel = ((v).novelty > 1)) = count(*) AS novel_rule,
       count(*) FILTER (WHERE (v).verdict = CASE WHEN (v).label <> 'BENIGN' THEN 'attack' WHEN (v).novel THEN 'anomaly' ELSE 'benign' END) = count(*) AS verdict_rule
FROM gates g, flows f, LATERAL (SELECT nids_ensemble(nids_features(f, 'gate_' || g.method), 'gate_' || g.method) AS v) s
GROUP BY g.method ORDER BY g.method;
-- the isolation forest method is the 1.0 rule: novel when nids_anomaly is above the threshold
SELECT count(*) FILTER (WHERE (nids_anomaly(nids_features(f, 'gate_iforest'), 'gate_iforest') >
       (SELECT (metrics->'novelty'->>'threshold')::float8 FROM nids.models WHERE name = 'gate_iforest'))
       = (nids_ensemble(nids_features(f, 'gate_iforest'), 'gate_iforest')).novel) = count(*) AS iforest_rule
FROM flows f;
-- joint: Fisher's combination of the two tail probabilities, each kept as
-- knots of its benign calibration distribution; beyond every calibration
-- flow the tail keeps falling, so a flow far from all benign traffic is
-- novel whatever the classifier says
SELECT (r->'novelty'->>'uncertainty_knots')::int > 0 AS uncertainty_knots,
       (r->'novelty'->>'distance_knots')::int > 0 AS distance_knots
FROM gates WHERE method = 'joint';
SELECT nids_novelty(array_agg(v * 1e6 ORDER BY i), 'gate_joint') > 1 AS far_is_novel,
       nids_novelty(array_agg(v * 1e6 ORDER BY i), 'gate_joint') < nids_novelty(array_agg(v * 1e9 ORDER BY i), 'gate_joint') AS farther_more_novel
FROM (SELECT nids_features(f, 'gate_joint') AS x FROM flows f WHERE label = 'BENIGN' LIMIT 1) s, unnest(x) WITH ORDINALITY u(v, i);
-- test_size 0: calibrated on benign training flows, and says so
SELECT r->'novelty'->>'calibrated_on' AS calibrated_on
FROM (SELECT pg_temp.report(nids_train('flows', model => 'gate_all', options => '{"exclude": ["flow_number"], "test_size": 0, "xgboost": {"num_boost_round": 3}}')) AS r) s;
-- bad options
SELECT nids_train('flows', model => 'gate_bad', options => '{"novelty": {"method": "magic"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('flows', model => 'gate_bad', options => '{"novelty": {"prototypes": 0}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('flows', model => 'gate_bad', options => '{"novelty": {"benign_fpr": 0.9}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('flows', model => 'gate_bad', options => '{"novelty": {"k": 3}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('flows', model => 'gate_bad', options => '{"novelty": "prototypes"}');
\echo :LAST_ERROR_SQLSTATE
-- a gate edited by hand is validated when a backend loads it (XX001)
CREATE TEMP TABLE gate_joint_copy AS SELECT novelty FROM nids.model_versions WHERE name = 'gate_joint';
UPDATE nids.model_versions SET novelty = substr(novelty, 1, 30) WHERE name = 'gate_prototypes';
SELECT nids_novelty(nids_features(f, 'gate_prototypes'), 'gate_prototypes') FROM flows f LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE nids.model_versions SET novelty = overlay((SELECT novelty FROM nids.model_versions WHERE name = 'gate_combined')
	PLACING '\x09000000'::bytea FROM 9 FOR 4) WHERE name = 'gate_combined';
SELECT nids_novelty(nids_features(f, 'gate_combined'), 'gate_combined') FROM flows f LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
-- a joint gate's tails: impossible counts, a rank that is not the last, cut short
UPDATE nids.model_versions SET novelty = overlay(novelty PLACING '\x0000000000000000'::bytea FROM 57 FOR 8) WHERE name = 'gate_joint';
SELECT nids_novelty(nids_features(f, 'gate_joint'), 'gate_joint') FROM flows f LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE nids.model_versions SET novelty = (SELECT novelty FROM gate_joint_copy) WHERE name = 'gate_joint';
UPDATE nids.model_versions SET novelty = overlay(novelty PLACING '\x0000000000000040'::bytea FROM length(novelty) - 7 FOR 8) WHERE name = 'gate_joint';
SELECT nids_novelty(nids_features(f, 'gate_joint'), 'gate_joint') FROM flows f LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE nids.model_versions SET novelty = substr((SELECT novelty FROM gate_joint_copy), 1, length(novelty) - 8) WHERE name = 'gate_joint';
SELECT nids_novelty(nids_features(f, 'gate_joint'), 'gate_joint') FROM flows f LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
-- and the stored gate back: scores again
UPDATE nids.model_versions SET novelty = (SELECT novelty FROM gate_joint_copy) WHERE name = 'gate_joint';
SELECT nids_novelty(nids_features(f, 'gate_joint'), 'gate_joint') >= 0 AS scores FROM flows f LIMIT 1;
SELECT nids_drop_model(name) FROM (SELECT DISTINCT name FROM nids.models WHERE name LIKE 'gate%') s;

-- nids_train's own result is short: under 4 KB for 20 classes with
-- CICFlowMeter-like class names; the full report is in nids.models.metrics
CREATE TEMP TABLE twenty AS
SELECT f.*, CASE WHEN f.label = 'BENIGN' THEN 'BENIGN'
	WHEN f.label = 'DDoS' THEN f.label || ' variant ' || (f.flow_number::int % 4 + 1)
	ELSE f.label || ' variant ' || (f.flow_number::int % 3 + 1) END AS label20
FROM flows f;
SELECT count(DISTINCT label20) AS classes FROM twenty;
CREATE TEMP TABLE short AS
SELECT nids_train('twenty', 'label20', 'twenty', '{"exclude": ["flow_number", "label"], "xgboost": {"num_boost_round": 3}}') AS r;
SELECT octet_length(r::text) < 4096 AS under_4kb,
	(SELECT count(*) FROM jsonb_object_keys(r->'per_class')) AS classes_shown
FROM short;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(r) k) AS keys,
	r->'model' AS model, r->'version' AS version, r->'deployed' AS deployed,
	jsonb_array_length(r->'feature_names') > 0 AS has_features,
	r->'per_class'->'BENIGN' ?& ARRAY['f1', 'support'] AS class_scores,
	r->'novelty'->>'method' AS gate, r->'dropped' AS dropped
FROM short;
-- the short result agrees with the full report
SELECT m.metrics->'macro_f1' = r->'macro_f1' AS same_macro_f1,
	m.metrics->'macro_f1_judged' = r->'macro_f1_judged' AS same_judged,
	m.feature_names = ARRAY(SELECT jsonb_array_elements_text(r->'feature_names')) AS same_features,
	(SELECT jsonb_object_agg(split_part(d->>'reason', ' ', 1), n) FROM
		(SELECT d, count(*) OVER (PARTITION BY split_part(d->>'reason', ' ', 1)) AS n
		 FROM jsonb_array_elements(m.metrics->'dropped') d) x) = r->'dropped' AS same_dropped,
	(SELECT bool_and((m.metrics->'per_class'->c.key->'support') = c.value->'support')
	 FROM jsonb_each(r->'per_class') c) AS same_support,
	ARRAY(SELECT c.key FROM jsonb_each(m.metrics->'per_class') c
		  WHERE NOT (c.value->>'judged')::bool ORDER BY 1) =
		ARRAY(SELECT jsonb_array_elements_text(r->'too_few_to_judge') ORDER BY 1) AS same_too_few
FROM short, nids.models m WHERE m.name = 'twenty' AND m.version = (r->>'version')::int;
SELECT nids_drop_model('twenty');
