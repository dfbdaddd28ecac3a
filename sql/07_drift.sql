-- ks_drift against scipy's ks_2samp, drift reports, and the pg_cron hook.
-- Samples and expected values: test/fixtures/generate_ks.py (scipy).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\i test/fixtures/ks_fixtures.sql
\o /dev/null
-- test_size 0: the stored reference is the whole of ks_ref, as scipy saw it
SELECT nids_train('ks_ref', model => 'ks', options => '{"test_size": 0, "include": ["f_cont", "f_port", "f_count", "f_heavy"], "xgboost": {"num_boost_round": 3}}');
\o
\set ECHO all
\set SHOW_CONTEXT never

SELECT feature_names FROM nids.models WHERE name = 'ks';

-- statistic within 0.01 of scipy (in fact exact up to the reference's
-- 1/4096 resolution) and p-value within 0.01, for every window and feature,
-- against all the training rows (every row of the window counts)
SELECT e.reference, e.win, e.feature, d.n_reference, d.n_window,
       abs(d.ks_statistic - e.ks_statistic) < 1.0 / 4096 AS statistic_ok,
       abs(d.p_value - e.p_value) < 0.01 AS p_value_ok,
       d.drift_level
FROM ks_expected e
CROSS JOIN LATERAL ks_drift('SELECT * FROM ks_' || e.win, 'ks', e.reference) d
WHERE d.feature = e.feature AND e.reference = 'all'
ORDER BY e.reference, e.win, e.feature;
-- against the benign training rows (the default) only the window's rows the
-- model calls benign count: like with like, attacks in a window are not
-- drift (1.1 compared every row with the benign training rows)
SELECT w AS win, d.n_window = (SELECT count(*) FROM ks_same f WHERE nids_classify(nids_features(f, 'ks'), 'ks') = 'BENIGN')
	AS counts_benign_called, d.n_window < (SELECT count(*) FROM ks_same) AS fewer_than_all
FROM (VALUES ('same')) v(w), ks_drift('SELECT * FROM ks_same', 'ks') d WHERE d.feature = 'f_cont';
SELECT count(*) FILTER (WHERE d.ks_statistic = b.ks_statistic AND d.n_window = b.n_window) AS same_as_prefiltered
FROM ks_drift('SELECT * FROM ks_shifted', 'ks') d
JOIN ks_drift($$SELECT * FROM ks_shifted f WHERE nids_classify(nids_features(f, 'ks'), 'ks') = 'BENIGN'$$, 'ks') b USING (feature);
SELECT count(*) FILTER (WHERE d.ks_statistic = a.ks_statistic) = 4 AS benign_is_the_default
FROM ks_drift('SELECT * FROM ks_shifted', 'ks') d JOIN ks_drift('SELECT * FROM ks_shifted', 'ks', 'benign') a USING (feature);
SELECT * FROM ks_drift('SELECT * FROM ks_same', 'ks', 'normal');
\echo :LAST_ERROR_SQLSTATE

-- discrete features have exact references: the statistic is scipy's, up to
-- the float32 the reference's distribution function is stored in
SELECT e.reference, e.win, e.feature, abs(d.ks_statistic - e.ks_statistic) < 1e-6 AS exact
FROM ks_expected e CROSS JOIN LATERAL ks_drift('SELECT * FROM ks_' || e.win, 'ks', e.reference) d
WHERE d.feature = e.feature AND e.feature IN ('f_port', 'f_count') AND e.reference = 'all'
ORDER BY 1, 2, 3;

-- 'high' needs KS > 0.5 and Bonferroni significance: two training rows
-- from the top of f_cont are far from its distribution, but two rows
-- cannot say so (1.0 called them 'high'); a large window far off is 'high'
SELECT feature, ks_statistic > 0.5 AS large_shift, p_value >= 0.05 / 4 AS not_significant, drift_level
FROM ks_drift('SELECT * FROM ks_ref WHERE f_cont > 70 AND label = ''BENIGN'' ORDER BY f_cont LIMIT 2', 'ks')
WHERE feature = 'f_cont';
SELECT feature, ks_statistic > 0.5 AS large_shift, drift_level
FROM ks_drift('SELECT f_cont + 1000 AS f_cont, f_port, f_count, f_heavy FROM ks_shifted', 'ks') ORDER BY 1;

-- one float8[] column in feature order works the same
SELECT d1.feature, d1.ks_statistic = d2.ks_statistic AS same
FROM ks_drift('SELECT * FROM ks_shifted', 'ks') d1
JOIN ks_drift('SELECT ARRAY[f_cont, f_port, f_count, f_heavy] FROM ks_shifted', 'ks') d2 USING (feature)
ORDER BY 1;

-- columns matched by canonical name; a feature missing from the window has
-- n_window 0 (with a WARNING naming it, when nids.min_feature_coverage allows)
SET nids.min_feature_coverage = 0;
SELECT feature, n_window, ks_statistic IS NULL AS no_statistic, drift_level
FROM ks_drift('SELECT f_cont AS "F Cont", f_port AS "F-Port" FROM ks_same', 'ks') ORDER BY feature;
-- a feature named twice is read from its first column only, as nids_features does
SELECT n_window = (SELECT count(*) FROM ks_same) AS counted_once
FROM ks_drift('SELECT f_cont, f_cont AS "F Cont" FROM ks_same', 'ks', 'all') WHERE feature = 'f_cont';
RESET nids.min_feature_coverage;

-- an empty window
SELECT count(*) FILTER (WHERE n_window = 0) AS empty_features FROM ks_drift('SELECT * FROM ks_same WHERE false', 'ks');

-- the window must be one read-only SELECT
SELECT * FROM ks_drift('DELETE FROM ks_same', 'ks');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift('WITH d AS (DELETE FROM ks_same RETURNING *) SELECT * FROM d', 'ks');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift('SELECT * FROM ks_same FOR UPDATE', 'ks');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift('SELECT 1; DELETE FROM ks_same', 'ks');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift('SELEC 1', 'ks');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS still_there FROM ks_same;
SELECT * FROM ks_drift('SELECT * FROM ks_same', 'no_such_model');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift('SELECT f_cont::text AS f_cont FROM ks_same', 'ks');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ks_drift('SELECT ARRAY[1, 2]::float8[] FROM ks_same', 'ks');
\echo :LAST_ERROR_SQLSTATE

-- an imported model has no training distribution until one is attached
\set ECHO none
\i test/fixtures/xgb_fixtures.sql
\o /dev/null
SELECT nids_import_xgboost('dr_imported', booster, features, classes) FROM fx_models WHERE name = 'softprob_json';
\o
\set ECHO all
SELECT * FROM ks_drift('SELECT * FROM ks_same', 'dr_imported');
\echo :LAST_ERROR_SQLSTATE

-- cancelled by statement_timeout on a window that would take minutes
SET statement_timeout = '300ms';
SELECT * FROM ks_drift('SELECT a.* FROM ks_ref a, ks_ref b', 'ks');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;

-- any version by 'name@N'; an unknown one is 42704
SELECT count(*) AS rows_v1 FROM ks_drift('SELECT * FROM ks_same', 'ks@1');
SELECT count(*) FROM ks_drift('SELECT * FROM ks_same', 'ks@7');
\echo :LAST_ERROR_SQLSTATE

-- reports
-- (a report id is this node's tag in the high 32 bits, the local sequence in the low 32)
SELECT nids_log_drift('SELECT * FROM ks_shifted', 'ks') & 4294967295 AS report;
SELECT nids_log_drift('SELECT * FROM ks_same', 'ks') & 4294967295 AS report;
SELECT count(DISTINCT report_id >> 32) = 1 AND min(report_id >> 32) > 0 AS one_node_tag
FROM nids.drift_reports WHERE model = 'ks';
SELECT report_id & 4294967295 AS report, model, version, feature, drift_level, n_window
FROM nids.drift_reports WHERE model = 'ks' ORDER BY report_id, feature;
-- the latest report of a model
SELECT report_id & 4294967295 AS report, count(*) FILTER (WHERE drift_level <> 'none') AS drifting
FROM nids.drift_reports
WHERE model = 'ks' AND report_id = (SELECT max(report_id) FROM nids.drift_reports WHERE model = 'ks')
GROUP BY report_id;
SELECT nids_log_drift('DELETE FROM ks_same', 'ks');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_log_drift('SELECT * FROM ks_same', 'no_such_model');
\echo :LAST_ERROR_SQLSTATE

-- without pg_cron in this database, scheduling says what is missing
SELECT nids_schedule_drift('nightly', '0 3 * * *', 'SELECT * FROM ks_same', 'ks');
\echo :LAST_ERROR_SQLSTATE

DROP TABLE ks_ref, ks_same, ks_mild, ks_shifted, ks_small;
