-- Privileges, as non-superusers: scoring needs nothing; changing models
-- needs nids_admin; user queries run with the caller's privileges.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
SELECT plan(29);

CREATE ROLE nids_t_reader;
CREATE ROLE nids_t_admin IN ROLE nids_admin;
CREATE TABLE priv_flows AS
	SELECT g::float8 AS destination_port, (g % 7)::float8 AS total_fwd_packets,
		CASE WHEN g % 2 = 0 THEN 'BENIGN' ELSE 'PortScan' END AS label
	FROM generate_series(1, 400) g;
CREATE TABLE priv_secret AS SELECT * FROM priv_flows;
GRANT SELECT ON priv_flows TO nids_t_reader, nids_t_admin;
GRANT USAGE ON SCHEMA public TO nids_t_reader, nids_t_admin;

-- an administrator trains and deploys
SET ROLE nids_t_admin;
SELECT ok(nids_train('priv_flows', model => 'priv', options => '{"xgboost": {"num_boost_round": 3}}') ? 'version',
	'a member of nids_admin trains');
SELECT lives_ok($$SELECT nids_deploy('priv', 1)$$, 'and deploys');
SELECT ok(nids_log_drift('SELECT * FROM priv_flows', 'priv') > 0, 'and logs drift');
SELECT throws_ok($$SELECT nids_train('priv_secret', model => 'leak')$$, '42501', NULL,
	'training reads the source with the caller''s privileges');
SELECT throws_ok($$SELECT * FROM ks_drift('SELECT * FROM priv_secret', 'priv')$$, '42501', NULL,
	'ks_drift runs the window with the caller''s privileges');
SELECT throws_ok($$SELECT nids_attach_benign('priv', 'priv_secret')$$, '42501', NULL,
	'nids_attach_benign reads with the caller''s privileges');
RESET ROLE;

-- a reader with SELECT on the flows scores, and can do nothing else
SET ROLE nids_t_reader;
SELECT is((SELECT count(nids_classify(nids_features(f, 'priv'), 'priv'))::int FROM priv_flows f), 400,
	'a role with only SELECT on the flows scores with nids_classify');
SELECT is((SELECT count(nids_ensemble(nids_features(f, 'priv'), 'priv'))::int FROM priv_flows f), 400,
	'and with nids_ensemble');
SELECT ok((SELECT count(*) FROM ks_drift('SELECT * FROM priv_flows', 'priv')) = 2,
	'and runs ks_drift on what it can read');
SELECT ok((SELECT count(*) FROM nids.models WHERE name = 'priv') = 1, 'and sees the catalogue view');
SELECT throws_ok($$SELECT nids_train('priv_flows', model => 'mine')$$, '42501', NULL,
	'a reader cannot train');
SELECT throws_ok($$SELECT nids_import_xgboost('mine', '\x00'::bytea, ARRAY['a'], ARRAY['x', 'y'])$$, '42501', NULL,
	'nor import');
SELECT throws_ok($$SELECT nids_deploy('priv', 1)$$, '42501', NULL, 'nor deploy');
SELECT throws_ok($$SELECT nids_drop_model('priv')$$, '42501', NULL, 'nor drop');
SELECT throws_ok($$SELECT nids_export_xgboost('priv')$$, '42501', NULL, 'nor export');
SELECT throws_ok($$SELECT nids_log_drift('SELECT * FROM priv_flows', 'priv')$$, '42501', NULL, 'nor log drift');
SELECT throws_ok($$SELECT nids_attach_benign('priv', 'priv_flows')$$, '42501', NULL, 'nor attach');
SELECT throws_ok($$UPDATE nids.model_versions SET deployed = true$$, '42501', NULL,
	'nor write the catalogue');
SELECT throws_ok($$SELECT booster FROM nids.model_versions$$, '42501', NULL,
	'nor read the boosters directly');
SELECT throws_ok($$INSERT INTO nids.drift_reports VALUES (1, 'x', 1, now(), 'f', 0, 1, 1, 1, 'none')$$, '42501', NULL,
	'nor forge drift reports');
-- XGBoost's predictor trusts the model bytes, the limit guards memory: superuser settings
SELECT throws_ok($$SET nids.predictor = xgboost$$, '42501', NULL,
	'nor switch to XGBoost''s predictor');
SELECT throws_ok($$SET nids.compact_evaluator = off$$, '42501', NULL,
	'nor change the evaluator');
SELECT throws_ok($$SET nids.max_model_bytes = '1GB'$$, '42501', NULL,
	'nor raise the model size limit');
SELECT lives_ok($$SET nids.threads = 2$$, 'but may set nids.threads');
RESET ROLE;
RESET nids.threads;

-- nothing the extension creates is writable by PUBLIC
SELECT is((SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
		aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
	WHERE n.nspname = 'nids' AND a.grantee = 0 AND a.privilege_type <> 'SELECT'), 0,
	'no table, view or sequence in schema nids grants PUBLIC more than SELECT');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
		JOIN pg_extension e ON e.oid = d.refobjid,
		aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
	WHERE e.extname = 'nids' AND a.grantee = 0
	AND p.proname IN ('nids_train', 'nids_import_xgboost', 'nids_deploy', 'nids_drop_model',
		'nids_attach_benign', 'nids_log_drift', 'nids_schedule_drift', 'nids_export_xgboost',
		'nids_unschedule_drift')), 0,
	'PUBLIC cannot execute the functions that change models or reports');

-- the contract on training distributions (doc/errors.md, "Known limits"): a
-- version's reference (up to 4,096 training values per feature) is part of
-- the model, readable by whoever may run nids_drift_counts; an
-- administrator who keeps it private revokes that from PUBLIC
SET ROLE nids_t_reader;
SELECT ok((SELECT count(*) FROM nids_drift_counts('SELECT * FROM priv_flows', 'priv')) = 2,
	'by default any role runs nids_drift_counts on what it can read');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION nids_drift_counts(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ks_drift(text, text, text) FROM PUBLIC;
SET ROLE nids_t_reader;
SELECT throws_ok($$SELECT * FROM nids_drift_counts('SELECT * FROM priv_flows', 'priv')$$, '42501', NULL,
	'revoked from PUBLIC, nids_drift_counts is refused');
SELECT throws_ok($$SELECT * FROM ks_drift('SELECT * FROM priv_flows', 'priv')$$, '42501', NULL,
	'and so is ks_drift');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
