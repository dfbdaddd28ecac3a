-- nids_schedule_drift with a real pg_cron (preloaded in the test cluster,
-- whose cron.database_name is this database).
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
SELECT plan(8);

CREATE TABLE cron_flows AS
	SELECT g::float8 AS destination_port, (g % 7)::float8 AS total_fwd_packets,
		CASE WHEN g % 2 = 0 THEN 'BENIGN' ELSE 'PortScan' END AS label
	FROM generate_series(1, 600) g;
SELECT ok(nids_train('cron_flows', model => 'cronm',
	options => '{"xgboost": {"num_boost_round": 3}}') ? 'version', 'a model to watch');

SELECT lives_ok($$SELECT nids_schedule_drift('nids_test_job', '*/5 * * * *',
	'SELECT * FROM cron_flows WHERE destination_port > 300', 'cronm')$$,
	'nids_schedule_drift schedules a job');
SELECT is((SELECT count(*)::int FROM cron.job WHERE jobname = 'nids_test_job'), 1,
	'the job exists in cron.job');
SELECT is((SELECT schedule FROM cron.job WHERE jobname = 'nids_test_job'), '*/5 * * * *',
	'with the schedule given');
SELECT matches((SELECT command FROM cron.job WHERE jobname = 'nids_test_job'),
	'nids_log_drift\(.*cronm', 'running nids_log_drift for the model');

-- run the job's command once by hand, as pg_cron would
DO $$ BEGIN EXECUTE (SELECT command FROM cron.job WHERE jobname = 'nids_test_job'); END $$;
SELECT is((SELECT count(DISTINCT report_id)::int FROM nids.drift_reports WHERE model = 'cronm'), 1,
	'run once, it logged one report');
SELECT ok((SELECT bool_or(drift_level <> 'none') FROM nids.drift_reports WHERE model = 'cronm'),
	'and the shifted window drifts');

SELECT throws_ok($$SELECT nids_schedule_drift('bad', '*/5 * * * *', 'DELETE FROM cron_flows', 'cronm')$$,
	'25006', NULL, 'a window query that writes is refused before it is scheduled');

SELECT * FROM finish();
ROLLBACK;
