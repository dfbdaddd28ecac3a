-- Hostile input, round four: the 1.2 surface (incidents, scans,
-- adaptation).  Each block is one finding of the fourth battery; the
-- two-session lock test, the scan trigger's memory and NOTIFY's payloads
-- are in test/shell/hostile4.sh, the alert client in test/shell/alerts_client.sh.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\set tbl flows_h4
\set n 1500
\set seed 0.41
\set shift 1.0
\i test/fixtures/flows.sql
\set tbl local_h4
\set n 600
\set seed 0.42
\set shift 2.5
\i test/fixtures/flows.sql
\o /dev/null
SELECT nids_train('flows_h4', model => 'h4', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 10}}');
\o
\set ECHO all
\set SHOW_CONTEXT never

-- 1. writing incidents is a privilege: a role with no nids privilege that
-- attaches the triggers to a table of its own is refused (42501, naming
-- it), and nothing is written; a member of nids_feeder feeds
CREATE ROLE h4_intruder;
CREATE ROLE h4_feeder IN ROLE nids_feeder;
CREATE TABLE h4_forged (source_ip inet, destination_ip inet, destination_port integer, protocol integer,
	"timestamp" timestamptz, syn_flag_count float8, total_backward_packets float8,
	verdict text, predicted_label text);
ALTER TABLE h4_forged OWNER TO h4_intruder;
SET ROLE h4_intruder;
CREATE TRIGGER forge AFTER INSERT ON h4_forged REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('h4');
INSERT INTO h4_forged VALUES ('10.0.0.1', '10.9.9.9', 22, 6, now(), 1, 0, 'attack', 'DDoS');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER forge ON h4_forged;
CREATE TRIGGER forge AFTER INSERT ON h4_forged REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger();
INSERT INTO h4_forged VALUES ('10.0.0.1', '10.9.9.9', 22, 6, now(), 1, 0, 'attack', 'DDoS');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- nids_alerts_from checks the role too, whoever was granted EXECUTE
GRANT EXECUTE ON FUNCTION nids_alerts_from(text, text) TO h4_intruder;
GRANT SELECT ON h4_forged TO h4_intruder;
SET ROLE h4_intruder;
SELECT nids_alerts_from('SELECT * FROM h4_forged', 'h4');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS incidents_forged FROM nids.alerts;
SELECT count(*) AS scan_states_forged FROM nids.scan_state;
-- the same table fed by a member of nids_feeder: incidents and scan state
ALTER TABLE h4_forged OWNER TO h4_feeder;
SET ROLE h4_feeder;
CREATE TRIGGER alerts AFTER INSERT ON h4_forged REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('h4');
INSERT INTO h4_forged VALUES ('10.0.0.1', '10.9.9.9', 22, 6, '2024-06-01 10:00+00', 1, 0, 'attack', 'DDoS');
RESET ROLE;
SELECT kind, class, src_ip, dst_port FROM nids.alerts ORDER BY kind;
SELECT count(*) AS scan_states FROM nids.scan_state;
SELECT pg_has_role('nids_admin', 'nids_feeder', 'MEMBER') AS admin_feeds;
DROP TABLE h4_forged;
DELETE FROM nids.alerts;
DELETE FROM nids.scan_state;

-- 2. an incident's dst_port is a port (0 to 65535) or NULL, never a bad
-- flow's number; the same for its protocol (0 to 255)
SELECT nids_alerts_from($$SELECT '10.5.5.5'::inet AS source_ip, '10.9.9.9'::inet AS destination_ip,
	70000 AS destination_port, 300 AS protocol, '2024-06-01 10:00+00'::timestamptz AS "timestamp",
	'attack' AS verdict, 'DDoS' AS predicted_label$$, 'h4') AS changed;
SELECT src_ip, dst_port, ports, protocol FROM nids.alerts;
SELECT nids_alerts_from($$SELECT '10.5.5.5'::inet AS source_ip, '10.9.9.9'::inet AS destination_ip,
	65535 AS destination_port, 17 AS protocol, '2024-06-01 10:01+00'::timestamptz AS "timestamp",
	'attack' AS verdict, 'DDoS' AS predicted_label$$, 'h4') AS changed;
SELECT src_ip, dst_port, ports, protocol FROM nids.alerts;
DELETE FROM nids.alerts;

-- 3. timestamps at both ends of their range, and nids.alert_gap at its
-- largest: the same flows give the same incidents in one statement and in
-- two (the gap arithmetic overflowed: flows 300,000 years apart were one
-- incident, and a flow near year 294276 never grew its incident)
CREATE TABLE h4_edge AS
SELECT '10.6.6.6'::inet AS source_ip, '10.9.9.9'::inet AS destination_ip, 80 AS destination_port,
	6 AS protocol, 'attack' AS verdict, 'DDoS' AS predicted_label, t AS "timestamp"
FROM (SELECT '4713-11-24 00:00:00+00 BC'::timestamptz + i * interval '1 minute' AS t FROM generate_series(0, 4) i
	  UNION ALL
	  SELECT '294276-12-31 23:50:00+00'::timestamptz + i * interval '1 minute' FROM generate_series(0, 4) i) s;
CREATE TABLE h4_edge_result (gap text, batching text, first_seen timestamptz, last_seen timestamptz, flows bigint);
CREATE FUNCTION h4_edge_run(gap text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('nids.alert_gap', gap, true);
	DELETE FROM nids.alerts;
	PERFORM nids_alerts_from('SELECT * FROM h4_edge', 'h4');
	INSERT INTO h4_edge_result SELECT gap, 'one', first_seen, last_seen, flows FROM nids.alerts;
	DELETE FROM nids.alerts;
	PERFORM nids_alerts_from('SELECT * FROM h4_edge WHERE "timestamp" < ''2000-01-01''', 'h4');
	PERFORM nids_alerts_from('SELECT * FROM h4_edge WHERE "timestamp" >= ''2000-01-01'' AND "timestamp" < ''294276-12-31 23:52:00+00''', 'h4');
	PERFORM nids_alerts_from('SELECT * FROM h4_edge WHERE "timestamp" >= ''294276-12-31 23:52:00+00''', 'h4');
	INSERT INTO h4_edge_result SELECT gap, 'three', first_seen, last_seen, flows FROM nids.alerts;
	DELETE FROM nids.alerts;
END
$$;
SELECT h4_edge_run('10min');
SELECT h4_edge_run('1073741823s');
SELECT gap, batching, first_seen, last_seen, flows FROM h4_edge_result ORDER BY gap, batching, first_seen;
SELECT count(*) AS differences FROM (
	(SELECT gap, first_seen, last_seen, flows FROM h4_edge_result WHERE batching = 'one'
	 EXCEPT SELECT gap, first_seen, last_seen, flows FROM h4_edge_result WHERE batching = 'three')
	UNION ALL
	(SELECT gap, first_seen, last_seen, flows FROM h4_edge_result WHERE batching = 'three'
	 EXCEPT SELECT gap, first_seen, last_seen, flows FROM h4_edge_result WHERE batching = 'one')) d;
-- the scan detector at the ends of the range: a source idle for 300,000
-- years is forgotten, not kept by an overflow (its three early failures do
-- not count: the sweep is decided at its seventh attempt, not its fourth)
SELECT src_ip, kind, attempts, detected_at FROM nids_scans($$
	SELECT '10.7.7.7'::inet AS source_ip, ('10.20.0.' || i)::inet AS destination_ip, 22 AS destination_port,
		6 AS protocol, 1 AS syn_flag_count, 0 AS total_backward_packets,
		CASE WHEN i <= 3 THEN '4713-11-24 00:00:00+00 BC'::timestamptz + i * interval '1 s'
			ELSE '294276-12-31 23:50:00+00'::timestamptz + i * interval '1 s' END AS "timestamp"
	FROM generate_series(1, 40) i$$, '{"idle_seconds": 31536000}');
DROP FUNCTION h4_edge_run(text);
DROP TABLE h4_edge, h4_edge_result;

-- 4. nids_adapt: a member of nids_admin adapts (the internal function was
-- granted to no one)
CREATE TEMP TABLE quiet_h4 AS SELECT * FROM local_h4 WHERE label = 'BENIGN';
CREATE ROLE h4_admin IN ROLE nids_admin;
GRANT SELECT ON flows_h4, quiet_h4 TO h4_admin;
SET ROLE h4_admin;
SELECT r->>'method' AS method, (r->>'version')::int > 1 AS new_version
FROM (SELECT nids_adapt('h4', 'SELECT * FROM quiet_h4') AS r) s;
RESET ROLE;
-- options of the wrong type are refused naming the option (22023)
SELECT nids_adapt('h4', 'SELECT * FROM quiet_h4', '{"drop_ks": "high"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('h4', 'SELECT * FROM quiet_h4', '{"seed": {"value": 7}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('h4', 'SELECT * FROM quiet_h4', '{"seed": 7.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('h4', 'SELECT * FROM quiet_h4', '{"deploy": "yes"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_adapt('h4', 'SELECT * FROM quiet_h4', '{"training": 5}');
\echo :LAST_ERROR_SQLSTATE
-- a training table that does not exist is an error, not a recalibration
SELECT nids_adapt('h4', 'SELECT * FROM quiet_h4', '{"training": "no_such_table"}');
\echo :LAST_ERROR_SQLSTATE
-- flows without any feature value are not a network's benign traffic
CREATE TEMP TABLE empty_h4 AS SELECT * FROM quiet_h4;
DO $$
BEGIN
	EXECUTE (SELECT 'UPDATE empty_h4 SET ' || string_agg(format('%I = NULL', attname), ', ')
			 FROM pg_attribute WHERE attrelid = 'empty_h4'::regclass AND attnum > 0
				AND atttypid = 'float8'::regtype);
END
$$;
SELECT nids_adapt('h4', 'SELECT * FROM empty_h4');
\echo :LAST_ERROR_SQLSTATE
-- the caller's temporary table of a name 1.2 worked in is never touched
-- (1.3 adapts in memory: it makes no table at all)
CREATE TEMP TABLE nids_adapt_local (mine text);
INSERT INTO nids_adapt_local VALUES ('still here');
SELECT nids_adapt('h4', 'SELECT * FROM quiet_h4') ->> 'method' AS method;
SELECT mine FROM nids_adapt_local;
DROP TABLE nids_adapt_local;
-- no working table is left when it returns: twice in one transaction works
BEGIN;
SELECT (nids_adapt('h4', 'SELECT * FROM quiet_h4', '{"seed": 1}') ->> 'version')::int
	< (nids_adapt('h4', 'SELECT * FROM quiet_h4', '{"seed": 2}') ->> 'version')::int AS twice;
SELECT count(*) AS working_tables_left FROM pg_class WHERE relname LIKE 'nids\_adapt\_%' AND relpersistence = 't';
ROLLBACK;

SELECT nids_drop_model('h4');
DROP OWNED BY h4_admin, h4_feeder, h4_intruder;
DROP ROLE h4_admin, h4_feeder, h4_intruder;
DROP TABLE flows_h4, local_h4;
