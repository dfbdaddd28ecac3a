-- nids--1.0.sql: network intrusion detection inside PostgreSQL
\echo Use "CREATE EXTENSION nids" to load this file. \quit

-- The extension's own tables, views and types live in schema nids; the
-- functions users call are created in the schema CREATE EXTENSION targets.
CREATE SCHEMA nids;
COMMENT ON SCHEMA nids IS 'nids: model catalogue, drift reports and their types';
GRANT USAGE ON SCHEMA nids TO PUBLIC;

-- nids_admin may import, train, deploy and drop models.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'nids_admin') THEN
		CREATE ROLE nids_admin NOLOGIN;
	END IF;
END
$$;

------------------------------------------------------------------------------
-- Model catalogue
------------------------------------------------------------------------------
CREATE TABLE nids.model_versions (
	name text NOT NULL CHECK (length(name) BETWEEN 1 AND 63),
	version integer NOT NULL CHECK (version > 0),
	deployed boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now(),
	feature_names text[] NOT NULL,
	class_labels text[] NOT NULL,
	metrics jsonb NOT NULL DEFAULT '{}',
	booster bytea NOT NULL,			-- the XGBoost document, JSON or UBJSON
	native bytea NOT NULL,			-- its native form (forest.c), validated on load
	iforest bytea,					-- isolation forest (iforest.c), or NULL
	anomaly_threshold float8,		-- novelty threshold on nids_anomaly
	reference bytea,				-- training distribution for ks_drift, or NULL
	benign_label text,				-- the benign class label (default BENIGN)
	PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX model_versions_deployed ON nids.model_versions (name) WHERE deployed;
COMMENT ON TABLE nids.model_versions IS
	'nids model versions: XGBoost booster, native form, isolation forest, drift reference, metrics';
SELECT pg_catalog.pg_extension_config_dump('nids.model_versions', '');
REVOKE ALL ON nids.model_versions FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON nids.model_versions TO nids_admin;

CREATE VIEW nids.models AS
	SELECT name, version, deployed, created_at, feature_names, class_labels, metrics
	FROM nids.model_versions;
COMMENT ON VIEW nids.models IS 'The model catalogue: one row per model version; one deployed version per name';
GRANT SELECT ON nids.models TO PUBLIC;

-- Every change to the catalogue reaches every backend's model cache at commit.
CREATE FUNCTION nids_invalidate_models() RETURNS trigger
	AS 'MODULE_PATHNAME', 'nids_invalidate_models' LANGUAGE C;
COMMENT ON FUNCTION nids_invalidate_models() IS
	'Trigger on nids.model_versions: invalidates every backend''s model cache at commit';
REVOKE ALL ON FUNCTION nids_invalidate_models() FROM PUBLIC;
CREATE TRIGGER model_versions_invalidate
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON nids.model_versions
	FOR EACH STATEMENT EXECUTE FUNCTION nids_invalidate_models();

CREATE FUNCTION nids._register_model(p_name text, p_booster bytea, p_native bytea,
	p_features text[], p_classes text[], p_metrics jsonb, p_deploy boolean,
	p_iforest bytea, p_threshold float8, p_reference bytea, p_benign text)
RETURNS integer LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v integer;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('nids.model_versions'), hashtext(p_name));
	SELECT coalesce(max(version), 0) + 1 INTO v FROM nids.model_versions WHERE name = p_name;
	IF p_deploy THEN
		UPDATE nids.model_versions SET deployed = false WHERE name = p_name AND deployed;
	END IF;
	INSERT INTO nids.model_versions (name, version, deployed, feature_names, class_labels,
		metrics, booster, native, iforest, anomaly_threshold, reference, benign_label)
	VALUES (p_name, v, p_deploy, p_features, p_classes, p_metrics || jsonb_build_object('version', v),
		p_booster, p_native, p_iforest, p_threshold, p_reference, p_benign);
	RETURN v;
END
$$;
COMMENT ON FUNCTION nids._register_model(text, bytea, bytea, text[], text[], jsonb, boolean, bytea, float8, bytea, text) IS
	'Internal: numbers and inserts a new model version';
REVOKE ALL ON FUNCTION nids._register_model(text, bytea, bytea, text[], text[], jsonb, boolean, bytea, float8, bytea, text) FROM PUBLIC;

CREATE FUNCTION nids_import_xgboost(model text, booster bytea, feature_names text[],
	class_labels text[], deploy boolean DEFAULT true)
RETURNS integer
AS 'MODULE_PATHNAME', 'nids_import_xgboost'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION nids_import_xgboost(text, bytea, text[], text[], boolean) IS
	'Registers an XGBoost booster (JSON or UBJSON; multi:softprob, multi:softmax or binary:logistic) as a new model version; returns the version';

CREATE FUNCTION nids_export_xgboost(model text DEFAULT 'default')
RETURNS bytea
AS 'MODULE_PATHNAME', 'nids_export_xgboost'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION nids_export_xgboost(text) IS
	'The deployed classifier of a model as XGBoost JSON, loadable by XGBoost''s own load_model';

CREATE FUNCTION nids_deploy(model text, version integer)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF model IS NULL OR version IS NULL THEN
		RAISE EXCEPTION 'model and version must not be NULL' USING ERRCODE = '22004';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('nids.model_versions'), hashtext(model));
	IF NOT EXISTS (SELECT 1 FROM nids.model_versions m WHERE m.name = model AND m.version = nids_deploy.version) THEN
		RAISE EXCEPTION 'model "%" has no version %', model, version
			USING ERRCODE = 'undefined_object', HINT = 'See nids.models for the versions of each model.';
	END IF;
	UPDATE nids.model_versions m SET deployed = false
		WHERE m.name = model AND m.deployed AND m.version <> nids_deploy.version;
	UPDATE nids.model_versions m SET deployed = true
		WHERE m.name = model AND m.version = nids_deploy.version AND NOT m.deployed;
END
$$;
COMMENT ON FUNCTION nids_deploy(text, integer) IS
	'Makes a version the deployed one of its model (deploy, or roll back); every session scores with it from its next statement';

CREATE FUNCTION nids_drop_model(model text, version integer DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	IF model IS NULL THEN
		RAISE EXCEPTION 'model must not be NULL' USING ERRCODE = '22004';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('nids.model_versions'), hashtext(model));
	DELETE FROM nids.model_versions m
		WHERE m.name = model AND (nids_drop_model.version IS NULL OR m.version = nids_drop_model.version);
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n = 0 THEN
		IF version IS NULL THEN
			RAISE EXCEPTION 'model "%" does not exist', model USING ERRCODE = 'undefined_object';
		ELSE
			RAISE EXCEPTION 'model "%" has no version %', model, version USING ERRCODE = 'undefined_object';
		END IF;
	END IF;
END
$$;
COMMENT ON FUNCTION nids_drop_model(text, integer) IS
	'Drops one version of a model, or all its versions when version is NULL';

REVOKE ALL ON FUNCTION nids_import_xgboost(text, bytea, text[], text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION nids_deploy(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION nids_drop_model(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION nids_export_xgboost(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nids_import_xgboost(text, bytea, text[], text[], boolean) TO nids_admin;
GRANT EXECUTE ON FUNCTION nids_deploy(text, integer) TO nids_admin;
GRANT EXECUTE ON FUNCTION nids_drop_model(text, integer) TO nids_admin;
GRANT EXECUTE ON FUNCTION nids_export_xgboost(text) TO nids_admin;
GRANT EXECUTE ON FUNCTION nids._register_model(text, bytea, bytea, text[], text[], jsonb, boolean, bytea, float8, bytea, text) TO nids_admin;

------------------------------------------------------------------------------
-- Scoring.  Models are read from a table, so these are STABLE, not IMMUTABLE.
------------------------------------------------------------------------------
CREATE TYPE nids.verdict AS (
	label text,
	probability float8,
	anomaly_score float8,
	novel boolean,
	verdict text
);
COMMENT ON TYPE nids.verdict IS 'Result of nids_ensemble: classifier label and probability, isolation-forest score, novelty, verdict';

CREATE FUNCTION nids_classify(features float8[], model text DEFAULT 'default')
RETURNS text
AS 'MODULE_PATHNAME', 'nids_classify'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION nids_classify(float8[], text) IS
	'Predicted class label of one flow (features in the model''s feature_names order; NULL or NaN is missing)';

CREATE FUNCTION nids_classify_proba(features float8[], model text DEFAULT 'default')
RETURNS float8[]
AS 'MODULE_PATHNAME', 'nids_classify_proba'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION nids_classify_proba(float8[], text) IS
	'Class probabilities of one flow, in the model''s class_labels order';

CREATE FUNCTION nids_anomaly(features float8[], model text DEFAULT 'default')
RETURNS float8
AS 'MODULE_PATHNAME', 'nids_anomaly'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION nids_anomaly(float8[], text) IS
	'Isolation-forest anomaly score of one flow in [0, 1], higher is more anomalous (Liu, Ting and Zhou 2008)';

CREATE FUNCTION nids_ensemble(features float8[], model text DEFAULT 'default')
RETURNS nids.verdict
AS 'MODULE_PATHNAME', 'nids_ensemble'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 20;
COMMENT ON FUNCTION nids_ensemble(float8[], text) IS
	'Classifier label and probability, anomaly score, novelty and verdict (attack, anomaly or benign) of one flow';

------------------------------------------------------------------------------
-- Training
------------------------------------------------------------------------------
CREATE FUNCTION nids_train(source regclass, label_column name DEFAULT 'label',
	model text DEFAULT 'default', options jsonb DEFAULT '{}')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'nids_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION nids_train(regclass, name, text, jsonb) IS
	'Trains the classifier, isolation forest and drift reference on labelled flows and registers a new model version; returns metrics';
REVOKE ALL ON FUNCTION nids_train(regclass, name, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nids_train(regclass, name, text, jsonb) TO nids_admin;

CREATE FUNCTION nids_features(flow record, model text DEFAULT 'default')
RETURNS float8[]
AS 'MODULE_PATHNAME', 'nids_features'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 5;
COMMENT ON FUNCTION nids_features(record, text) IS
	'The model''s feature vector from any row, by canonical column name; a feature the row lacks is missing';

CREATE FUNCTION nids_score_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'nids_score_trigger'
LANGUAGE C;
COMMENT ON FUNCTION nids_score_trigger() IS
	'BEFORE INSERT OR UPDATE row trigger (optional argument: model): fills predicted_label, probability, anomaly_score, novel, verdict where the table has them';

CREATE FUNCTION nids_attach_benign(model text, benign_flows regclass, options jsonb DEFAULT '{}')
RETURNS integer
AS 'MODULE_PATHNAME', 'nids_attach_benign'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION nids_attach_benign(text, regclass, jsonb) IS
	'Registers a new version of a model (e.g. an imported one) with an isolation forest and drift reference trained on a table of benign flows; returns the version';
REVOKE ALL ON FUNCTION nids_attach_benign(text, regclass, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nids_attach_benign(text, regclass, jsonb) TO nids_admin;

------------------------------------------------------------------------------
-- Drift
------------------------------------------------------------------------------
CREATE FUNCTION ks_drift(window_query text, model text DEFAULT 'default')
RETURNS TABLE (feature text, ks_statistic float8, p_value float8, n_reference bigint,
	n_window bigint, drift_level text)
AS 'MODULE_PATHNAME', 'ks_drift'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE ROWS 80;
COMMENT ON FUNCTION ks_drift(text, text) IS
	'Two-sample Kolmogorov-Smirnov test of each model feature: a read-only window query (run with the caller''s privileges) against the training distribution';

CREATE FUNCTION nids._check_window_query(window_query text)
RETURNS void
AS 'MODULE_PATHNAME', 'nids_check_window_query'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION nids._check_window_query(text) IS
	'Internal: raises the error ks_drift would raise for a window query that is not one read-only SELECT';

CREATE SEQUENCE nids.drift_report_id;
CREATE TABLE nids.drift_reports (
	report_id bigint NOT NULL,
	model text NOT NULL,
	version integer NOT NULL,
	ran_at timestamptz NOT NULL DEFAULT now(),
	feature text NOT NULL,
	ks_statistic float8,
	p_value float8,
	n_reference bigint NOT NULL,
	n_window bigint NOT NULL,
	drift_level text NOT NULL CHECK (drift_level IN ('none', 'significant', 'high')),
	PRIMARY KEY (report_id, feature)
);
-- "the latest report of a model" and time ranges
CREATE INDEX drift_reports_model_time ON nids.drift_reports (model, ran_at DESC, report_id);
CREATE INDEX drift_reports_time ON nids.drift_reports (ran_at);
COMMENT ON TABLE nids.drift_reports IS 'Drift reports logged by nids_log_drift: one row per feature per report';
SELECT pg_catalog.pg_extension_config_dump('nids.drift_reports', '');
SELECT pg_catalog.pg_extension_config_dump('nids.drift_report_id', '');
REVOKE ALL ON nids.drift_reports FROM PUBLIC;
REVOKE ALL ON SEQUENCE nids.drift_report_id FROM PUBLIC;
GRANT SELECT ON nids.drift_reports TO PUBLIC;
GRANT SELECT, INSERT, DELETE ON nids.drift_reports TO nids_admin;
GRANT USAGE ON SEQUENCE nids.drift_report_id TO nids_admin;

CREATE FUNCTION nids_log_drift(window_query text, model text DEFAULT 'default')
RETURNS bigint
AS 'MODULE_PATHNAME', 'nids_log_drift'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION nids_log_drift(text, text) IS
	'Runs ks_drift and appends its rows to nids.drift_reports; returns the report id';
REVOKE ALL ON FUNCTION nids_log_drift(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nids_log_drift(text, text) TO nids_admin;

CREATE FUNCTION nids_schedule_drift(job_name text, schedule text, window_query text,
	model text DEFAULT 'default')
RETURNS bigint
AS 'MODULE_PATHNAME', 'nids_schedule_drift'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION nids_schedule_drift(text, text, text, text) IS
	'Schedules nids_log_drift with pg_cron (cron syntax, run with this session''s search_path); returns the pg_cron job id';
REVOKE ALL ON FUNCTION nids_schedule_drift(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nids_schedule_drift(text, text, text, text) TO nids_admin;
