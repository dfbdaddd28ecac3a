-- nids_features, nids_anomaly, nids_ensemble and nids_score_trigger on a
-- model trained from generated flows.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\set tbl flows_sc
\set n 2000
\set seed 0.17
\set shift 1.0
\i test/fixtures/flows.sql
\o /dev/null
SELECT nids_train('flows_sc', model => 'sc', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 30}}');
\o
\set ECHO all
\set SHOW_CONTEXT never
-- rows with a few of the model's columns: scored, with a WARNING (the
-- default nids.min_feature_coverage refuses them; tested at the end)
SET nids.min_feature_coverage = 0;

-- nids_features: the model's vector, by canonical column name
SELECT array_length(nids_features(f, 'sc'), 1) = (SELECT array_length(feature_names, 1) FROM nids.models WHERE name = 'sc') AS full_length
FROM flows_sc f LIMIT 1;
SELECT nids_features(f, 'sc') = ARRAY[f.destination_port, f.flow_duration, f.total_fwd_packets, f.total_backward_packets,
	f.total_length_of_fwd_packets, f.total_length_of_bwd_packets, f.fwd_packet_length_max, f.bwd_packet_length_mean,
	f.flow_bytes_s, f.flow_packets_s, f.flow_iat_mean, f.flow_iat_std, f.fwd_psh_flags, f.syn_flag_count,
	f.ack_flag_count, f.init_win_bytes_forward, f.init_win_bytes_backward, f.active_mean, f.idle_mean] AS in_model_order
FROM flows_sc f WHERE f.flow_number = 7;

-- columns named as another CICFlowMeter release names them; absent ones are missing (NULL)
CREATE TABLE flows_2018 ("Dst Port" int, "Flow Duration" bigint, "Tot Fwd Pkts" numeric, "Flow Byts/s" float4, "Label" text);
INSERT INTO flows_2018 VALUES (443, 1000, 3, 'Infinity', 'Benign'), (22, NULL, 20, 5.5, 'SSH-Bruteforce');
SELECT "Dst Port", nids_features(f, 'sc') FROM flows_2018 f ORDER BY 1;
SELECT nids_classify(nids_features(f, 'sc'), 'sc') IS NOT NULL AS scores FROM flows_2018 f;

-- anonymous records work too
SELECT nids_features(r, 'sc') FROM (SELECT 80 AS destination_port, 5 AS "Total Fwd Packets") r;

-- a feature column that is not numeric is refused
CREATE TABLE bad_types (destination_port text);
INSERT INTO bad_types VALUES ('80');
SELECT nids_features(b, 'sc') FROM bad_types b;
\echo :LAST_ERROR_SQLSTATE

-- nids_anomaly: in [0, 1]; attack traffic scores higher than benign on average
SELECT min(a) >= 0 AND max(a) <= 1 AS in_range,
       avg(a) FILTER (WHERE label <> 'BENIGN') > avg(a) FILTER (WHERE label = 'BENIGN') AS attacks_more_anomalous
FROM (SELECT label, nids_anomaly(nids_features(f, 'sc'), 'sc') AS a FROM flows_sc f) s;

-- nids_ensemble: label and probability are the classifier's, the verdict follows the rule
SELECT count(*) AS flows,
       count(*) FILTER (WHERE (v).label = nids_classify(x, 'sc')) AS same_label,
       count(*) FILTER (WHERE (v).novel = ((v).novelty > 1) AND (v).novelty = nids_novelty(x, 'sc')) AS novel_rule,
       count(*) FILTER (WHERE (v).verdict = CASE WHEN (v).label <> 'BENIGN' THEN 'attack'
                                                 WHEN (v).novel THEN 'anomaly' ELSE 'benign' END) AS verdict_rule,
       count(*) FILTER (WHERE abs((v).anomaly_score - nids_anomaly(x, 'sc')) < 1e-12) AS same_anomaly
FROM (SELECT nids_features(f, 'sc') AS x, nids_ensemble(nids_features(f, 'sc'), 'sc') AS v FROM flows_sc f) s;
SELECT (v).verdict, count(*) FROM (SELECT nids_ensemble(nids_features(f, 'sc'), 'sc') AS v FROM flows_sc f) s
GROUP BY 1 ORDER BY 1;

-- bulk scoring is cancelled promptly too
SET statement_timeout = '300ms';
SELECT count(nids_ensemble(nids_features(a, 'sc'), 'sc')) FROM flows_sc a, flows_sc b;
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;

-- an imported model has no isolation forest: a clear error and a hint
\set ECHO none
\i test/fixtures/xgb_fixtures.sql
\o /dev/null
SELECT nids_import_xgboost('imported', booster, features, classes) FROM fx_models WHERE name = 'softprob_json';
\o
\set ECHO all
SELECT nids_anomaly(ARRAY[1, 2, 3, 4, 5, 6]::float8[], 'imported');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_ensemble(ARRAY[1, 2, 3, 4, 5, 6]::float8[], 'imported');
\echo :LAST_ERROR_SQLSTATE
-- the trigger: a label needs no forest; a verdict does, whatever the label
CREATE TABLE live_imported (destination_port float8, flow_duration float8, total_fwd_packets float8,
	flow_bytes_s float8, fwd_packet_length_mean float8, syn_flag_count float8, predicted_label text);
CREATE TRIGGER score BEFORE INSERT ON live_imported FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('imported');
INSERT INTO live_imported SELECT v.features[1], v.features[2], v.features[3], v.features[4], v.features[5], v.features[6]
FROM fx_vectors v JOIN fx_expected e ON e.id = v.id AND e.model = 'softprob' WHERE e.label <> 'BENIGN';
SELECT count(*) > 0 AS labelled, bool_and(predicted_label <> 'BENIGN') AS as_expected FROM live_imported;
ALTER TABLE live_imported ADD COLUMN verdict text;
INSERT INTO live_imported SELECT v.features[1], v.features[2], v.features[3], v.features[4], v.features[5], v.features[6]
FROM fx_vectors v JOIN fx_expected e ON e.id = v.id AND e.model = 'softprob' WHERE e.label <> 'BENIGN' LIMIT 1;
\echo :LAST_ERROR_SQLSTATE

-- attach a forest and a drift reference from a table of benign flows
CREATE TABLE benign_only AS SELECT * FROM flows_sc WHERE label = 'BENIGN';
SELECT nids_attach_benign('imported', 'benign_only', '{"iforest": {"benign_fpr": 0.02, "scale": "linear"}}') AS version;
SELECT version, deployed, metrics->>'source' AS source, (metrics->'iforest'->>'held_out_rows')::int > 0 AS held_out,
       metrics->'iforest'->>'scale' AS scale
FROM nids.models WHERE name = 'imported' ORDER BY version;
-- (this imported classifier calls most of these flows attacks: the gate adds few)
SELECT count(*) FILTER (WHERE (v).verdict = 'anomaly')::float8 / count(*) FILTER (WHERE (v).label = 'BENIGN') < 0.1 AS few_benign_novel,
       metrics->'novelty'->>'method' AS method
FROM (SELECT nids_ensemble(nids_features(b, 'imported'), 'imported') AS v FROM benign_only b) s,
     nids.models m WHERE m.name = 'imported' AND m.deployed GROUP BY m.metrics;
SELECT nids_attach_benign('imported', 'no_such_table');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_attach_benign('no_such_model', 'benign_only');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE one_row AS SELECT * FROM benign_only LIMIT 1;
SELECT nids_attach_benign('imported', 'one_row');
\echo :LAST_ERROR_SQLSTATE
-- benign flows the classifier calls attacks, every one: its false alarms
-- already exceed benign_fpr, so the gate flags nothing more
CREATE TABLE benign_alarms AS SELECT * FROM benign_only b
WHERE nids_classify(nids_features(b, 'imported'), 'imported') <> 'BENIGN';
SELECT count(*) >= 20 AS enough FROM benign_alarms;
SELECT nids_attach_benign('imported', 'benign_alarms') AS alarms_version \gset
SELECT (metrics->'novelty'->>'classifier_false_alarms')::int = (metrics->'novelty'->>'calibration_flows')::int AS all_false_alarms,
       metrics->'novelty'->>'method' AS method, (metrics->'novelty'->>'threshold')::float8 > 1e300 AS flags_nothing, deployed
FROM nids.models WHERE name = 'imported' AND version = :alarms_version;
SELECT bool_and(nids_novelty(nids_features(f, 'imported'), 'imported') <= 1) AS none_novel FROM flows_sc f;
DROP TABLE benign_only, one_row, benign_alarms;

-- The trigger fills the result columns the table has, for INSERT ... SELECT,
-- COPY and UPDATE
CREATE TABLE live (LIKE flows_sc, predicted_label text, probability float8,
	anomaly_score float8, novel boolean, verdict text);
CREATE TRIGGER score BEFORE INSERT OR UPDATE ON live
	FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO live SELECT * FROM flows_sc WHERE flow_number <= 500;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE l.predicted_label = nids_classify(nids_features(l, 'sc'), 'sc')) AS same_label,
       count(*) FILTER (WHERE l.verdict = (nids_ensemble(nids_features(l, 'sc'), 'sc')).verdict) AS same_verdict,
       count(*) FILTER (WHERE l.probability BETWEEN 0 AND 1 AND l.anomaly_score BETWEEN 0 AND 1 AND l.novel IS NOT NULL) AS filled
FROM live l;
COPY live (destination_port, flow_duration, total_fwd_packets, syn_flag_count, label) FROM stdin;
22	5000000	20	0	SSH-Patator
80	0	1	1	PortScan
\.
SELECT destination_port, predicted_label IS NOT NULL AS labelled, verdict IS NOT NULL AS judged
FROM live WHERE flow_number IS NULL ORDER BY 1;
UPDATE live SET predicted_label = NULL WHERE flow_number = 1;
SELECT predicted_label IS NOT NULL AS rescored FROM live WHERE flow_number = 1;

-- a table with only some result columns gets only those
CREATE TABLE live_small (destination_port float8, total_fwd_packets float8, verdict text);
CREATE TRIGGER score BEFORE INSERT ON live_small FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO live_small VALUES (80, 3, NULL);
SELECT verdict IN ('attack', 'anomaly', 'benign') AS judged FROM live_small;

-- the row the trigger returns keeps every other column as it was: a long
-- (toasted) text, NULLs, a dropped column, a column added afterwards
CREATE TABLE live_wide (note text, destination_port float8, gone int, total_fwd_packets float8,
	verdict text, predicted_label text);
ALTER TABLE live_wide DROP COLUMN gone;
CREATE TRIGGER score BEFORE INSERT OR UPDATE ON live_wide FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO live_wide (note, destination_port, total_fwd_packets, verdict) VALUES
	(repeat('n', 100000), 80, 3, 'overwritten'), (NULL, 22, NULL, NULL), ('old row', 443, 1, NULL);
ALTER TABLE live_wide ADD COLUMN tag text DEFAULT 'added';
UPDATE live_wide SET tag = 'updated' WHERE destination_port = 22;
UPDATE live_wide SET predicted_label = NULL WHERE destination_port = 443;
SELECT length(note) AS note_length, destination_port, total_fwd_packets, tag,
       verdict IN ('attack', 'anomaly', 'benign') AS judged, predicted_label IS NOT NULL AS labelled
FROM live_wide ORDER BY destination_port;

-- the default model name
CREATE TABLE live_default (destination_port float8, predicted_label text);
CREATE TRIGGER score BEFORE INSERT ON live_default FOR EACH ROW EXECUTE FUNCTION nids_score_trigger();
INSERT INTO live_default VALUES (80, NULL);
\echo :LAST_ERROR_SQLSTATE

-- errors: a table with none of the features, wrong result types, misuse
CREATE TABLE unrelated (x int, predicted_label text);
CREATE TRIGGER score BEFORE INSERT ON unrelated FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO unrelated VALUES (1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM unrelated;
CREATE TABLE wrong_type (destination_port float8, probability text);
CREATE TRIGGER score BEFORE INSERT ON wrong_type FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO wrong_type VALUES (80, NULL);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE after_trigger (destination_port float8, predicted_label text);
CREATE TRIGGER score AFTER INSERT ON after_trigger FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO after_trigger VALUES (80, NULL);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE two_args (destination_port float8, predicted_label text);
CREATE TRIGGER score BEFORE INSERT ON two_args FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc', 'x');
INSERT INTO two_args VALUES (80, NULL);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE unknown_model (destination_port float8, predicted_label text);
CREATE TRIGGER score BEFORE INSERT ON unknown_model FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('nope');
INSERT INTO unknown_model VALUES (80, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_score_trigger();
\echo :LAST_ERROR_SQLSTATE

-- Missing features: one WARNING per statement names them; below
-- nids.min_feature_coverage (default 0.9) scoring is refused (42703)
RESET nids.min_feature_coverage;
SHOW nids.min_feature_coverage;
SELECT nids_features(f, 'sc') IS NOT NULL FROM flows_2018 f;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE most_features AS SELECT * FROM flows_sc WHERE flow_number <= 50;
ALTER TABLE most_features DROP COLUMN idle_mean;
SELECT count(nids_classify(nids_features(f, 'sc'), 'sc')) AS scored FROM most_features f;
SELECT count(*) AS drift_rows FROM ks_drift('SELECT * FROM most_features', 'sc');
ALTER TABLE most_features ADD COLUMN predicted_label text;
CREATE TRIGGER score BEFORE INSERT ON most_features FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO most_features SELECT * FROM most_features;
SELECT count(predicted_label) AS trigger_scored FROM most_features;
SET nids.min_feature_coverage = 1;
SELECT count(nids_classify(nids_features(f, 'sc'), 'sc')) AS scored FROM most_features f;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS drift_rows FROM ks_drift('SELECT * FROM most_features', 'sc');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO most_features SELECT * FROM most_features LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
SET nids.min_feature_coverage = 1.5;
\echo :LAST_ERROR_SQLSTATE
RESET nids.min_feature_coverage;

-- a trigger whose output columns are misspelt is refused, not silent
CREATE TABLE misspelt (LIKE flows_sc, prob float8);
CREATE TRIGGER score BEFORE INSERT ON misspelt FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO misspelt SELECT *, NULL FROM flows_sc LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE misspelt2 (LIKE flows_sc, predicted text, verdicts text);
CREATE TRIGGER score BEFORE INSERT ON misspelt2 FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO misspelt2 SELECT *, NULL, NULL FROM flows_sc LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE no_outputs (LIKE flows_sc);
CREATE TRIGGER score BEFORE INSERT ON no_outputs FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO no_outputs SELECT * FROM flows_sc LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS nothing_inserted FROM misspelt, misspelt2, no_outputs;

-- nids_class_probabilities: every class, most probable first
SELECT count(*) = (SELECT cardinality(class_labels) FROM nids.models WHERE name = 'sc' AND deployed) AS every_class,
       abs(sum(probability) - 1) < 1e-6 AS sums_to_one,
       (array_agg(p.label))[1] = (SELECT nids_classify(nids_features(f, 'sc'), 'sc') FROM flows_sc f WHERE flow_number = 7) AS first_is_predicted,
       bool_and(probability >= 0) AS nonnegative
FROM flows_sc f, nids_class_probabilities(nids_features(f, 'sc'), 'sc') p WHERE f.flow_number = 7;
SELECT probability >= lead(probability) OVER () OR lead(probability) OVER () IS NULL AS ordered
FROM flows_sc f, nids_class_probabilities(nids_features(f, 'sc'), 'sc') p WHERE f.flow_number = 7;
SELECT * FROM nids_class_probabilities(ARRAY[1, 2]::float8[], 'sc');
\echo :LAST_ERROR_SQLSTATE

-- the trigger fills novelty too: the gate's score over its threshold
CREATE TABLE with_novelty (LIKE flows_sc, novel boolean, novelty float8, verdict text);
CREATE TRIGGER score BEFORE INSERT ON with_novelty FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc');
INSERT INTO with_novelty SELECT * FROM flows_sc WHERE flow_number <= 200;
SELECT count(*) FILTER (WHERE w.novelty = nids_novelty(nids_features(w, 'sc'), 'sc') AND w.novel = (w.novelty > 1)
       AND w.verdict = (nids_ensemble(nids_features(w, 'sc'), 'sc')).verdict) AS consistent, count(*) AS rows
FROM with_novelty w;
DROP TABLE with_novelty;

-- the trigger's argument names a version too
CREATE TABLE by_version (LIKE flows_sc, predicted_label text);
CREATE TRIGGER score BEFORE INSERT ON by_version FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc@1');
INSERT INTO by_version SELECT * FROM flows_sc WHERE flow_number <= 20;
SELECT count(*) FILTER (WHERE predicted_label = nids_classify(nids_features(b, 'sc'), 'sc')) AS same_as_deployed FROM by_version b;
CREATE TABLE by_bad_version (LIKE flows_sc, predicted_label text);
CREATE TRIGGER score BEFORE INSERT ON by_bad_version FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('sc@5');
INSERT INTO by_bad_version SELECT * FROM flows_sc LIMIT 1;
\echo :LAST_ERROR_SQLSTATE

DROP TABLE most_features, misspelt, misspelt2, no_outputs, by_version, by_bad_version;
DROP TABLE live, live_small, live_default, unrelated, wrong_type, after_trigger, two_args, unknown_model, flows_2018, bad_types;
