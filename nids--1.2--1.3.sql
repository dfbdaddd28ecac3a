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

-- nids_adapt: options checked by type and name, the caller's temporary
-- tables never touched, flows without feature values refused
CREATE OR REPLACE FUNCTION nids._adapt(model text, benign_query text, options jsonb, caller_path text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $adapt$
DECLARE
	mname text := pg_catalog.split_part(model, '@', 1);
	cur record;
	spec text;
	ks_cut float8 := 0.3;
	seed text := '42';
	source_benign text := COALESCE(options ->> 'source_benign', 'drop');
	deploy boolean := false;
	n_empty bigint;
	tmp text;
	n bigint;
	source text;
	src regclass;
	label_col text;
	benign text;
	dropped jsonb := '[]';
	keep text[];
	cols text;
	vals text;
	topts jsonb;
	trained jsonb;
	final int;
	mid int;
	final_spec text;
	method text;
	before_flagged float8;
	after_flagged float8;
	recall_before float8;
	recall_after float8;
	n_attack bigint;
	report jsonb;
BEGIN
	IF pg_catalog.jsonb_typeof(options) OPERATOR(pg_catalog.<>) 'object' THEN
		RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(options) k
				WHERE k NOT IN ('drop_ks', 'seed', 'training', 'deploy', 'source_benign')) THEN
		RAISE EXCEPTION 'unknown option in %', options
			USING ERRCODE = '22023', HINT = 'Accepted: drop_ks, seed, training, deploy, source_benign.';
	END IF;
	-- each option of its own JSON type, refused by name otherwise
	IF options ? 'drop_ks' THEN
		IF pg_catalog.jsonb_typeof(options -> 'drop_ks') OPERATOR(pg_catalog.<>) 'number' THEN
			RAISE EXCEPTION 'options.drop_ks must be a number, not %', options -> 'drop_ks' USING ERRCODE = '22023';
		END IF;
		ks_cut := (options ->> 'drop_ks')::float8;
	END IF;
	IF options ? 'seed' THEN
		IF pg_catalog.jsonb_typeof(options -> 'seed') OPERATOR(pg_catalog.<>) 'number'
			OR (options ->> 'seed')::numeric OPERATOR(pg_catalog.<>) pg_catalog.trunc((options ->> 'seed')::numeric)
			OR (options ->> 'seed')::numeric OPERATOR(pg_catalog.<) 0
			OR (options ->> 'seed')::numeric OPERATOR(pg_catalog.>) 2147483647 THEN
			RAISE EXCEPTION 'options.seed must be an integer between 0 and 2147483647, not %', options -> 'seed'
				USING ERRCODE = '22023';
		END IF;
		seed := ((options ->> 'seed')::numeric)::bigint::text;
	END IF;
	IF options ? 'deploy' THEN
		IF pg_catalog.jsonb_typeof(options -> 'deploy') OPERATOR(pg_catalog.<>) 'boolean' THEN
			RAISE EXCEPTION 'options.deploy must be true or false, not %', options -> 'deploy' USING ERRCODE = '22023';
		END IF;
		deploy := (options ->> 'deploy')::boolean;
	END IF;
	IF options ? 'training' THEN
		IF pg_catalog.jsonb_typeof(options -> 'training') OPERATOR(pg_catalog.<>) 'string' THEN
			RAISE EXCEPTION 'options.training must be a table name as a string, not %', options -> 'training'
				USING ERRCODE = '22023';
		END IF;
		IF pg_catalog.to_regclass(options ->> 'training') IS NULL THEN
			RAISE EXCEPTION 'options.training: relation "%" does not exist', options ->> 'training'
				USING ERRCODE = '42P01', HINT = 'Name the table the model was trained on, schema-qualified if need be.';
		END IF;
	END IF;
	IF source_benign OPERATOR(pg_catalog.<>) ALL ('{drop,keep}'::text[])
		OR pg_catalog.jsonb_typeof(options -> 'source_benign') OPERATOR(pg_catalog.<>) 'string' THEN
		RAISE EXCEPTION 'options.source_benign must be "drop" or "keep", not %', options -> 'source_benign'
			USING ERRCODE = '22023';
	END IF;
	IF NOT ks_cut > 0 OR ks_cut > 1 THEN
		RAISE EXCEPTION 'options.drop_ks must be between 0 and 1, not %', ks_cut USING ERRCODE = '22023';
	END IF;

	-- the local flows, read as ks_drift reads a window: one read-only SELECT,
	-- with the caller's search_path and privileges
	-- nids' working tables: never one of the caller's (they are dropped
	-- at the end, so a second call in one transaction finds none)
	FOREACH tmp IN ARRAY '{nids_adapt_local,nids_adapt_train,nids_adapt_calibrate}'::text[] LOOP
		IF pg_catalog.to_regclass('pg_temp.' || tmp) IS NOT NULL THEN
			RAISE EXCEPTION 'a temporary table "%" exists already', tmp
				USING ERRCODE = '42P07', DETAIL = 'nids_adapt works in temporary tables of that name.',
				HINT = 'Rename or drop your temporary table, or call nids_adapt from another session.';
		END IF;
	END LOOP;
	CREATE TEMP TABLE nids_adapt_local ON COMMIT DROP AS
		SELECT v, pg_catalog.row_number() OVER () AS i
		FROM nids._window_vectors(benign_query, model, caller_path) v;

	SELECT m.* INTO cur FROM nids.model_versions m
	WHERE m.name OPERATOR(pg_catalog.=) mname AND CASE WHEN pg_catalog.strpos(model, '@') > 0
		THEN m.version OPERATOR(pg_catalog.=) pg_catalog.split_part(model, '@', 2)::int ELSE m.deployed END;
	spec := cur.name || '@' || cur.version;
	-- flows without any feature value say nothing of the network
	DELETE FROM pg_temp.nids_adapt_local l WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(l.v) x WHERE x IS NOT NULL);
	GET DIAGNOSTICS n_empty = ROW_COUNT;
	SELECT pg_catalog.count(*) INTO n FROM pg_temp.nids_adapt_local;
	IF n_empty OPERATOR(pg_catalog.>) 0 AND n < 40 THEN
		RAISE EXCEPTION 'the benign query has % rows with a value of model "%"''s features; adapting needs at least 40',
			n, cur.name USING ERRCODE = '22023',
			DETAIL = pg_catalog.format('%s of its %s rows have no value in any of the model''s features.', n_empty, n OPERATOR(pg_catalog.+) n_empty),
			HINT = 'Check that the query''s columns carry the model''s feature names.';
	END IF;
	IF n < 40 THEN
		RAISE EXCEPTION 'the benign query has % rows; adapting needs at least 40', n
			USING ERRCODE = '22023',
			DETAIL = 'Half of them train, a quarter calibrate the novelty gate, a quarter measure the result; none is used twice.';
	END IF;
	-- a seeded split: 1/2 train, 1/4 calibrate, 1/4 measure
	ALTER TABLE pg_temp.nids_adapt_local ADD COLUMN part text;
	UPDATE pg_temp.nids_adapt_local l SET part = CASE WHEN r.k OPERATOR(pg_catalog.<=) n / 2 THEN 'train'
		WHEN r.k OPERATOR(pg_catalog.<=) (3 * n) / 4 THEN 'calibrate' ELSE 'measure' END
	FROM (SELECT i, pg_catalog.row_number() OVER (ORDER BY pg_catalog.md5(seed || ':' || i::text)) AS k
		  FROM pg_temp.nids_adapt_local) r WHERE r.i OPERATOR(pg_catalog.=) l.i;

	source := COALESCE(options ->> 'training', cur.metrics -> 'adaptation' ->> 'training_source',
					   cur.metrics ->> 'relation');
	src := pg_catalog.to_regclass(source);
	label_col := COALESCE(cur.metrics -> 'adaptation' ->> 'label_column', cur.metrics ->> 'label_column');
	benign := COALESCE(cur.benign_label, 'BENIGN');
	IF src IS NOT NULL AND label_col IS NOT NULL AND (cur.benign_reference IS NOT NULL OR cur.reference IS NOT NULL) THEN
		method := 'retrained';
		-- the features whose local distribution is far from the benign training flows'
		SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('feature', d.feature,
				'ks_statistic', pg_catalog.round(d.ks_statistic::numeric, 3)) ORDER BY d.ks_statistic DESC), '[]')
		INTO dropped
		FROM nids._ks_every_row('SELECT v FROM pg_temp.nids_adapt_local', spec) d
		WHERE d.ks_statistic OPERATOR(pg_catalog.>) ks_cut;
		keep := ARRAY(SELECT f FROM pg_catalog.unnest(cur.feature_names) f
					  WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(dropped) x
										WHERE x ->> 'feature' OPERATOR(pg_catalog.=) f));
		IF pg_catalog.cardinality(keep) OPERATOR(pg_catalog.=) 0 THEN
			RAISE EXCEPTION 'every feature of model "%" is far from the local flows (KS above %)', cur.name, ks_cut
				USING ERRCODE = '22023', HINT = 'Raise options.drop_ks, or train on flows of this network.';
		END IF;
		-- the training source without a seeded fifth, kept to measure attack
		-- recall, and the local training half as benign flows
	EXECUTE pg_catalog.format('CREATE TEMP TABLE nids_adapt_train ON COMMIT DROP AS SELECT * FROM %s s
			WHERE pg_catalog.abs(pg_catalog.hashtext(s::text)) OPERATOR(pg_catalog.%%) 5 OPERATOR(pg_catalog.<>) 0', src);
		IF source_benign OPERATOR(pg_catalog.=) 'drop' THEN
			EXECUTE pg_catalog.format('DELETE FROM pg_temp.nids_adapt_train WHERE %I::text OPERATOR(pg_catalog.=) %L', label_col, benign);
		END IF;
		SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum),
			pg_catalog.string_agg(pg_catalog.format('(v[%s])::%s',
				pg_catalog.array_position(cur.feature_names, a.attname::text),
				pg_catalog.format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
		INTO cols, vals
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid OPERATOR(pg_catalog.=) src AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
			AND a.attname::text OPERATOR(pg_catalog.=) ANY (cur.feature_names);
		EXECUTE pg_catalog.format('INSERT INTO pg_temp.nids_adapt_train (%I, %s) SELECT %L, %s
			FROM pg_temp.nids_adapt_local WHERE part OPERATOR(pg_catalog.=) ''train''', label_col, cols, benign, vals);
		-- the kept features only: every other numeric column is excluded
		topts := pg_catalog.jsonb_build_object('exclude', (SELECT COALESCE(pg_catalog.jsonb_agg(a.attname::text), '[]')
				FROM pg_catalog.pg_attribute a
				WHERE a.attrelid OPERATOR(pg_catalog.=) src AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
					AND a.atttypid OPERATOR(pg_catalog.=) ANY ('{int2,int4,int8,float4,float8,numeric}'::regtype[])
					AND a.attname::text OPERATOR(pg_catalog.<>) ALL (keep)
					AND a.attname::text OPERATOR(pg_catalog.<>) label_col),
			'deploy', false,
			'benign_label', benign,
			'xgboost', COALESCE(cur.metrics -> 'adaptation' -> 'xgboost', (SELECT COALESCE(pg_catalog.jsonb_object_agg(p.key, CASE
					WHEN p.value OPERATOR(pg_catalog.~) '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$'
					THEN pg_catalog.to_jsonb(p.value::numeric) ELSE pg_catalog.to_jsonb(p.value) END), '{}')
				FROM pg_catalog.jsonb_each_text((cur.metrics -> 'params') - 'objective' - 'num_class' - 'rounds') p)
				|| pg_catalog.jsonb_build_object('num_boost_round', (cur.metrics -> 'params' ->> 'rounds')::int)));
		IF COALESCE(cur.metrics -> 'adaptation' -> 'seed', cur.metrics -> 'seed') IS NOT NULL THEN
			topts := topts || pg_catalog.jsonb_build_object('seed',
				COALESCE(cur.metrics -> 'adaptation' -> 'seed', cur.metrics -> 'seed'));
		END IF;
		trained := @extschema@.nids_train('pg_temp.nids_adapt_train'::regclass, label_col::name, cur.name, topts);
		mid := (trained ->> 'version')::int;
	ELSE
		method := 'recalibrated';
		mid := cur.version;
	END IF;

	-- the novelty gate and the benign reference, on the local calibration quarter
EXECUTE pg_catalog.format('CREATE TEMP TABLE nids_adapt_calibrate ON COMMIT DROP AS SELECT %s
		FROM pg_temp.nids_adapt_local WHERE part OPERATOR(pg_catalog.=) ''calibrate''',
		(SELECT pg_catalog.string_agg(pg_catalog.format('v[%s] AS %I', o, f), ', ')
		 FROM pg_catalog.unnest(cur.feature_names) WITH ORDINALITY AS u(f, o)));
	final := @extschema@.nids_attach_benign(cur.name || '@' || mid, 'pg_temp.nids_adapt_calibrate'::regclass,
		pg_catalog.jsonb_build_object('deploy', false, 'benign_label', benign, 'test_size', 0.5));
	IF method = 'retrained' THEN
		PERFORM @extschema@.nids_drop_model(cur.name, mid);
	END IF;
	final_spec := cur.name || '@' || final;

	-- on the local measuring quarter: the share flagged before and after
	SELECT pg_catalog.avg((CASE WHEN cur.novelty IS NULL AND cur.iforest IS NULL
			THEN @extschema@.nids_classify(v, spec) OPERATOR(pg_catalog.<>) benign
			ELSE (@extschema@.nids_ensemble(v, spec)).verdict OPERATOR(pg_catalog.<>) 'benign' END)::int),
		pg_catalog.avg(((@extschema@.nids_ensemble(
			ARRAY(SELECT v[pg_catalog.array_position(cur.feature_names, f)]
				  FROM pg_catalog.unnest((SELECT feature_names FROM nids.model_versions
										  WHERE name OPERATOR(pg_catalog.=) cur.name AND version OPERATOR(pg_catalog.=) final)) f),
			final_spec)).verdict OPERATOR(pg_catalog.<>) 'benign')::int)
	INTO before_flagged, after_flagged
	FROM pg_temp.nids_adapt_local WHERE part OPERATOR(pg_catalog.=) 'measure';
	-- on the model's own data: attack recall on the fifth the adapted version never saw
	IF method = 'retrained' THEN
		EXECUTE pg_catalog.format('SELECT pg_catalog.count(*),
			pg_catalog.avg(((@extschema@.nids_ensemble(@extschema@.nids_features(s, %L), %L)).verdict OPERATOR(pg_catalog.<>) ''benign'')::int),
			pg_catalog.avg(((@extschema@.nids_ensemble(@extschema@.nids_features(s, %L), %L)).verdict OPERATOR(pg_catalog.<>) ''benign'')::int)
			FROM %s s WHERE pg_catalog.abs(pg_catalog.hashtext(s::text)) OPERATOR(pg_catalog.%%) 5 OPERATOR(pg_catalog.=) 0
			AND %I::text OPERATOR(pg_catalog.<>) %L', spec, spec, final_spec, final_spec, src, label_col, benign)
		INTO n_attack, recall_before, recall_after;
	END IF;

	report := pg_catalog.jsonb_build_object(
		'version', final, 'adapted_from', spec, 'method', method,
		'why', CASE WHEN method = 'retrained'
			THEN CASE WHEN source_benign OPERATOR(pg_catalog.=) 'drop'
				THEN 'retrained from the training source''s attack flows with half of the local flows as its benign flows, without the features whose local distribution is far from the benign training flows'
				ELSE 'retrained from the training source with half of the local flows added to its benign flows, without the features whose local distribution is far from the benign training flows' END
			ELSE 'the training source is not known or gone (an imported version, or options.training): only the novelty gate and the benign reference were fitted to the local flows' END,
		'training_source', CASE WHEN src IS NOT NULL THEN src::text END,
		'local_flows', pg_catalog.jsonb_build_object('train', CASE WHEN method = 'retrained' THEN n / 2 ELSE 0 END,
			'calibrate', (3 * n) / 4 - n / 2, 'measure', n - (3 * n) / 4),
		'features_dropped', CASE WHEN method = 'retrained' THEN dropped ELSE '[]'::jsonb END,
		'drop_ks', ks_cut,
		'source_benign', CASE WHEN method = 'retrained' THEN source_benign END,
		'local_flagged_before', before_flagged, 'local_flagged_after', after_flagged,
		'attack_recall_before', recall_before, 'attack_recall_after', recall_after,
		'attack_flows_measured', n_attack,
		'local_flows_without_features', n_empty,
		'deployed', deploy);
	UPDATE nids.model_versions SET metrics = metrics || pg_catalog.jsonb_build_object('adaptation',
		report || pg_catalog.jsonb_build_object('label_column', label_col, 'xgboost', topts -> 'xgboost',
			'seed', topts -> 'seed'))
	WHERE name OPERATOR(pg_catalog.=) cur.name AND version OPERATOR(pg_catalog.=) final;
	DROP TABLE pg_temp.nids_adapt_local;
	IF method = 'retrained' THEN
		DROP TABLE pg_temp.nids_adapt_train;
	END IF;
	DROP TABLE pg_temp.nids_adapt_calibrate;
	IF deploy THEN
		PERFORM @extschema@.nids_deploy(cur.name, final);
	END IF;
	RETURN report;
END
$adapt$;
COMMENT ON FUNCTION nids._adapt(text, text, jsonb, text) IS
	'Internal: nids_adapt, with nids'' own search_path; the benign query runs with the caller''s (caller_path)';
REVOKE ALL ON FUNCTION nids._adapt(text, text, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nids._adapt(text, text, jsonb, text) TO nids_admin;
