-- nids_schedule_drift with a real pg_cron (preloaded in the test cluster,
-- whose cron.database_name is this database).
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
SELECT plan(17);

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

-- the session's search_path goes into the job quoted, element by element:
-- a name that holds SQL stays a (missing) schema name
SELECT set_config('search_path', 'public;CREATE/**/TABLE/**/nids_pwned()', true);
SELECT public.nids_schedule_drift('nids_injection', '*/5 * * * *', 'SELECT * FROM public.cron_flows', 'cronm');
SELECT set_config('search_path', 'public', true);
SELECT matches((SELECT command FROM cron.job WHERE jobname = 'nids_injection'),
	'^SET search_path = "public;create/\*\*/table/\*\*/nids_pwned\(\)"; ', 'the search_path is quoted in the job');
DO $$ BEGIN EXECUTE (SELECT command FROM cron.job WHERE jobname = 'nids_injection'); END $$;
SELECT set_config('search_path', 'public', true);
SELECT hasnt_table('nids_pwned', 'running the job created nothing');
SELECT is((SELECT count(DISTINCT report_id)::int FROM nids.drift_reports WHERE model = 'cronm'), 2,
	'and logged its report');

-- unscheduling by name: this role's nids jobs only
SELECT is(nids_unschedule_drift('nids_injection'), true, 'nids_unschedule_drift removes the job');
SELECT is((SELECT count(*)::int FROM cron.job WHERE jobname = 'nids_injection'), 0, 'it is gone from cron.job');
SELECT is(nids_unschedule_drift('nids_injection'), false, 'a second call finds nothing to remove');
SELECT cron.schedule('not_nids', '*/5 * * * *', 'SELECT 1');
SELECT is(nids_unschedule_drift('not_nids'), false, 'a job nids did not make is left alone');

-- a nids_admin member who may not use schema cron is told what to grant
CREATE ROLE nids_t_cron IN ROLE nids_admin;
GRANT SELECT ON cron_flows TO nids_t_cron;
SET ROLE nids_t_cron;
SELECT throws_ok($$SELECT nids_schedule_drift('x', '*/5 * * * *', 'SELECT * FROM cron_flows', 'cronm')$$,
	'42501', 'permission denied for schema cron', 'without USAGE on schema cron, scheduling is 42501');
RESET ROLE;
GRANT USAGE ON SCHEMA cron TO nids_t_cron;
CREATE TABLE cron_secret AS SELECT * FROM cron_flows;
SET ROLE nids_t_cron;
SELECT throws_ok($$SELECT nids_schedule_drift('x', '*/5 * * * *', 'SELECT * FROM cron_secret', 'cronm')$$,
	'42501', NULL, 'a window the role cannot read is refused when scheduling, not at run time');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
