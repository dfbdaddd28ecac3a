-- Per-source detection: nids_scans and nids_scan_trigger on generated
-- traffic: benign clients, a fast and a slow port scan of one host, a
-- sweep of one port over many hosts.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE TABLE traffic (flow_number int, source_ip inet, destination_ip inet, destination_port float8,
	protocol float8, "timestamp" timestamptz, syn_flag_count float8, total_backward_packets float8,
	rst_flag_count float8, total_length_of_bwd_packets float8, label text);
-- 40 benign clients, 3 servers, one attempt every 20 s each, answered but
-- for one in fifty; and their continuation flows (no SYN)
INSERT INTO traffic
SELECT 0, ('10.1.0.' || c)::inet, ('10.9.0.' || (1 + (c + k) % 3))::inet,
	(ARRAY[80, 443, 22])[1 + (c * k) % 3], 6,
	'2024-05-01 09:00:00+00'::timestamptz + (k * 20 + c) * interval '1 second',
	CASE WHEN k % 5 = 4 THEN 0 ELSE 1 END,
	CASE WHEN (c * 31 + k) % 50 = 0 THEN 0 ELSE 4 END, 0, 600, 'BENIGN'
FROM generate_series(1, 40) c, generate_series(0, 359) k;
-- a fast vertical scan: 10.6.6.6, ports 1..200 of 10.9.0.1, 5 a second, refused
INSERT INTO traffic
SELECT 0, '10.6.6.6', '10.9.0.1', p, 6, '2024-05-01 10:00:00+00'::timestamptz + p * interval '200 ms',
	1, 1, 1, 0, 'PortScan'
FROM generate_series(1, 200) p;
-- a slow vertical scan: 10.7.7.7, one port a minute, never answered
INSERT INTO traffic
SELECT 0, '10.7.7.7', '10.9.0.2', 1000 + p, 6, '2024-05-01 09:05:00+00'::timestamptz + p * interval '1 minute',
	1, 0, 0, 0, 'PortScan'
FROM generate_series(1, 60) p;
-- a horizontal sweep: 10.8.8.8, port 22 of 10.20.0.1..150, unanswered, one found open
INSERT INTO traffic
SELECT 0, '10.8.8.8', ('10.20.0.' || h)::inet, 22, 6, '2024-05-01 09:30:00+00'::timestamptz + h * interval '2 seconds',
	1, CASE WHEN h = 3 THEN 5 ELSE 0 END, 0, CASE WHEN h = 3 THEN 300 ELSE 0 END, 'AddressScan'
FROM generate_series(1, 150) h;
UPDATE traffic SET flow_number = n FROM (SELECT ctid, row_number() OVER (ORDER BY "timestamp", source_ip) AS n FROM traffic) o
WHERE traffic.ctid = o.ctid;

-- the detector over the whole query: every scanner, at the attempt that decides
SELECT src_ip, kind, detected_at, attempts, destinations, ports, failed, round(score::numeric) AS score
FROM nids_scans('SELECT * FROM traffic') ORDER BY detected_at;

-- the trigger: the same rows in one statement ...
CREATE TABLE live_scan (LIKE traffic);
CREATE TRIGGER scans AFTER INSERT ON live_scan REFERENCING NEW TABLE AS new_flows
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger();
INSERT INTO live_scan SELECT * FROM traffic ORDER BY flow_number;
SELECT kind, class, src_ip, dst_ip, dst_port, destinations, ports, flows, first_seen, status,
	reasons -> 0 ->> 'reason' AS reason, (reasons -> 0 ->> 'attempts')::int AS decided_at_attempt
FROM nids.alerts WHERE kind = 'scan' ORDER BY first_seen;
CREATE TEMP TABLE one_batch AS
	SELECT src_ip, class, (reasons -> 0 ->> 'attempts')::int AS attempts, (reasons -> 0 ->> 'detected_at')::timestamptz AS detected_at
	FROM nids.alerts WHERE kind = 'scan';
-- ... match nids_scans: the same sources, the same attempt
SELECT count(*) AS differences FROM (
	(SELECT src_ip, class, attempts, detected_at FROM one_batch
	 EXCEPT SELECT src_ip, kind, attempts, detected_at FROM nids_scans('SELECT * FROM traffic'))
	UNION ALL
	(SELECT src_ip, kind, attempts, detected_at FROM nids_scans('SELECT * FROM traffic')
	 EXCEPT SELECT src_ip, class, attempts, detected_at FROM one_batch)) d;
-- ... and in 17 statements cut in time order: the same again
DELETE FROM nids.alerts;
DELETE FROM nids.scan_state;
TRUNCATE live_scan;
DO $$
DECLARE n int := (SELECT count(*) FROM traffic);
BEGIN
	FOR i IN 0 .. 16 LOOP
		INSERT INTO live_scan SELECT * FROM traffic
		WHERE flow_number > i * (n / 17 + 1) AND flow_number <= (i + 1) * (n / 17 + 1) ORDER BY flow_number;
	END LOOP;
END
$$;
SELECT count(*) AS rows_in FROM live_scan;
SELECT count(*) AS differences FROM (
	(SELECT src_ip, class, (reasons -> 0 ->> 'attempts')::int, (reasons -> 0 ->> 'detected_at')::timestamptz
	 FROM nids.alerts WHERE kind = 'scan' EXCEPT SELECT * FROM one_batch)
	UNION ALL
	(SELECT * FROM one_batch EXCEPT SELECT src_ip, class, (reasons -> 0 ->> 'attempts')::int,
		(reasons -> 0 ->> 'detected_at')::timestamptz FROM nids.alerts WHERE kind = 'scan')) d;
-- late rows, older than their source's last attempt, in a later statement:
-- counted when they arrive, never dropped (the scanner's incident grows);
-- within one statement rows are taken in time order whatever their order
SELECT flows AS before FROM nids.alerts WHERE kind = 'scan' AND src_ip = '10.6.6.6';
INSERT INTO live_scan (source_ip, destination_ip, destination_port, protocol, "timestamp", syn_flag_count, total_backward_packets)
VALUES ('10.6.6.6', '10.9.0.1', 5001, 6, '2024-05-01 10:00:05+00', 1, 0),
	('10.6.6.6', '10.9.0.1', 5000, 6, '2024-05-01 10:00:04+00', 1, 0);
SELECT flows AS after_two_late_rows, last_seen FROM nids.alerts WHERE kind = 'scan' AND src_ip = '10.6.6.6';
SELECT src_ip, kind, attempts, detected_at FROM nids_scans($$SELECT * FROM (VALUES
	('10.5.5.5'::inet, '10.9.0.1'::inet, 7, 6, '2024-05-01 12:00:07+00'::timestamptz, 1, 0),
	('10.5.5.5', '10.9.0.1', 1, 6, '2024-05-01 12:00:01+00', 1, 0),
	('10.5.5.5', '10.9.0.1', 6, 6, '2024-05-01 12:00:06+00', 1, 0),
	('10.5.5.5', '10.9.0.1', 3, 6, '2024-05-01 12:00:03+00', 1, 0),
	('10.5.5.5', '10.9.0.1', 2, 6, '2024-05-01 12:00:02+00', 1, 0),
	('10.5.5.5', '10.9.0.1', 5, 6, '2024-05-01 12:00:05+00', 1, 0),
	('10.5.5.5', '10.9.0.1', 4, 6, '2024-05-01 12:00:04+00', 1, 0))
	AS t(source_ip, destination_ip, destination_port, protocol, "timestamp", syn_flag_count, total_backward_packets)$$);
-- the state: one row per source seen, of one fixed size whatever it contacted
SELECT count(*) AS sources, min(octet_length(state)) = max(octet_length(state)) AS fixed_size,
	max(octet_length(state)) < 8192 AS under_8_kB
FROM nids.scan_state;
-- a source idle for options.idle_seconds of flow time is forgotten
INSERT INTO live_scan (source_ip, destination_ip, destination_port, protocol, "timestamp", syn_flag_count, total_backward_packets)
VALUES ('10.1.0.1', '10.9.0.1', 80, 6, '2024-05-01 23:00:00+00', 1, 3);
SELECT count(*) AS sources_left, bool_and(src_ip = '10.1.0.1') AS only_the_active_one FROM nids.scan_state;

-- what counts: continuations (no SYN), UDP and replies are not attempts;
-- options.failed names a boolean column instead of the counters
SELECT count(*) FROM nids_scans($$SELECT source_ip, destination_ip, destination_port, 17 AS protocol,
	"timestamp", syn_flag_count, total_backward_packets FROM traffic WHERE label = 'PortScan'$$);
SELECT src_ip, kind, attempts FROM nids_scans($$SELECT source_ip, destination_ip, destination_port,
	"timestamp", CASE WHEN syn_flag_count > 0 THEN total_backward_packets = 0 OR rst_flag_count > 0 END AS failed_attempt
	FROM traffic$$, '{"failed": "failed_attempt"}') ORDER BY 1, 2;
-- the options
SELECT src_ip, kind, attempts FROM nids_scans('SELECT * FROM traffic',
	'{"vertical": false, "horizontal_ratio": 1000}') ORDER BY 1;
SELECT count(*) FROM nids_scans('SELECT * FROM traffic', '{"window": 5}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT * FROM traffic', '{"theta0": 0.2, "theta1": 0.8}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT * FROM traffic', '{"theta0": "high"}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT * FROM traffic', '{"failed": "no_such_column"}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT *, 1 AS f FROM traffic', '{"failed": "f"}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT * FROM traffic', '[1]');
\echo :LAST_ERROR_SQLSTATE
-- rows without the columns it needs, by name; a read-only window
SELECT count(*) FROM nids_scans('SELECT source_ip, "timestamp" FROM traffic');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT source_ip, destination_ip, "timestamp", syn_flag_count FROM traffic');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT source_ip::text AS source_ip, destination_ip, "timestamp", total_backward_packets FROM traffic');
\echo :LAST_ERROR_SQLSTATE
CREATE FUNCTION scan_write() RETURNS int LANGUAGE sql AS 'INSERT INTO traffic (label) VALUES (''x'') RETURNING 1';
SELECT count(*) FROM nids_scans('SELECT *, scan_write() FROM traffic');
\echo :LAST_ERROR_SQLSTATE
-- NULL addresses are skipped, and counted
DELETE FROM nids.alert_counters;
INSERT INTO live_scan (source_ip, destination_ip, "timestamp", protocol, syn_flag_count, total_backward_packets)
VALUES (NULL, '10.9.0.1', now(), 6, 1, 0), ('10.1.0.1', NULL, now(), 6, 1, 0),
	('10.1.0.1', '10.9.0.1', 'infinity', 6, 1, 0);
SELECT counter, flows FROM nids.alert_counters;
-- the trigger's options are checked at its first statement
CREATE TABLE bad_opts (LIKE traffic);
CREATE TRIGGER scans AFTER INSERT ON bad_opts REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger('{"horizontal": "yes"}');
INSERT INTO bad_opts SELECT * FROM traffic LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
CREATE TRIGGER scans_row AFTER INSERT ON live_scan FOR EACH ROW EXECUTE FUNCTION nids_scan_trigger();
INSERT INTO live_scan SELECT * FROM traffic LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER scans_row ON live_scan;
-- at most one argument, the options (22023)
CREATE TRIGGER scans_two AFTER INSERT ON live_scan REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger('{}', '{}');
INSERT INTO live_scan SELECT * FROM traffic LIMIT 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER scans_two ON live_scan;
DELETE FROM nids.alerts;
DELETE FROM nids.alert_counters;
DELETE FROM nids.scan_state;
