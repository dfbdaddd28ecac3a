-- Hostile input, round three: the 1.1 surface (bundles, ids, merges, the
-- catalogue's own SQL).  Each block is one finding of the third battery.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set SHOW_CONTEXT never

-- a binary:logistic document with one tree: a chain of `depth` splits on
-- feature 0 (each left child a leaf, the last split two leaves)
CREATE FUNCTION h3_chain(depth int) RETURNS bytea LANGUAGE sql AS $$
	WITH n AS (SELECT i FROM generate_series(0, 2 * depth) i),
	t AS (SELECT jsonb_build_object(
		'base_weights', (SELECT jsonb_agg(0.0) FROM n),
		'categories', '[]'::jsonb, 'categories_nodes', '[]'::jsonb,
		'categories_segments', '[]'::jsonb, 'categories_sizes', '[]'::jsonb,
		'default_left', (SELECT jsonb_agg(0 ORDER BY i) FROM n),
		'id', 0,
		'left_children', (SELECT jsonb_agg(CASE WHEN i % 2 = 0 AND i < 2 * depth THEN i + 1 ELSE -1 END ORDER BY i) FROM n),
		'right_children', (SELECT jsonb_agg(CASE WHEN i % 2 = 0 AND i < 2 * depth THEN i + 2 ELSE -1 END ORDER BY i) FROM n),
		'parents', (SELECT jsonb_agg(CASE WHEN i = 0 THEN 2147483647 ELSE ((i - 1) / 2) * 2 END ORDER BY i) FROM n),
		'loss_changes', (SELECT jsonb_agg(0.0) FROM n),
		'split_conditions', (SELECT jsonb_agg(CASE WHEN i % 2 = 0 AND i < 2 * depth THEN i + 0.5 WHEN i = 1 THEN -0.5 ELSE 0.01 * i + 0.001 END ORDER BY i) FROM n),
		'split_indices', (SELECT jsonb_agg(0) FROM n),
		'split_type', (SELECT jsonb_agg(0) FROM n),
		'sum_hessian', (SELECT jsonb_agg(CASE WHEN i % 2 = 1 OR i = 2 * depth THEN 1.0 ELSE (2 * depth - i) / 2 + 1.0 END ORDER BY i) FROM n),
		'tree_param', jsonb_build_object('num_deleted', '0', 'num_feature', '1',
			'num_nodes', (2 * depth + 1)::text, 'size_leaf_vector', '0')) AS tree)
	SELECT convert_to(jsonb_build_object('learner', jsonb_build_object(
		'attributes', '{}'::jsonb, 'feature_names', '[]'::jsonb, 'feature_types', '[]'::jsonb,
		'gradient_booster', jsonb_build_object('model', jsonb_build_object(
			'gbtree_model_param', jsonb_build_object('num_parallel_tree', '1', 'num_trees', '1', 'size_leaf_vector', '0'),
			'tree_info', '[0]'::jsonb, 'trees', jsonb_build_array(tree)), 'name', 'gbtree'),
		'learner_model_param', jsonb_build_object('base_score', '5E-1', 'boost_from_average', '1',
			'num_class', '0', 'num_feature', '1', 'num_target', '1'),
		'objective', jsonb_build_object('name', 'binary:logistic',
			'reg_loss_param', jsonb_build_object('scale_pos_weight', '1'))),
		'version', '[1, 7, 4]'::jsonb)::text, 'UTF8') FROM t
$$;

-- 1. trees deeper than 256 levels are refused at import (22P03); a deep
-- one that is accepted explains without exhausting anything
SELECT nids_import_xgboost('h3_deep', h3_chain(257), ARRAY['destination_port'], ARRAY['BENIGN', 'ATTACK']);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('h3_deep', h3_chain(20000), ARRAY['destination_port'], ARRAY['BENIGN', 'ATTACK']);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_xgboost('h3_deep', h3_chain(256), ARRAY['destination_port'], ARRAY['BENIGN', 'ATTACK']) AS version;
SELECT nids_classify(ARRAY[300.5], 'h3_deep') AS label;
SELECT round(sum(c)::numeric, 4) = round(ln(p / (1 - p))::numeric, 4) AS contributions_add_up
FROM (SELECT unnest(nids_contributions(ARRAY[300.5], 'h3_deep', 'ATTACK')) AS c) s,
	(SELECT (nids_classify_proba(ARRAY[300.5], 'h3_deep'))[2] AS p) q GROUP BY p;
-- and the same tree in a bundle is checked again on import
SELECT nids_import_model(nids_export_model('h3_deep'), deploy => false) AS version;

-- 2. a NULL written by hand into a version's name lists is reported as a
-- corrupt version (XX001), by every reader, instead of crashing
UPDATE nids.model_versions SET class_labels = ARRAY['BENIGN', NULL] WHERE name = 'h3_deep' AND version = 2;
SELECT nids_model_id('h3_deep@2');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_export_model('h3_deep@2');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_classify(ARRAY[1.0], 'h3_deep@2');
\echo :LAST_ERROR_SQLSTATE
UPDATE nids.model_versions SET class_labels = ARRAY['BENIGN', 'ATTACK'], feature_names = '{}' WHERE name = 'h3_deep' AND version = 2;
SELECT nids_export_model('h3_deep@2');
\echo :LAST_ERROR_SQLSTATE
UPDATE nids.model_versions SET feature_names = ARRAY[['destination_port']] WHERE name = 'h3_deep' AND version = 2;
SELECT nids_model_id('h3_deep@2');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_drop_model('h3_deep', 2);

-- 3. nids_train's stored report (and its short result) are built in the
-- caller's memory, not in SPI's (freed by SPI_finish).  300 classes make a
-- report of several hundred kilobytes, which the allocator hands back to the
-- system when freed, so a report read after SPI_finish would be garbage or a
-- crash.
CREATE TABLE h3_many AS
	SELECT 'c' || (i % 300) AS label, (i % 300) + ((i * 7919) % 100) / 1000.0 AS destination_port,
		(i % 7)::float8 AS flow_duration
	FROM generate_series(0, 2399) i;
UPDATE h3_many SET label = 'BENIGN' WHERE label = 'c0';
CREATE TEMP TABLE h3_result AS
	SELECT nids_train('h3_many', model => 'h3_many',
		options => '{"xgboost": {"num_boost_round": 1, "max_depth": 2}, "test_size": 0.5}') AS r;
SELECT length(m.metrics::text) > 200000 AS large_report,
	m.metrics->'macro_f1' = r->'macro_f1' AND m.metrics->'rows' = r->'rows' AS result_matches_the_stored_report,
	(SELECT count(*) FROM jsonb_object_keys(m.metrics->'per_class')) AS stored_classes,
	(SELECT count(*) FROM jsonb_object_keys(r->'per_class')) AS result_classes
FROM h3_result, nids.model_versions m WHERE m.name = 'h3_many';

-- 4. nids' own SQL never runs someone else's code: operators and functions
-- planted in a schema ahead of pg_catalog in the caller's search_path
-- (here by a superuser, standing in for a role that may create there)
CREATE SCHEMA h3_evil;
CREATE TABLE h3_evil.ran (what text);
CREATE FUNCTION h3_evil.teq(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO h3_evil.ran VALUES ('text ='); RETURN true; END$$;
CREATE FUNCTION h3_evil.ieq(integer, integer) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO h3_evil.ran VALUES ('integer ='); RETURN true; END$$;
CREATE FUNCTION h3_evil.beq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO h3_evil.ran VALUES ('bigint ='); RETURN true; END$$;
CREATE FUNCTION h3_evil.ine(integer, integer) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN INSERT INTO h3_evil.ran VALUES ('integer <>'); RETURN true; END$$;
CREATE OPERATOR h3_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = h3_evil.teq);
CREATE OPERATOR h3_evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = h3_evil.ieq);
CREATE OPERATOR h3_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = h3_evil.beq);
CREATE OPERATOR h3_evil.<> (LEFTARG = integer, RIGHTARG = integer, FUNCTION = h3_evil.ine);
SELECT nids_import_xgboost('h3_small', h3_chain(3), ARRAY['destination_port'], ARRAY['BENIGN', 'ATTACK']) AS version;
CREATE TABLE h3_doc AS SELECT h3_chain(4) AS doc;
SET search_path = h3_evil, pg_catalog, public;
SELECT nids_import_xgboost('h3_small', doc, ARRAY['destination_port'], ARRAY['BENIGN', 'ATTACK'], deploy => false) AS version
FROM public.h3_doc;
SELECT nids_deploy('h3_small', 2);
SELECT nids_deploy('h3_small', 1);
SELECT nids_drop_model('h3_small', 2);
SELECT nids_drop_model('h3_small', 7);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_classify_at(ARRAY[1.5], 12345);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_log_drift('SELECT * FROM public.h3_many LIMIT 100', 'h3_many') > 0 AS logged;
RESET search_path;
SELECT count(*) AS planted_code_runs FROM h3_evil.ran;
SELECT name, version, deployed FROM nids.model_versions WHERE name LIKE 'h3%' ORDER BY 1, 2;

-- 5. scoring by id needs no privilege on the catalogue, as by name
SET client_min_messages = warning;
DROP ROLE IF EXISTS h3_reader;
RESET client_min_messages;
CREATE ROLE h3_reader;
SET ROLE h3_reader;
SELECT nids_classify_at(ARRAY[300.5], nids_model_id('h3_deep')) AS by_id,
	nids_classify(ARRAY[300.5], 'h3_deep') AS by_name;
RESET ROLE;
DROP ROLE h3_reader;

-- 6. an id always means its content: a row given another version's id, or
-- its classes renamed, is refused when loaded (XX001)
UPDATE nids.model_versions SET model_id = nids_model_id('h3_deep@1') WHERE name = 'h3_small';
SELECT nids_classify(ARRAY[1.5], 'h3_small');
\echo :LAST_ERROR_SQLSTATE
UPDATE nids.model_versions SET model_id = nids_model_id('h3_small@1') WHERE name = 'h3_small';
SELECT nids_classify(ARRAY[1.5], 'h3_small') AS restored;
UPDATE nids.model_versions SET class_labels = ARRAY['ATTACK', 'BENIGN'] WHERE name = 'h3_small';
SELECT nids_classify(ARRAY[1.5], 'h3_small');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_drop_model('h3_small');

-- 7. ks_drift_merge runs its counts query read-only, as ks_drift runs its
-- window (25006), and counts that overflow are refused (22003)
CREATE TABLE h3_counts AS SELECT * FROM nids_drift_counts('SELECT * FROM h3_many', 'h3_many');
CREATE TABLE h3_log (n int);
CREATE SEQUENCE h3_seq;
CREATE FUNCTION h3_write() RETURNS int LANGUAGE sql AS 'INSERT INTO h3_log VALUES (1) RETURNING 1';
SELECT count(*) FROM ks_drift_merge('SELECT feature, n_window, counts FROM h3_counts WHERE h3_write() = 1', 'h3_many');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM ks_drift_merge('SELECT feature, n_window + 0 * nextval(''h3_seq''), counts FROM h3_counts', 'h3_many');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS writes FROM h3_log;
SELECT count(*) FROM ks_drift_merge($$
	SELECT feature, 4611686018427387904::bigint,
		(SELECT array_agg(CASE WHEN i = 1 THEN 4611686018427387904 ELSE 0 END::bigint ORDER BY i)
		 FROM generate_series(1, cardinality(counts)) i)
	FROM h3_counts, generate_series(1, 2)$$, 'h3_many');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = (SELECT count(*) FROM h3_counts) AS merged_as_before
FROM ks_drift_merge('SELECT * FROM h3_counts', 'h3_many');

-- 8. a window query cannot change the session's settings
SHOW work_mem;
SELECT count(*) > 0 AS ran FROM ks_drift('SELECT *, set_config(''work_mem'', ''1234kB'', false) FROM h3_many', 'h3_many');
SELECT count(*) > 0 AS ran FROM nids_health('SELECT *, set_config(''work_mem'', ''1234kB'', false) FROM h3_many', 'h3_many');
SHOW work_mem;

-- 9. bundles: what a version is made of, checked as on every other way in
-- a bundle with one section replaced (sections: tag int4, 0, length int8, bytes)
CREATE FUNCTION h3_le(v bigint, n int) RETURNS bytea LANGUAGE sql AS $$
	SELECT string_agg(set_byte('\x00'::bytea, 0, ((v >> (8 * i)) & 255)::int), '' ORDER BY i)
	FROM generate_series(0, n - 1) i $$;
CREATE FUNCTION h3_section(b bytea, tag int) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE at int := 17; t int; n bigint;
BEGIN
	FOR i IN 1 .. (SELECT get_byte(b, 12) + 256 * get_byte(b, 13)) LOOP
		t := get_byte(b, at - 1) + 256 * get_byte(b, at);
		n := 0;
		FOR k IN REVERSE 7 .. 0 LOOP n := n * 256 + get_byte(b, at + 7 + k); END LOOP;
		IF t = tag THEN RETURN substr(b, at + 16, n::int); END IF;
		at := at + 16 + n::int;
	END LOOP;
	RETURN NULL;
END $$;
CREATE FUNCTION h3_replace(b bytea, tag int, data bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE at int := 17; t int; n bigint; out bytea := substr(b, 1, 16);
BEGIN
	FOR i IN 1 .. (SELECT get_byte(b, 12) + 256 * get_byte(b, 13)) LOOP
		t := get_byte(b, at - 1) + 256 * get_byte(b, at);
		n := 0;
		FOR k IN REVERSE 7 .. 0 LOOP n := n * 256 + get_byte(b, at + 7 + k); END LOOP;
		IF t = tag THEN
			out := out || h3_le(tag, 4) || h3_le(0, 4) || h3_le(length(data), 8) || data;
		ELSE
			out := out || substr(b, at, 16 + n::int);
		END IF;
		at := at + 16 + n::int;
	END LOOP;
	RETURN out;
END $$;
CREATE TABLE h3_bundle AS SELECT nids_export_model('h3_deep') AS b;
SELECT nids_import_model(h3_replace(b, 6, h3_section(b, 6)), deploy => false) AS same_bundle_imports FROM h3_bundle;
-- a name with '@' could never be scored by its name
SELECT nids_import_model(h3_replace(b, 1, convert_to('z@1', 'UTF8'))) FROM h3_bundle;
\echo :LAST_ERROR_SQLSTATE
-- node covers decide explanations: they must be the XGBoost document's
SELECT convert_from(h3_section(b, 2), 'UTF8') ~ '"sum_hessian": ?\[[0-9]' AS document_has_covers FROM h3_bundle;
SELECT nids_import_model(h3_replace(b, 2, convert_to(regexp_replace(convert_from(h3_section(b, 2), 'UTF8'),
	'"sum_hessian": ?\[[0-9.Ee+-]+', '"sum_hessian": [7.5'), 'UTF8'))) FROM h3_bundle;
\echo :LAST_ERROR_SQLSTATE

-- versions that export import again: a feature name with a control
-- character, 300-byte class and benign labels, a DBL_MAX threshold
SELECT nids_import_xgboost('h3_odd', h3_chain(2), ARRAY[E'dest\fport'], ARRAY['BENIGN', repeat('x', 300)]) AS version;
SELECT nids_import_model(nids_export_model('h3_odd'), deploy => false) AS reimported;
SELECT nids_import_xgboost('h3_odd_copy', nids_export_xgboost('h3_odd'), ARRAY[E'dest\fport'], ARRAY['BENIGN', repeat('x', 300)]) AS reimported_document;
SELECT nids_model_id('h3_odd@1') = nids_model_id('h3_odd@2') AS same_content;
UPDATE nids.model_versions SET metrics = metrics || '{"novelty": {"threshold": 1.79769e+308}}', benign_label = repeat('b', 300)
	WHERE name = 'h3_odd' AND version = 1;
UPDATE nids.model_versions SET model_id = nids_model_id('h3_odd@1') WHERE name = 'h3_odd' AND version = 1;
SELECT length(metrics #>> '{novelty,threshold}') AS threshold_digits FROM nids.model_versions WHERE name = 'h3_odd' AND version = 1;
SELECT nids_import_model(nids_export_model('h3_odd@1'), deploy => false) AS reimported_with_long_label_and_threshold;
SELECT nids_drop_model('h3_odd');
SELECT nids_drop_model('h3_odd_copy');

-- 10. metrics of the wrong type are refused at import (22P03), so one bad
-- row never breaks a view for everyone; NaN is not JSON (22P03 too)
SELECT nids_import_model(h3_replace(b, 6, convert_to('{"macro_f1": "high"}', 'UTF8'))) FROM h3_bundle;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_model(h3_replace(b, 6, convert_to('{"macro_f1": NaN}', 'UTF8'))) FROM h3_bundle;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_model(h3_replace(b, 6, convert_to('{"rows": {"train": 1.5}}', 'UTF8'))) FROM h3_bundle;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_model(h3_replace(b, 6, convert_to('{"rows": {"train": 1e30}}', 'UTF8'))) FROM h3_bundle;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_model(h3_replace(b, 6, convert_to('{"importance": {"f": {"gain": "x"}}}', 'UTF8'))) FROM h3_bundle;
\echo :LAST_ERROR_SQLSTATE
SELECT nids_import_model(h3_replace(b, 6, convert_to('[1, 2]', 'UTF8'))) FROM h3_bundle;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) > 0 AS summary_readable FROM nids.model_summary;
SELECT count(*) > 0 AS importance_rows FROM nids.feature_importance;

-- 13. duplicate names are found in linear time, after the size check
SET statement_timeout = '2s';
SELECT nids_import_xgboost('h3_many_names', h3_chain(2),
	(SELECT array_agg('f' || i) || ARRAY['f7'] FROM generate_series(1, 30000) i), ARRAY['BENIGN', 'ATTACK']);
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SET nids.max_model_bytes = 1024;
SELECT nids_import_xgboost('h3_many_names', h3_chain(20),
	(SELECT array_agg('f' || i) || ARRAY['f7'] FROM generate_series(1, 30000) i), ARRAY['BENIGN', 'ATTACK']);
\echo :LAST_ERROR_SQLSTATE
RESET nids.max_model_bytes;

-- 11. the trigger writes only columns of its own types: a domain's
-- constraints would go unchecked (42804); a column named like an output in
-- another case is refused as misspelt, whatever the case (42703); a feature
-- in a STORED generated column is still NULL when BEFORE triggers run (0A000)
CREATE DOMAIN h3_benign_only AS text CHECK (VALUE = 'benign');
CREATE TABLE h3_t1 (destination_port float8, flow_duration float8, verdict h3_benign_only);
CREATE TRIGGER score BEFORE INSERT ON h3_t1 FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('h3_many');
INSERT INTO h3_t1 VALUES (150, 3);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE h3_t2 (destination_port float8, flow_duration float8, verdict text, "VERDICT" text);
CREATE TRIGGER score BEFORE INSERT ON h3_t2 FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('h3_many');
INSERT INTO h3_t2 VALUES (150, 3);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE h3_t3 (destination_port float8, flow_duration float8, "Verdict" text);
CREATE TRIGGER score BEFORE INSERT ON h3_t3 FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('h3_many');
INSERT INTO h3_t3 VALUES (150, 3);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE h3_t4 (destination_port float8, flow_ms float8,
	flow_duration float8 GENERATED ALWAYS AS (flow_ms * 1000) STORED, verdict text);
CREATE TRIGGER score BEFORE INSERT ON h3_t4 FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('h3_many');
INSERT INTO h3_t4 (destination_port, flow_ms) VALUES (150, 3);
\echo :LAST_ERROR_SQLSTATE
SELECT (SELECT count(*) FROM h3_t1) + (SELECT count(*) FROM h3_t2) + (SELECT count(*) FROM h3_t3)
	+ (SELECT count(*) FROM h3_t4) AS rows_stored;

-- 12. nids_health gives one answer whatever the window holds: a version
-- without a novelty gate is refused before any row is read (55000), with
-- only attacks in the window as with benign flows too
SELECT nids_import_xgboost('h3_nogate', h3_chain(2), ARRAY['destination_port'], ARRAY['BENIGN', 'ATTACK']) AS version;
SELECT nids_classify(ARRAY[300.5], 'h3_nogate') AS attack_row, nids_classify(ARRAY[0.1], 'h3_nogate') AS benign_row;
SELECT * FROM nids_health('SELECT 300.5::float8 AS destination_port', 'h3_nogate');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM nids_health('SELECT 0.1::float8 AS destination_port', 'h3_nogate');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_log_drift('SELECT 0.1::float8 AS destination_port', 'h3_nogate');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_drop_model('h3_nogate');
