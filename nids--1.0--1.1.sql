-- nids--1.0--1.1.sql: update nids 1.0 to 1.1
\echo Use "ALTER EXTENSION nids UPDATE TO '1.1'" to load this file. \quit

-- The catalogue is read and written by C (src/model_catalog.c) alone: deploy
-- and drop become C functions, and the PL/pgSQL registration helper and the
-- window-query check that C code reached through SQL are gone.  Stored
-- model versions are untouched and score as before.
CREATE OR REPLACE FUNCTION nids_deploy(model text, version integer)
RETURNS void
AS 'MODULE_PATHNAME', 'nids_deploy'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION nids_deploy(text, integer) IS
	'Makes a version the deployed one of its model (deploy, or roll back); every session scores with it from its next statement';

CREATE OR REPLACE FUNCTION nids_drop_model(model text, version integer DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'nids_drop_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION nids_drop_model(text, integer) IS
	'Drops one version of a model, or all its versions when version is NULL';

DROP FUNCTION nids._register_model(text, bytea, bytea, text[], text[], jsonb, boolean, bytea, float8, bytea, text);
DROP FUNCTION nids._check_window_query(text);

-- pg_cron jobs made by nids_schedule_drift can be removed by name.  DROP
-- EXTENSION nids does not remove them (pg_cron's table is not nids'): run
--   SELECT nids_unschedule_drift(jobname) FROM cron.job WHERE command LIKE '%nids_log_drift(%';
-- first (README, "Drift reports and pg_cron").
CREATE FUNCTION nids_unschedule_drift(job_name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'nids_unschedule_drift'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION nids_unschedule_drift(text) IS
	'Removes this role''s pg_cron job of that name made by nids_schedule_drift; false when there is none';
REVOKE ALL ON FUNCTION nids_unschedule_drift(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nids_unschedule_drift(text) TO nids_admin;

-- No silent mistakes (1.1): a model argument may name a version ('name@N'),
-- nids_train deploys "if_better" by default over a deployed version, and
-- the deployed version cannot be dropped while others exist.
COMMENT ON FUNCTION nids_drop_model(text, integer) IS
	'Drops one version of a model (not the deployed one while others exist), or all its versions when version is NULL';
COMMENT ON FUNCTION nids_train(regclass, name, text, jsonb) IS
	'Trains classifier, novelty gate and drift reference on the CICFlowMeter features of a table and registers a new version; deploys it if better than the deployed one (options.deploy)';

-- Results people can read.
CREATE VIEW nids.model_summary AS
	SELECT name, version, deployed, created_at,
		pg_catalog.cardinality(feature_names) AS features,
		pg_catalog.cardinality(class_labels) AS classes,
		(metrics #>> '{rows,train}')::bigint AS train_rows,
		(metrics ->> 'macro_f1')::float8 AS macro_f1,
		(metrics ->> 'accuracy')::float8 AS accuracy,
		CASE WHEN iforest IS NOT NULL THEN 'iforest' END AS novelty_method,
		(metrics #>> '{iforest,benign_fpr}')::float8 AS benign_fpr
	FROM nids.model_versions;
COMMENT ON VIEW nids.model_summary IS
	'One line per model version: size, training rows, hold-out quality and novelty gate';
GRANT SELECT ON nids.model_summary TO PUBLIC;

CREATE FUNCTION nids_class_probabilities(features float8[], model text DEFAULT 'default')
RETURNS TABLE(label text, probability float8)
AS 'MODULE_PATHNAME', 'nids_class_probabilities'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 10 ROWS 10;
COMMENT ON FUNCTION nids_class_probabilities(float8[], text) IS
	'Class probabilities of one flow as rows, most probable first';
