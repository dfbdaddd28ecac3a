-- Incidents: flagged flows grouped per source, verdict and class
-- (nids_alert_trigger, nids_alerts_from), severity, suppression, counters,
-- Community ID, EVE lines, and explanations in an analyst's terms.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set ECHO none
\set tbl flows_al
\set n 1500
\set seed 0.23
\set shift 1.0
\i test/fixtures/flows.sql
\o /dev/null
SELECT nids_train('flows_al', model => 'al', options => '{"exclude": ["flow_number"], "xgboost": {"num_boost_round": 10}}');
\o
\set ECHO all
\set SHOW_CONTEXT never

-- Community ID v1: the specification's published vectors (TCP, UDP, SCTP,
-- ICMP, ICMPv6, IPv4, IPv6, another protocol), both directions
SELECT nids_community_id('128.232.110.120', '66.35.250.204', 34855, 80, 6) AS tcp,
	nids_community_id('66.35.250.204', '128.232.110.120', 80, 34855, 6) AS tcp_reverse,
	nids_community_id('192.168.1.52', '8.8.8.8', 54585, 53, 17) AS udp,
	nids_community_id('192.168.170.8', '192.168.170.56', 7, 7, 132) AS sctp;
SELECT nids_community_id('192.168.0.89', '192.168.0.1', 8, 0, 1) AS icmp_echo,
	nids_community_id('192.168.0.1', '192.168.0.89', 0, 0, 1) AS icmp_echo_reply,
	nids_community_id('10.0.0.1', '10.0.0.2', 11, 0, 1) AS icmp_time_exceeded;
SELECT nids_community_id('2001:470:e5bf:dead:4957:2174:e82c:4887', '2607:f8b0:400c:c03::1a', 63943, 25, 6) AS tcp6,
	nids_community_id('fe80::200:86ff:fe05:80da', 'fe80::260:97ff:fe07:69ea', 135, 0, 58) AS icmp6_ns,
	nids_community_id('fe80::260:97ff:fe07:69ea', 'fe80::200:86ff:fe05:80da', 135, 0, 58) AS icmp6_ns_other_side,
	nids_community_id('3ffe:501:1800:2345::2', '3ffe:507:0:1:200:86ff:fe05:80da', 3, 0, 58) AS icmp6_one_way,
	nids_community_id('fe80::260:97ff:fe07:69ea', 'ff02::1', 134, 0, 58) AS icmp6_ra;
SELECT nids_community_id('10.1.12.1', '10.1.12.2', 0, 0, 46) AS rsvp,
	nids_community_id('10.1.12.2', '10.1.12.1', 5, 9, 46) AS rsvp_ports_ignored,
	nids_community_id('128.232.110.120', '66.35.250.204', 34855, 80, 6, 1) AS seeded;
SELECT nids_community_id('10.0.0.1', '::1', 1, 2, 6);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_community_id('10.0.0.1', '10.0.0.2', 70000, 2, 6);
\echo :LAST_ERROR_SQLSTATE

-- a flow table as nids-load makes it, with the scoring trigger and the
-- alert trigger: attackers 10.0.0.x, benign hosts 192.168.1.x, one flow a
-- second; the port scanner walks ports of one host
CREATE TABLE live_al (LIKE flows_al);
ALTER TABLE live_al ADD COLUMN source_ip inet, ADD COLUMN destination_ip inet,
	ADD COLUMN source_port integer, ADD COLUMN protocol float8, ADD COLUMN "timestamp" timestamptz,
	ADD COLUMN predicted_label text, ADD COLUMN probability float8, ADD COLUMN novelty float8,
	ADD COLUMN verdict text;
CREATE TEMP VIEW rows_al AS
	SELECT f.*, CASE f.label WHEN 'BENIGN' THEN ('192.168.1.' || (f.flow_number::int % 40))::inet
			WHEN 'DDoS' THEN '10.0.0.1'::inet WHEN 'PortScan' THEN '10.0.0.2'::inet
			ELSE '10.0.0.3'::inet END AS source_ip,
		CASE f.label WHEN 'BENIGN' THEN ('192.168.2.' || (f.flow_number::int % 7))::inet
			ELSE '192.168.9.9'::inet END AS destination_ip,
		40000 + f.flow_number::int % 20000 AS source_port, 6::float8 AS protocol,
		'2024-03-01 10:00:00+00'::timestamptz + f.flow_number * interval '1 second'
			+ CASE WHEN f.flow_number > 1000 THEN interval '2 hours' ELSE interval '0' END AS "timestamp",
		NULL::text AS predicted_label, NULL::float8 AS probability, NULL::float8 AS novelty, NULL::text AS verdict
	FROM flows_al f;
CREATE TRIGGER score BEFORE INSERT ON live_al FOR EACH ROW EXECUTE FUNCTION nids_score_trigger('al');
CREATE TRIGGER alerts AFTER INSERT ON live_al REFERENCING NEW TABLE AS new_flows
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('al');

-- one statement of 1,500 flows: incidents, not verdicts per flow
INSERT INTO live_al SELECT * FROM rows_al ORDER BY "timestamp";
SELECT count(*) FILTER (WHERE verdict <> 'benign') AS flagged_flows FROM live_al;
SELECT count(*) AS incidents, sum(flows) AS flows_in_incidents FROM nids.alerts WHERE model = 'al';
-- the two-hour pause in flow time splits each source's incident in two
SELECT src_ip, verdict, class, severity, flows, destinations, ports, dst_ip, dst_port,
	first_seen, last_seen, status, community_id IS NOT NULL AS has_community_id,
	jsonb_array_length(reasons) > 0 AS explained
FROM nids.alerts WHERE model = 'al' AND src_ip << '10.0.0.0/8' ORDER BY src_ip, class, first_seen;
CREATE TEMP TABLE one_statement AS
	SELECT kind, verdict, class, src_ip, first_seen, last_seen, flows, destinations, ports, dst_ip, dst_port,
		max_probability FROM nids.alerts WHERE model = 'al';

-- the same rows in ten statements, in time order: the same incidents
DELETE FROM nids.alerts;
TRUNCATE live_al;
DO $$
BEGIN
	FOR i IN 0 .. 9 LOOP
		INSERT INTO live_al SELECT * FROM rows_al
			WHERE flow_number BETWEEN i * 150 + 1 AND (i + 1) * 150 ORDER BY "timestamp";
	END LOOP;
END
$$;
SELECT count(*) AS rows_inserted FROM live_al;
CREATE TEMP TABLE ten_statements AS
	SELECT kind, verdict, class, src_ip, first_seen, last_seen, flows, destinations, ports, dst_ip, dst_port,
		max_probability FROM nids.alerts WHERE model = 'al';
SELECT (SELECT count(*) FROM (SELECT * FROM one_statement EXCEPT SELECT * FROM ten_statements) d)
	+ (SELECT count(*) FROM (SELECT * FROM ten_statements EXCEPT SELECT * FROM one_statement) d) AS differences;

-- and nids_alerts_from on the same rows (a backfill) gives them too
DELETE FROM nids.alerts;
SELECT nids_alerts_from('SELECT * FROM live_al', 'al') = (SELECT count(*) FROM one_statement) AS opened_all;
SELECT (SELECT count(*) FROM (SELECT kind, verdict, class, src_ip, first_seen, last_seen, flows, destinations, ports, dst_ip, dst_port,
		max_probability FROM nids.alerts WHERE model = 'al' EXCEPT SELECT * FROM one_statement) d) AS differences;
-- run again on the same rows: they grow the same incidents (counted twice:
-- a backfill is not idempotent), none opens
SELECT nids_alerts_from('SELECT * FROM live_al WHERE source_ip = ''10.0.0.1''', 'al') AS grown;
SELECT count(*) = (SELECT count(*) FROM one_statement) AS no_new_incident FROM nids.alerts WHERE model = 'al';

-- severity: a listed class; a rise while growing is kept
INSERT INTO nids.alert_severity VALUES ('DDoS', 1), ('anomaly', 4);
DELETE FROM nids.alerts;
TRUNCATE live_al;
INSERT INTO live_al SELECT * FROM rows_al WHERE flow_number <= 300 ORDER BY "timestamp";
SELECT class, verdict, min(severity) AS severity FROM nids.alerts WHERE model = 'al' GROUP BY 1, 2 ORDER BY 1, 2;
INSERT INTO nids.alert_severity VALUES ('PortScan', 1);
INSERT INTO live_al SELECT * FROM rows_al WHERE flow_number BETWEEN 301 AND 320 ORDER BY "timestamp";
SELECT class, severity FROM nids.alerts WHERE model = 'al' AND class = 'PortScan';
DELETE FROM nids.alert_severity;

-- suppression: matching flows open or grow nothing and are counted; an
-- expired one stops applying; NULL matches anything
DELETE FROM nids.alerts;
TRUNCATE live_al;
INSERT INTO nids.alert_suppressions (src_ip, class, reason) VALUES ('10.0.0.1/32', 'DDoS', 'load test');
INSERT INTO nids.alert_suppressions (src_ip, until, reason) VALUES ('10.0.0.2/32', now() - interval '1 day', 'expired');
INSERT INTO live_al SELECT * FROM rows_al WHERE flow_number <= 300 ORDER BY "timestamp";
SELECT count(*) FILTER (WHERE src_ip = '10.0.0.1') AS ddos_incidents,
	count(*) FILTER (WHERE src_ip = '10.0.0.2') AS portscan_incidents FROM nids.alerts;
SELECT counter, flows = (SELECT count(*) FROM live_al l JOIN rows_al r USING (flow_number)
		WHERE r.flow_number <= 300 AND l.verdict = 'attack' AND l.predicted_label = 'DDoS' AND l.source_ip = '10.0.0.1') AS all_ddos_flows
FROM nids.alert_counters WHERE model = 'al';
-- a suppression's addresses are cidr: a malformed one is refused by its type
INSERT INTO nids.alert_suppressions (src_ip) VALUES ('10.0.0.1/33');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO nids.alert_suppressions (src_ip) VALUES ('10.0.0.1/8');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM nids.alert_suppressions;

-- flagged flows without a source address or time open nothing: counted
DELETE FROM nids.alert_counters;
DELETE FROM nids.alerts;
TRUNCATE live_al;
INSERT INTO live_al SELECT (jsonb_populate_record(NULL::live_al, to_jsonb(r) - 'source_ip')).*
	FROM (SELECT * FROM rows_al WHERE label = 'DDoS' AND flow_number <= 300) r;
INSERT INTO live_al SELECT (jsonb_populate_record(NULL::live_al, to_jsonb(r) - 'timestamp')).*
	FROM (SELECT * FROM rows_al WHERE label = 'DDoS' AND flow_number <= 300) r;
-- an infinite time places a flow nowhere: counted the same way
INSERT INTO live_al SELECT (jsonb_populate_record(NULL::live_al, to_jsonb(r) || '{"timestamp": "infinity"}')).*
	FROM (SELECT * FROM rows_al WHERE label = 'DDoS' AND flow_number <= 300) r;
SELECT counter, flows = (SELECT count(*) FROM live_al WHERE verdict <> 'benign') AS every_flagged_flow, flows > 0 AS some,
	(SELECT count(*) FROM live_al WHERE verdict <> 'benign' AND "timestamp" = 'infinity') > 0 AS infinite_ones_too
FROM nids.alert_counters WHERE model = 'al' ORDER BY counter;
SELECT count(*) AS incidents_opened FROM nids.alerts;

-- a closed incident never grows (nor reopens): the next flows open another
DELETE FROM nids.alerts;
TRUNCATE live_al;
INSERT INTO live_al SELECT * FROM rows_al WHERE label = 'DDoS' AND flow_number <= 200;
UPDATE nids.alerts SET status = 'closed', note = 'handled' WHERE class = 'DDoS';
INSERT INTO live_al SELECT * FROM rows_al WHERE label = 'DDoS' AND flow_number BETWEEN 201 AND 400;
SELECT status, count(*) FROM nids.alerts WHERE class = 'DDoS' GROUP BY status ORDER BY status;
UPDATE nids.alerts SET status = 'new' WHERE status = 'closed';
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
UPDATE nids.alerts SET status = 'solved' WHERE status = 'new';
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

-- incidents change in the inserting transaction: a rollback leaves none
DELETE FROM nids.alerts;
BEGIN;
INSERT INTO live_al SELECT * FROM rows_al WHERE label = 'DDoS' AND flow_number <= 200;
SELECT count(*) > 0 AS incident_inside FROM nids.alerts;
ROLLBACK;
SELECT count(*) AS incidents_after_rollback FROM nids.alerts;

-- EVE: Suricata's alert layout, plus what nids knows
INSERT INTO live_al SELECT * FROM rows_al WHERE label = 'DDoS' AND flow_number <= 200;
SELECT eve ->> 'event_type' AS event_type, eve ->> 'src_ip' AS src_ip, eve ->> 'dest_ip' AS dest_ip,
	eve ->> 'dest_port' AS dest_port, eve ->> 'proto' AS proto, eve -> 'alert' ->> 'signature' AS signature,
	eve -> 'alert' ->> 'severity' AS severity, eve -> 'alert' ->> 'category' AS category,
	eve ->> 'timestamp' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$' AS suricata_timestamp,
	eve -> 'nids' ->> 'flows' AS flows, (eve -> 'nids' ->> 'alert_id')::bigint = alert_id AS names_incident,
	eve ->> 'community_id' ~ '^1:[A-Za-z0-9+/]{27}=$' AS community_id
FROM nids.alerts_eve;

-- bad use: columns the trigger needs, how it is attached, a read-only backfill
CREATE TABLE no_source (LIKE flows_al);
CREATE TRIGGER alerts AFTER INSERT ON no_source REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('al');
INSERT INTO no_source SELECT * FROM flows_al LIMIT 3;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE text_source (LIKE flows_al);
ALTER TABLE text_source ADD COLUMN source_ip text, ADD COLUMN "timestamp" timestamptz;
CREATE TRIGGER alerts AFTER INSERT ON text_source REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('al');
INSERT INTO text_source SELECT *, '10.0.0.1', now() FROM flows_al LIMIT 3;
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER alerts_row AFTER INSERT ON live_al FOR EACH ROW EXECUTE FUNCTION nids_alert_trigger('al');
INSERT INTO live_al SELECT * FROM rows_al LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER alerts_row ON live_al;
-- at most one argument, the model name (22023)
CREATE TRIGGER alerts_two AFTER INSERT ON live_al REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('al', 'al');
INSERT INTO live_al SELECT * FROM rows_al LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER alerts_two ON live_al;
CREATE TABLE h_log_al (n int);
CREATE FUNCTION al_write() RETURNS int LANGUAGE sql AS 'INSERT INTO h_log_al VALUES (1) RETURNING 1';
SELECT nids_alerts_from('SELECT *, al_write() FROM live_al', 'al');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_alerts_from('SELECT * FROM live_al', 'no_such_model');
\echo :LAST_ERROR_SQLSTATE

-- why, in an analyst's terms: the verdict's own terms against the benign flows
SELECT feature, benign_median IS NOT NULL AS has_median, benign_percentile BETWEEN 0 AND 1 AS percentile,
	weight > 0 AS towards_verdict, reason ~ ('^' || feature || ' ') AS reason_names_feature
FROM nids_explain_verdict((SELECT nids_features(f, 'al') FROM flows_al f WHERE label = 'DDoS' LIMIT 1), 'al', 3);
SELECT reason FROM nids_explain_verdict(ARRAY[80, 3, 2000, 0, 4000000, 0, 2000, 2000, 0, 1.0e9, 6.0e5, 1, 1, 0, 0, 1, 0, 0, 0]::float8[], 'al', 2);
SELECT nids_import_xgboost('al_imported', booster, feature_names, class_labels, deploy => true) AS version
	FROM nids.model_versions WHERE name = 'al';
SELECT count(*) > 0 AS explained_without_reference,
	bool_and(benign_median IS NULL) AS no_medians
FROM nids_explain_verdict((SELECT nids_features(f, 'al') FROM flows_al f WHERE label = 'DDoS' LIMIT 1), 'al_imported');
SELECT * FROM nids_explain_verdict(ARRAY[1]::float8[], 'al');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM nids_explain_verdict((SELECT nids_features(f, 'al') FROM flows_al f LIMIT 1), 'al', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT nids_drop_model('al_imported');
DELETE FROM nids.alerts;
DELETE FROM nids.alert_counters;
