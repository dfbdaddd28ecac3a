-- nids 1.2 -> 1.3: who may raise incidents (nids_feeder), locks per
-- source instead of one for all, and nids_adapt for nids_admin with its
-- options checked by type.
\echo Use "ALTER EXTENSION nids UPDATE TO '1.3'" to load this file. \quit

-- Who may open, grow or merge incidents: the roles whose inserts the alert
-- and scan triggers act on (checked at run time, 42501 otherwise).
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'nids_feeder') THEN
		CREATE ROLE nids_feeder NOLOGIN;
	END IF;
END
$$;
GRANT nids_feeder TO nids_admin;
COMMENT ON FUNCTION nids_alert_trigger() IS
	'AFTER INSERT ... REFERENCING NEW TABLE ... FOR EACH STATEMENT trigger: opens or grows the incidents of the inserted flows (argument: the model); the inserting role must be a member of nids_feeder';
COMMENT ON FUNCTION nids_scans(text, jsonb) IS
	'The scan detector of nids_scan_trigger over a read-only query''s rows in timestamp order: one row per detected scan (TCP first contacts in sequential walks that end benign; UDP and ICMP echo only as sweeps)';
COMMENT ON FUNCTION nids_scan_trigger() IS
	'AFTER INSERT ... REFERENCING NEW TABLE ... FOR EACH STATEMENT trigger: per-source scan detection over the inserted flows, opening incidents of kind scan (argument: options as jsonb text); the inserting role must be a member of nids_feeder';
GRANT EXECUTE ON FUNCTION nids_alerts_from(text, text) TO nids_feeder;

-- nids_adapt is C (train_adapt.c), a training step over the training
-- code's entry points: 1.2's PL/pgSQL nids._adapt and its two helpers go
-- (the 1.3 library keeps their C symbols for a catalogue of 1.2 until this
-- update has run)
DROP FUNCTION nids._adapt(text, text, jsonb, text);
DROP FUNCTION nids._window_vectors(text, text, text);
DROP FUNCTION nids._ks_every_row(text, text);
COMMENT ON FUNCTION nids_adapt(text, text, jsonb) IS
	'A new, undeployed version of a model fitted to the local network from flows of a period believed benign (one version, its metrics filled); reports the local share flagged and the attack recall before and after';

-- A decision threshold per version (nids_adapt): the classifier calls a
-- flow benign when P(benign) >= benign_threshold, whatever class is the
-- likeliest; NULL: the likeliest class, as before.  Every verdict uses it.
ALTER TABLE nids.model_versions ADD COLUMN benign_threshold float8
	CHECK (benign_threshold > 0 AND benign_threshold < 1);
COMMENT ON COLUMN nids.model_versions.benign_threshold IS
	'tau: the classifier says benign when P(benign) >= tau (set by nids_adapt on held-out quiet flows); NULL: the likeliest class';
CREATE OR REPLACE VIEW nids.model_summary AS
	SELECT name, version, deployed, created_at,
		pg_catalog.cardinality(feature_names) AS features,
		pg_catalog.cardinality(class_labels) AS classes,
		(metrics #>> '{rows,train}')::bigint AS train_rows,
		(metrics ->> 'macro_f1')::float8 AS macro_f1,
		(metrics ->> 'accuracy')::float8 AS accuracy,
		COALESCE(metrics #>> '{novelty,method}',
			CASE WHEN iforest IS NOT NULL THEN 'iforest' END) AS novelty_method,
		COALESCE(metrics #>> '{novelty,benign_fpr}', metrics #>> '{iforest,benign_fpr}')::float8 AS benign_fpr,
		benign_threshold
	FROM nids.model_versions;
COMMENT ON VIEW nids.model_summary IS
	'One line per model version: size, training rows, hold-out quality, novelty gate and decision threshold';
