-- Adapting without going blind (1.3): features the local flows lack are
-- dropped, a decision threshold tau on P(benign) is calibrated on held-out
-- quiet flows and used by every verdict, a contaminated quiet period is
-- set aside and counted, and a deploy that loses a class is refused.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\set tbl flows_a2
\set n 3000
\set seed 0.51
\set shift 1.0
\i test/fixtures/flows.sql
\set tbl local_a2
\set n 2400
\set seed 0.52
\set shift 2.0
\i test/fixtures/flows.sql
\o /dev/null
SELECT nids_train('flows_a2', model => 'a2', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 10}}');
\o
\set ECHO all
\set SHOW_CONTEXT never

-- the local exporter writes no flow_iat_std: a feature the local flows lack
CREATE TEMP TABLE quiet_a2 AS SELECT * FROM local_a2 WHERE label = 'BENIGN';
ALTER TABLE quiet_a2 DROP COLUMN flow_iat_std;
SET nids.min_feature_coverage = 0.5;
CREATE TEMP TABLE r1 AS SELECT nids_adapt('a2', 'SELECT * FROM quiet_a2') AS r;
-- it is named, and left out of the new version; destination_port is kept as a category
SELECT r->'features_missing_locally' AS missing, r->'categorical_kept' AS categorical,
	r->>'reference' AS reference, r->>'source_benign' AS source_benign,
	NOT (SELECT 'flow_iat_std' = ANY (feature_names) FROM nids.models
		 WHERE name = 'a2' AND version = (r->>'version')::int) AS left_out
FROM r1;
-- tau: on the calibration flows, the whole verdict (classifier by tau, and
-- the gate) flags at most target_flagged of them
SELECT (r->>'benign_threshold')::float8 > 0 AND (r->>'benign_threshold')::float8 < 1 AS tau_in_range,
	(r->>'target_flagged')::float8 AS target,
	(r->'calibration'->>'flagged')::int <= (r->>'target_flagged')::float8 * (r->'calibration'->>'flows')::int
		AS at_most_target,
	(r->'calibration'->>'flows')::int > 0 AS calibrated_on_flows
FROM r1;
-- local_flagged_after is measured crossed on the calibration third (the gate
-- and tau calibrated on one half, counted on the other): it says what the
-- version flags of new flows of the same network, which the in-sample
-- calibration share cannot
\set ECHO none
\set tbl fresh_a2
\set n 2400
\set seed 0.58
\set shift 2.0
\i test/fixtures/flows.sql
\set ECHO all
SELECT r->'local_flows'->'measure' = r->'local_flows'->'calibrate' AS measured_on_the_third,
	abs((r->>'local_flagged_after')::float8 -
		(SELECT avg(((nids_ensemble(nids_features(f, 'a2@' || (r->>'version')), 'a2@' || (r->>'version'))).verdict
			<> 'benign')::int) FROM fresh_a2 f WHERE label = 'BENIGN')) < 0.01 AS predicts_new_flows
FROM r1;
-- stored with the version, and shown in its summary
SELECT abs(s.benign_threshold - (r->>'benign_threshold')::float8) < 1e-5 * s.benign_threshold AS stored
FROM r1, nids.model_summary s WHERE s.name = 'a2' AND s.version = (r->>'version')::int;
-- a looser target flags more: tau does not go down
SELECT (SELECT (nids_adapt('a2', 'SELECT * FROM quiet_a2', '{"target_flagged": 0.2}') ->> 'benign_threshold')::float8)
	>= (SELECT (r->>'benign_threshold')::float8 FROM r1) AS looser_tau_higher;
-- every verdict uses tau: the label is benign exactly when P(benign) >= tau,
-- else the likeliest other class; nids_ensemble, nids_classify_at and the
-- scoring trigger agree with nids_classify
CREATE TEMP TABLE v AS SELECT (r->>'version')::int AS version, (r->>'benign_threshold')::float8 AS tau FROM r1;
CREATE TEMP TABLE judged AS
SELECT f.flow_number, f.label AS truth, nids_classify(nids_features(f, 'a2@' || v.version), 'a2@' || v.version) AS label,
	(SELECT p.probability FROM nids_class_probabilities(nids_features(f, 'a2@' || v.version), 'a2@' || v.version) p
	 WHERE p.label = 'BENIGN') AS p_benign,
	(SELECT p.label FROM nids_class_probabilities(nids_features(f, 'a2@' || v.version), 'a2@' || v.version) p
	 WHERE p.label <> 'BENIGN' ORDER BY p.probability DESC LIMIT 1) AS likeliest_attack,
	(nids_ensemble(nids_features(f, 'a2@' || v.version), 'a2@' || v.version)).label AS ensemble_label,
	v.tau
FROM local_a2 f, v WHERE f.flow_number::int % 4 = 0;
SELECT count(*) > 100 AS enough,
	count(*) FILTER (WHERE label <> CASE WHEN p_benign >= tau THEN 'BENIGN' ELSE likeliest_attack END) AS against_tau,
	count(*) FILTER (WHERE ensemble_label <> label) AS ensemble_differs
FROM judged;
SELECT count(*) FILTER (WHERE nids_classify_at(nids_features(f, 'a2@' || v.version),
		(SELECT model_id FROM nids.model_versions WHERE name = 'a2' AND version = v.version)) <> j.label) AS classify_at_differs
FROM local_a2 f JOIN judged j USING (flow_number), v;
CREATE TEMP TABLE live_a2 (LIKE local_a2, predicted_label text, probability float8, anomaly_score float8,
	novel boolean, novelty float8, verdict text);
CREATE TRIGGER score BEFORE INSERT ON live_a2 FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('a2@2');
INSERT INTO live_a2 SELECT * FROM local_a2 WHERE flow_number::int % 4 = 0;
SELECT count(*) FILTER (WHERE l.predicted_label <> j.label) AS trigger_differs
FROM live_a2 l JOIN judged j USING (flow_number);
-- nids_attach_benign on a version with tau: the new version keeps tau, and
-- its gate counts the classifier's false alarms by tau, as the version's
-- verdicts decide (a loose target: tau calls many quiet flows attacks)
CREATE TEMP TABLE loose AS
SELECT (nids_adapt('a2', 'SELECT * FROM quiet_a2', '{"target_flagged": 0.5}') ->> 'version')::int AS version;
CREATE TEMP TABLE attached AS
SELECT nids_attach_benign('a2@' || version, 'quiet_a2', '{"deploy": false}') AS version FROM loose;
SELECT n.benign_threshold = o.benign_threshold AS keeps_tau,
	(n.metrics->'novelty'->>'classifier_false_alarms')::int
		> 0.2 * (n.metrics->'novelty'->>'calibration_flows')::int AS alarms_by_tau
FROM loose l, attached a, nids.model_versions o, nids.model_versions n
WHERE o.name = 'a2' AND o.version = l.version AND n.name = 'a2' AND n.version = a.version;
-- exported and imported (a new version of a2), the version keeps tau and its verdicts
CREATE TEMP TABLE copy_v AS SELECT nids_import_model(nids_export_model('a2@2'), false) AS version;
SELECT c.benign_threshold = o.benign_threshold AS same_tau
FROM copy_v, nids.model_summary c, nids.model_summary o
WHERE c.name = 'a2' AND c.version = copy_v.version AND o.name = 'a2' AND o.version = 2;
SELECT count(*) FILTER (WHERE nids_classify(nids_features(f, 'a2@' || copy_v.version), 'a2@' || copy_v.version) <> j.label)
	AS copy_differs
FROM local_a2 f JOIN judged j USING (flow_number), copy_v;
-- a model_id says the content, tau included
SELECT (SELECT m.model_id FROM nids.model_versions m, copy_v WHERE m.name = 'a2' AND m.version = copy_v.version)
	= (SELECT model_id FROM nids.model_versions WHERE name = 'a2' AND version = 2) AS same_id;

-- a quiet period that is not quiet: 150 attack flows among the benign ones
CREATE TEMP TABLE dirty_a2 AS
	(SELECT * FROM local_a2 WHERE label = 'BENIGN')
	UNION ALL (SELECT * FROM local_a2 WHERE label IN ('DDoS', 'DoS Hulk') ORDER BY flow_number LIMIT 150);
SELECT (SELECT count(*) FROM dirty_a2 WHERE label <> 'BENIGN') AS injected;
CREATE TEMP TABLE r2 AS SELECT nids_adapt('a2', 'SELECT * FROM dirty_a2') AS r;
-- they are set aside, counted, and the share is in the result (and a WARNING above 5%)
SELECT (r2.r->'contamination'->>'set_aside')::int - (r1.r->'contamination'->>'set_aside')::int >= 75
		AS most_injected_set_aside,
	(r2.r->'contamination'->>'quiet_flows')::int = (SELECT count(*) FROM dirty_a2) AS counted_of_all,
	(r2.r->'contamination'->>'share')::float8 > 0.05 AS above_5_percent,
	(r2.r->'contamination'->>'attack_probability')::float8 AS attack_probability
FROM r1, r2;
-- local_share: the local training flows' share of the benign class's
-- weight.  By default they count as many as they are, and the result says
-- what share that was (the source's benign rows it trained on: all but
-- the held-out fifth)
SELECT abs((r->>'local_share')::float8 - (r->'local_flows'->>'train')::float8 /
		((r->'local_flows'->>'train')::int + (SELECT count(*) FROM flows_a2 s
		 WHERE abs(hashtext(s::text)) % 5 <> 0 AND label = 'BENIGN'))) < 1e-6 AS counted_share
FROM r1;
-- given, the classifier learns the local flows harder: new benign flows of
-- the network are likelier benign to it; the screen that sets attacks
-- aside counts the flows as they are, so the same ones are set aside
CREATE TEMP TABLE r4 AS SELECT nids_adapt('a2', 'SELECT * FROM dirty_a2', '{"local_share": 0.9}') AS r;
SELECT (r4.r->>'local_share')::float8 AS local_share,
	r4.r->'contamination'->'set_aside' = r2.r->'contamination'->'set_aside' AS same_set_aside,
	(SELECT avg(p.probability) FROM fresh_a2 f,
		nids_class_probabilities(nids_features(f, 'a2@' || (r4.r->>'version')), 'a2@' || (r4.r->>'version')) p
	 WHERE f.label = 'BENIGN' AND p.label = 'BENIGN')
	> (SELECT avg(p.probability) FROM fresh_a2 f,
		nids_class_probabilities(nids_features(f, 'a2@' || (r2.r->>'version')), 'a2@' || (r2.r->>'version')) p
	 WHERE f.label = 'BENIGN' AND p.label = 'BENIGN') AS local_flows_likelier_benign
FROM r2, r4;
-- with attack_probability 1 nothing is set aside: a period full of DDoS
-- and DoS Hulk flows makes them benign flows of the new version, which
-- loses them; deploy => true is refused, naming them
CREATE TEMP TABLE flooded_a2 AS
	(SELECT * FROM local_a2 WHERE label = 'BENIGN')
	UNION ALL (SELECT * FROM local_a2 WHERE label IN ('DDoS', 'DoS Hulk'));
SELECT nids_adapt('a2', 'SELECT * FROM flooded_a2', '{"attack_probability": 1, "deploy": true}') ->> 'version';
\echo :LAST_ERROR_SQLSTATE
SELECT version FROM nids.models WHERE name = 'a2' AND deployed;
CREATE TEMP TABLE r3 AS SELECT nids_adapt('a2', 'SELECT * FROM flooded_a2', '{"attack_probability": 1}') AS r;
SELECT c.key AS class, (c.value->>'flows')::int >= 10 AS judged,
	(c.value->>'recall_before')::float8 - (c.value->>'recall_after')::float8 > 0.2 AS lost_more_than_20_points
FROM r3, jsonb_each(r->'per_class') c WHERE c.key IN ('DDoS', 'DoS Hulk') ORDER BY 1;
-- the result says what it cannot measure
SELECT r->>'not_measured' LIKE 'local attack recall:%' AS says_so FROM r1;
-- bad options (22023)
SELECT nids_adapt('a2', 'SELECT * FROM quiet_a2', '{"reference": "some"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('a2', 'SELECT * FROM quiet_a2', '{"target_flagged": 0.9}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('a2', 'SELECT * FROM quiet_a2', '{"attack_probability": 0.2}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('a2', 'SELECT * FROM quiet_a2', '{"local_share": 1}');
\echo :LAST_ERROR_SQLSTATE
-- a bundle whose tau is not in (0, 1) is refused (22P03): tau is its last 8 bytes
SELECT nids_import_model(overlay(b placing '\x0000000000000040'::bytea from length(b) - 7), false)
FROM (SELECT nids_export_model('a2@2') AS b) e;
\echo :LAST_ERROR_SQLSTATE
-- a period of attacks only: too few flows remain once they are set aside (22023)
SELECT nids_adapt('a2', 'SELECT * FROM local_a2 WHERE label IN (''DDoS'', ''DoS Hulk'') ORDER BY flow_number LIMIT 50');
\echo :LAST_ERROR_SQLSTATE
-- no feature both present locally and close to the training flows (22023)
SELECT nids_adapt('a2', 'SELECT * FROM quiet_a2', '{"drop_ks": 0.0001}') ->> 'categorical_kept' AS kept_anyway;
CREATE TEMP TABLE portless_a2 AS SELECT * FROM quiet_a2;
ALTER TABLE portless_a2 DROP COLUMN destination_port;
SELECT nids_adapt('a2', 'SELECT * FROM portless_a2', '{"drop_ks": 0.0001}');
\echo :LAST_ERROR_SQLSTATE
-- a training table name that is not a name (42602, as to_regclass says)
SELECT nids_adapt('a2', 'SELECT * FROM quiet_a2', '{"training": "\"unclosed"}');
\echo :LAST_ERROR_SQLSTATE
-- KS against the benign training flows instead of all of them
SELECT nids_adapt('a2', 'SELECT * FROM quiet_a2', '{"reference": "benign"}') ->> 'reference' AS reference;
RESET nids.min_feature_coverage;
SELECT nids_drop_model('a2');
