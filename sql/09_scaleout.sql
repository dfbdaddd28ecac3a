-- Scale-out: a whole version as a bundle (nids_export_model /
-- nids_import_model), content-addressed version ids and IMMUTABLE scoring
-- by id, mergeable drift (nids_drift_counts / ks_drift_merge).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\set tbl flows_so
\set n 2000
\set seed 0.61
\set shift 1.0
\i test/fixtures/flows.sql
\set tbl flows_so_w
\set n 800
\set seed 0.62
\set shift 2.0
\i test/fixtures/flows.sql
\o /dev/null
SELECT nids_train('flows_so', model => 'so', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 10}}');
\o
\set ECHO all
\set SHOW_CONTEXT never

-- the bundle moves everything: imported back as version 2, it is the same
-- content (same id), scores, gates and reports drift exactly as version 1
SELECT nids_import_model(nids_export_model('so'), deploy => false) AS version;
SELECT nids_model_id('so@1') = nids_model_id('so@2') AS same_id;
SELECT count(*) FILTER (WHERE nids_ensemble(nids_features(f, 'so@1'), 'so@1') IS NOT DISTINCT FROM
                              nids_ensemble(nids_features(f, 'so@2'), 'so@2')) = count(*) AS same_verdicts
FROM flows_so_w f;
SELECT count(*) = 0 AS same_drift FROM (
  (SELECT * FROM ks_drift('SELECT * FROM flows_so_w', 'so@1') EXCEPT SELECT * FROM ks_drift('SELECT * FROM flows_so_w', 'so@2'))
  UNION ALL
  (SELECT * FROM ks_drift('SELECT * FROM flows_so_w', 'so@1', 'all') EXCEPT SELECT * FROM ks_drift('SELECT * FROM flows_so_w', 'so@2', 'all'))) d;
SELECT (SELECT metrics - 'version' FROM nids.models WHERE name = 'so' AND version = 1) =
       (SELECT metrics - 'version' FROM nids.models WHERE name = 'so' AND version = 2) AS same_metrics;
-- untrusted bytes: every part is checked (22P03), nothing registered
SELECT nids_import_model('\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_model(substr(nids_export_model('so'), 1, 200));
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_model(overlay(nids_export_model('so') PLACING '\x02000000'::bytea FROM 9 FOR 4));
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_model(nids_export_model('so') || '\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE
-- the base margin changed in the native form: it is no longer its XGBoost document's
CREATE TEMP TABLE b AS SELECT nids_export_model('so') AS bytes;
SELECT nids_import_model(overlay(bytes PLACING '\x0000803f'::bytea FROM position('\x4644494e'::bytea IN bytes) + 32 FOR 4)) FROM b;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS versions FROM nids.models WHERE name = 'so';
SELECT nids_import_model(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_export_model('so@9');
\echo :LAST_ERROR_SQLSTATE

-- scoring by id: IMMUTABLE, the same as by name, and an unknown id is an error
SELECT p.proname, p.provolatile, p.proparallel FROM pg_proc p
WHERE p.proname IN ('nids_classify_at', 'nids_ensemble_at') ORDER BY 1;
SELECT count(*) FILTER (WHERE nids_classify_at(nids_features(f, 'so'), (SELECT nids_model_id('so'))) = nids_classify(nids_features(f, 'so'), 'so')) = count(*) AS same_labels,
       count(*) FILTER (WHERE nids_ensemble_at(nids_features(f, 'so'), (SELECT nids_model_id('so'))) IS NOT DISTINCT FROM nids_ensemble(nids_features(f, 'so'), 'so')) = count(*) AS same_verdicts
FROM flows_so_w f;
SELECT nids_classify_at(nids_features(f, 'so'), 12345) FROM flows_so_w f LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
-- once every version of that content is gone, its id scores nothing, never another model
CREATE TEMP TABLE ids AS SELECT nids_model_id('so') AS id;
SELECT nids_drop_model('so');
DO $$
BEGIN
	PERFORM nids_classify_at(ARRAY[1, 2, 3]::float8[], (SELECT id FROM ids));
EXCEPTION WHEN undefined_object THEN
	RAISE NOTICE 'the dropped content''s id: %', SQLSTATE;
END $$;

-- mergeable drift: counts of two halves of a window, added, are ks_drift of the whole
SELECT nids_train('flows_so', model => 'so', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 5}}') ? 'version' AS trained;
CREATE TEMP TABLE parts AS
SELECT * FROM nids_drift_counts('SELECT * FROM flows_so_w WHERE flow_number::int % 2 = 0', 'so')
UNION ALL SELECT * FROM nids_drift_counts('SELECT * FROM flows_so_w WHERE flow_number::int % 2 = 1', 'so');
SELECT count(*) AS features, count(*) FILTER (WHERE m.ks_statistic IS NOT DISTINCT FROM d.ks_statistic
       AND m.p_value IS NOT DISTINCT FROM d.p_value AND m.n_window = d.n_window AND m.drift_level = d.drift_level) AS identical
FROM ks_drift_merge('SELECT * FROM parts', 'so') m JOIN ks_drift('SELECT * FROM flows_so_w', 'so') d USING (feature);
SELECT count(*) FILTER (WHERE m.ks_statistic IS NOT DISTINCT FROM d.ks_statistic) AS identical_all_reference
FROM ks_drift_merge($$SELECT * FROM nids_drift_counts('SELECT * FROM flows_so_w', 'so', 'all')$$, 'so', 'all') m
JOIN ks_drift('SELECT * FROM flows_so_w', 'so', 'all') d USING (feature);
-- counts that are not nids_drift_counts' of this version are refused
SELECT * FROM ks_drift_merge('SELECT feature, n_window + 1, counts FROM parts', 'so');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift_merge('SELECT feature, n_window, counts[2:] FROM parts', 'so');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift_merge('SELECT ''nope''::text, n_window, counts FROM parts', 'so');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift_merge('SELECT feature, n_window FROM parts', 'so');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift_merge('DELETE FROM parts RETURNING *', 'so');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM nids_drift_counts('SELECT * FROM flows_so_w', 'so', 'normal');
\echo :LAST_ERROR_SQLSTATE
-- a report id holds 32 bits of the sequence: past that, a clear error
SELECT last_value AS seq FROM nids.drift_report_id \gset
SELECT setval('nids.drift_report_id', 4294967295) IS NOT NULL AS set;
SELECT nids_log_drift('SELECT * FROM flows_so_w', 'so');
\echo :LAST_ERROR_SQLSTATE
SELECT setval('nids.drift_report_id', :seq) IS NOT NULL AS reset;
SELECT nids_import_model(nids_export_model('so'), NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_drop_model('so');
DROP TABLE flows_so, flows_so_w;
