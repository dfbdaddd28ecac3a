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
		COALESCE(metrics #>> '{novelty,method}',
			CASE WHEN iforest IS NOT NULL THEN 'iforest' END) AS novelty_method,
		COALESCE(metrics #>> '{novelty,benign_fpr}', metrics #>> '{iforest,benign_fpr}')::float8 AS benign_fpr
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

-- The novelty gate v2 (options.novelty) and the benign training
-- distribution for ks_drift(reference => 'benign') are stored per version;
-- versions stored by 1.0 have neither and keep scoring as they did.
ALTER TABLE nids.model_versions
	ADD COLUMN novelty bytea,
	ADD COLUMN benign_reference bytea;
COMMENT ON COLUMN nids.model_versions.novelty IS
	'the novelty gate: method, threshold, benign prototypes (NULL: the isolation forest and anomaly_threshold, as in 1.0)';
COMMENT ON COLUMN nids.model_versions.benign_reference IS
	'the training distribution of the benign flows, for ks_drift(reference => ''benign'')';

-- nids.verdict gains novelty (the gate's score over its threshold) after
-- novel.  A composite type cannot take an attribute in the middle, so the
-- type and nids_ensemble are made again; a view or column of yours that
-- uses nids.verdict makes the update stop with the dependency named: drop
-- it first and make it again after (README, "Installing").
DROP FUNCTION nids_ensemble(float8[], text);
DROP TYPE nids.verdict;
CREATE TYPE nids.verdict AS (
	label text,
	probability float8,
	anomaly_score float8,
	novel boolean,
	novelty float8,
	verdict text
);
COMMENT ON TYPE nids.verdict IS
	'Result of nids_ensemble: classifier label and probability, isolation-forest score, novel, novelty (the gate''s score over its threshold), verdict';

CREATE FUNCTION nids_ensemble(features float8[], model text DEFAULT 'default')
RETURNS nids.verdict
AS 'MODULE_PATHNAME', 'nids_ensemble'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 20;
COMMENT ON FUNCTION nids_ensemble(float8[], text) IS
	'Classifier label and probability, anomaly score, novelty and verdict (attack, anomaly or benign) of one flow';

CREATE FUNCTION nids_novelty(features float8[], model text DEFAULT 'default')
RETURNS float8
AS 'MODULE_PATHNAME', 'nids_novelty'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION nids_novelty(float8[], text) IS
	'The novelty gate''s score of one flow over its threshold: above 1 is novel';

COMMENT ON FUNCTION nids_score_trigger() IS
	'BEFORE INSERT OR UPDATE row trigger (optional argument: model): fills predicted_label, probability, anomaly_score, novel, novelty, verdict where the table has them';

-- Health and drift that tell a real shift from noise: ks_drift compares
-- with the benign training flows by default (reference => 'all': every
-- training flow, 1.0's comparison), 'high' needs KS > 0.5 and Bonferroni
-- significance, and nids_health says whether the model fits the traffic.
DROP FUNCTION ks_drift(text, text);
CREATE FUNCTION ks_drift(window_query text, model text DEFAULT 'default',
	reference text DEFAULT 'benign')
RETURNS TABLE(feature text, ks_statistic float8, p_value float8, n_reference bigint,
	n_window bigint, drift_level text)
AS 'MODULE_PATHNAME', 'ks_drift'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE ROWS 80;
COMMENT ON FUNCTION ks_drift(text, text, text) IS
	'Two-sample Kolmogorov-Smirnov drift of a window query (run with your privileges) against the model''s benign (or all) training flows, per feature';

ALTER TABLE nids.drift_reports ADD COLUMN reference text;
COMMENT ON COLUMN nids.drift_reports.reference IS
	'what the window was compared with: the benign training flows or all of them (NULL: a 1.0 report, all of them)';

CREATE TABLE nids.health_reports (
	report_id bigint NOT NULL,
	model text NOT NULL,
	version integer NOT NULL,
	ran_at timestamptz NOT NULL DEFAULT now(),
	check_name text NOT NULL,
	value float8,
	expected float8,
	status text NOT NULL CHECK (status IN ('ok', 'warn', 'alarm')),
	PRIMARY KEY (report_id, check_name)
);
CREATE INDEX health_reports_model_time ON nids.health_reports (model, ran_at DESC, report_id);
COMMENT ON TABLE nids.health_reports IS
	'nids_health rows logged by nids_log_drift, under the report id of the drift report of the same window';
SELECT pg_catalog.pg_extension_config_dump('nids.health_reports', '');
REVOKE ALL ON nids.health_reports FROM PUBLIC;
GRANT SELECT ON nids.health_reports TO PUBLIC;
GRANT SELECT, INSERT, DELETE ON nids.health_reports TO nids_admin;

CREATE FUNCTION nids_health(window_query text, model text DEFAULT 'default')
RETURNS TABLE(check_name text, value float8, expected float8, status text)
AS 'MODULE_PATHNAME', 'nids_health'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE ROWS 5;
COMMENT ON FUNCTION nids_health(text, text) IS
	'Whether the model fits a window of traffic: feature coverage, novel rate, attack rate, drifting features, overall (ok, warn or alarm)';

COMMENT ON FUNCTION nids_log_drift(text, text) IS
	'Runs ks_drift (against the benign training flows) and nids_health on a window and appends them to nids.drift_reports and nids.health_reports; returns the report id';

-- Why was this flow flagged: exact TreeSHAP contributions (node covers are
-- stored with every version trained or imported by 1.1), the novelty
-- gate's reasons, and the global importance of every feature.
CREATE FUNCTION nids_contributions(features float8[], model text DEFAULT 'default',
	class text DEFAULT NULL)
RETURNS float8[]
AS 'MODULE_PATHNAME', 'nids_contributions'
LANGUAGE C STABLE PARALLEL SAFE COST 200;
COMMENT ON FUNCTION nids_contributions(float8[], text, text) IS
	'Exact TreeSHAP contributions of every feature to a class''s margin (default: the predicted class), in feature_names order, the bias last; equal to XGBoost''s pred_contribs';

CREATE FUNCTION nids_explain(features float8[], model text DEFAULT 'default', top integer DEFAULT 5)
RETURNS TABLE(feature text, value float8, contribution float8)
AS 'MODULE_PATHNAME', 'nids_explain'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 200 ROWS 5;
COMMENT ON FUNCTION nids_explain(float8[], text, integer) IS
	'The features that moved the predicted class''s margin most (TreeSHAP), with their values, largest |contribution| first';

CREATE FUNCTION nids_explain_novelty(features float8[], model text DEFAULT 'default', top integer DEFAULT 5)
RETURNS TABLE(feature text, value float8, contribution float8)
AS 'MODULE_PATHNAME', 'nids_explain_novelty'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 50 ROWS 5;
COMMENT ON FUNCTION nids_explain_novelty(float8[], text, integer) IS
	'Why the novelty gate finds a flow novel: the largest per-feature terms of its distance to the nearest benign prototype (or the isolating splits, or what lowered P(benign))';

CREATE VIEW nids.feature_importance AS
	SELECT m.name, m.version, m.deployed, i.key AS feature,
		(i.value ->> 'gain')::float8 AS gain,
		(i.value ->> 'cover')::float8 AS cover,
		(i.value ->> 'splits')::bigint AS splits,
		rank() OVER (PARTITION BY m.name, m.version ORDER BY (i.value ->> 'gain')::float8 DESC) AS gain_rank
	FROM nids.model_versions m, jsonb_each(m.metrics -> 'importance') i;
COMMENT ON VIEW nids.feature_importance IS
	'Per version and feature: the splits on it and their total gain and cover (XGBoost''s total_gain and total_cover), ranked by gain';
GRANT SELECT ON nids.feature_importance TO PUBLIC;

-- Scale-out: mergeable drift.  nids_drift_counts gives a window's counts at
-- the reference's points; ks_drift_merge adds any number of them (one set
-- per node) into exactly ks_drift's result on the union of the windows.
CREATE FUNCTION nids_drift_counts(window_query text, model text DEFAULT 'default',
	reference text DEFAULT 'benign')
RETURNS TABLE(feature text, n_window bigint, counts bigint[])
AS 'MODULE_PATHNAME', 'nids_drift_counts'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE ROWS 80;
COMMENT ON FUNCTION nids_drift_counts(text, text, text) IS
	'Per feature, a window''s counts at the reference''s points (values equal to each point, then in each gap): what ks_drift_merge adds up';

CREATE FUNCTION ks_drift_merge(counts_query text, model text DEFAULT 'default',
	reference text DEFAULT 'benign')
RETURNS TABLE(feature text, ks_statistic float8, p_value float8, n_reference bigint,
	n_window bigint, drift_level text)
AS 'MODULE_PATHNAME', 'ks_drift_merge'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE ROWS 80;
COMMENT ON FUNCTION ks_drift_merge(text, text, text) IS
	'ks_drift of the union of windows, from the rows of nids_drift_counts of each (a read-only query returning feature, n_window, counts)';

-- Scale-out: version-pinned scoring.  model_id is a content-addressed id of
-- a version (the same content has the same id in every database); scoring
-- by it is IMMUTABLE, so postgres_fdw ships it to the shards.
CREATE FUNCTION nids_model_id(model text DEFAULT 'default')
RETURNS bigint
AS 'MODULE_PATHNAME', 'nids_model_id'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION nids_model_id(text) IS
	'The content-addressed id of a model version (''name'' or ''name@N''): a hash of its forests, gate, thresholds, features and classes';

ALTER TABLE nids.model_versions ADD COLUMN model_id bigint;
UPDATE nids.model_versions SET model_id = nids_model_id(name || '@' || version);
CREATE INDEX model_versions_model_id ON nids.model_versions (model_id);
COMMENT ON COLUMN nids.model_versions.model_id IS
	'nids_model_id of the version: what nids_classify_at and nids_ensemble_at find it by';

CREATE FUNCTION nids_classify_at(features float8[], model_id bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'nids_classify_at'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION nids_classify_at(float8[], bigint) IS
	'Predicted class of one flow by the version whose nids_model_id is model_id (42704 when this database has none); IMMUTABLE: postgres_fdw ships it';

CREATE FUNCTION nids_ensemble_at(features float8[], model_id bigint)
RETURNS nids.verdict
AS 'MODULE_PATHNAME', 'nids_ensemble_at'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 20;
COMMENT ON FUNCTION nids_ensemble_at(float8[], bigint) IS
	'nids_ensemble by the version whose nids_model_id is model_id (42704 when this database has none); IMMUTABLE: postgres_fdw ships it';

-- Logical replication of the catalogue: the apply worker fires no
-- statement triggers, so a row trigger that fires on subscribers too
-- (ENABLE ALWAYS) tells every session there that the catalogue changed.
CREATE TRIGGER model_versions_invalidate_row
	AFTER INSERT OR UPDATE OR DELETE ON nids.model_versions
	FOR EACH ROW EXECUTE FUNCTION nids_invalidate_models();
ALTER TABLE nids.model_versions ENABLE ALWAYS TRIGGER model_versions_invalidate_row;

-- Scale-out: a whole version as one validated bundle.
CREATE FUNCTION nids_export_model(model text DEFAULT 'default')
RETURNS bytea
AS 'MODULE_PATHNAME', 'nids_export_model'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION nids_export_model(text) IS
	'Everything a model version is (classifier, native form, novelty gate, isolation forest, drift references, labels, features, metrics) as one bundle for nids_import_model';
CREATE FUNCTION nids_import_model(bundle bytea, deploy boolean DEFAULT true)
RETURNS integer
AS 'MODULE_PATHNAME', 'nids_import_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION nids_import_model(bytea, boolean) IS
	'Registers a bundle made by nids_export_model, validated whole, as the next version of its model name; it scores and reports drift as the exported version';
REVOKE ALL ON FUNCTION nids_export_model(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION nids_import_model(bytea, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nids_export_model(text) TO nids_admin;
GRANT EXECUTE ON FUNCTION nids_import_model(bytea, boolean) TO nids_admin;
