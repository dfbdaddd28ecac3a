-- Properties of the catalogue and the scoring functions' declarations.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
SELECT plan(12);

SELECT has_schema('nids');
SELECT has_view('nids', 'models', 'the catalogue view exists');
SELECT columns_are('nids', 'models',
	ARRAY['name', 'version', 'deployed', 'created_at', 'feature_names', 'class_labels', 'metrics'],
	'nids.models has exactly the API''s columns');
SELECT volatility_is('public', 'nids_classify', ARRAY['double precision[]', 'text'], 'stable',
	'nids_classify reads a table: STABLE, not IMMUTABLE');
SELECT volatility_is('public', 'nids_classify_proba', ARRAY['double precision[]', 'text'], 'stable',
	'nids_classify_proba is STABLE');
SELECT is((SELECT proparallel FROM pg_proc WHERE proname = 'nids_classify'), 's',
	'nids_classify is PARALLEL SAFE');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
		   JOIN pg_extension e ON e.oid = d.refobjid
		   WHERE e.extname = 'nids' AND obj_description(p.oid, 'pg_proc') IS NULL), 0,
	'every function of the extension has a COMMENT');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
		   JOIN pg_extension e ON e.oid = d.refobjid
		   WHERE e.extname = 'nids' AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
		   AND NOT coalesce(array_to_string(p.proconfig, ',') LIKE '%search_path%', false)), 0,
	'every plpgsql function has a fixed search_path');
SELECT has_role('nids_admin');
SELECT throws_ok($$SELECT nids_classify(ARRAY[1]::float8[], 'missing')$$, '42704', NULL,
	'an unknown model is 42704');
SELECT throws_ok($$SELECT nids_deploy('missing', 1)$$, '42704', NULL,
	'deploying an unknown model is 42704');
SELECT is((SELECT count(*)::int FROM nids.models), 0, 'a fresh catalogue is empty');

SELECT * FROM finish();
ROLLBACK;
