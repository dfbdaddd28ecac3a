-- Scan detection, round two (1.3): TCP first contacts are the walks'
-- evidence and a walk ends with a benign decision; UDP and ICMP echo are
-- weak evidence that makes a scanner only as a sweep.  Busy hosts that
-- fail now and then are never flagged; scanners of every shape are, and
-- the trigger decides as nids_scans does.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE TABLE t2 (n bigint, source_ip inet, destination_ip inet, destination_port float8,
	protocol float8, "timestamp" timestamptz, syn_flag_count float8, total_backward_packets float8,
	rst_flag_count float8, total_length_of_bwd_packets float8, icmp_type float8, who text);
-- a deterministic coin, true for share of the i: failures at random, in runs as real ones come
CREATE FUNCTION coin(i bigint, salt int, share float8) RETURNS bool IMMUTABLE LANGUAGE sql
	AS $$SELECT (hashint8(i * 1000 + salt)::bigint + 2147483648) / 4294967296.0 < share$$;
CREATE FUNCTION tcp(src text, dst inet, port int, ts timestamptz, ok bool, who text) RETURNS t2 LANGUAGE sql
	AS $$SELECT NULL::bigint, src::inet, dst, port, 6, ts, 1, CASE WHEN ok THEN 5 ELSE 0 END, 0,
		CASE WHEN ok THEN 900 ELSE 0 END, NULL::float8, who$$;
CREATE FUNCTION udp(src text, dst inet, port int, ts timestamptz, ok bool, who text) RETURNS t2 LANGUAGE sql
	AS $$SELECT NULL::bigint, src::inet, dst, port, 17, ts, 0, CASE WHEN ok THEN 1 ELSE 0 END, 0,
		CASE WHEN ok THEN 120 ELSE 0 END, NULL::float8, who$$;
\set t0 '''2024-06-03 08:00:00+00'''

-- busy hosts that fail now and then, over four hours:
-- a P2P-like client: 6,000 first contacts to peers, a quarter fail
INSERT INTO t2 SELECT (tcp('10.0.0.10', ('100.' || (i / 60000) || '.' || (i / 250 % 240) || '.' || (i % 250 + 1))::inet,
	20000 + i % 30000, :t0::timestamptz + i * interval '2.4 s', NOT coin(i, 1, 0.25), 'p2p')).*
FROM generate_series(1, 6000) i;
-- a web proxy: 20,000 connections to 3,000 sites, 8% of the first ones fail
INSERT INTO t2 SELECT (tcp('10.0.0.11', ('151.101.' || (i % 3000 / 250) || '.' || (i % 250 + 1))::inet,
	CASE WHEN i % 4 = 0 THEN 80 ELSE 443 END, :t0::timestamptz + i * interval '0.72 s', NOT coin(i, 2, 0.08), 'proxy')).*
FROM generate_series(1, 20000) i;
-- a recursive DNS resolver: 30,000 queries to 2,000 servers, 4% unanswered (lame delegations)
INSERT INTO t2 SELECT (udp('10.0.0.12', ('192.' || (i % 2000 / 250) || '.' || (i % 7) || '.' || (i % 250 + 1))::inet,
	53, :t0::timestamptz + i * interval '0.48 s', NOT coin(i, 3, 0.04), 'resolver')).*
FROM generate_series(1, 30000) i;
-- a NAT gateway's outside address: TCP and UDP of many clients, 10% of new hosts fail
INSERT INTO t2 SELECT (CASE WHEN i % 3 = 0
	THEN udp('10.0.0.13', ('8.' || (i % 5000 / 250) || '.1.' || (i % 250 + 1))::inet, 123 + i % 2 * 320, :t0::timestamptz + i * interval '1 s', NOT coin(i, 4, 0.10), 'nat')
	ELSE tcp('10.0.0.13', ('13.' || (i % 5000 / 250) || '.2.' || (i % 250 + 1))::inet, 443, :t0::timestamptz + i * interval '1 s', NOT coin(i, 5, 0.10), 'nat') END).*
FROM generate_series(1, 14000) i;
-- a normal host whose UDP goes unanswered: 20 flows to 7 hosts (a dead resolver, NTP), pings unanswered
INSERT INTO t2 SELECT (udp('10.0.0.14', ('10.0.9.' || (i % 7 + 1))::inet, 53, :t0::timestamptz + i * interval '30 s', false, 'quiet-udp')).*
FROM generate_series(1, 20) i;
INSERT INTO t2 (source_ip, destination_ip, destination_port, protocol, "timestamp", total_backward_packets, icmp_type, who)
SELECT '10.0.0.14', ('10.0.9.' || (i % 7 + 1))::inet, 0, 1, :t0::timestamptz + i * interval '40 s', 0, 8, 'quiet-udp'
FROM generate_series(1, 12) i;
-- discovery protocols: SSDP, mDNS and broadcasts, never answered
INSERT INTO t2 SELECT (udp('10.0.0.15', (ARRAY['239.255.255.250', '224.0.0.251', '255.255.255.255'])[1 + i % 3]::inet,
	(ARRAY[1900, 5353, 137])[1 + i % 3], :t0::timestamptz + i * interval '3 s', false, 'discovery')).*
FROM generate_series(1, 3000) i;

-- scanners:
-- a masscan-like UDP port scan: 1,000 ports of one host in 10 s, 3 answer
INSERT INTO t2 SELECT (udp('10.6.0.1', '10.50.0.9', i, :t0::timestamptz + interval '1 hour' + i * interval '10 ms',
	i IN (53, 123, 161), 'udp-portscan')).*
FROM generate_series(1, 1000) i;
-- a UDP sweep of one port: SNMP on 500 hosts in 50 s
INSERT INTO t2 SELECT (udp('10.6.0.2', ('10.60.' || (i / 250) || '.' || (i % 250 + 1))::inet, 161,
	:t0::timestamptz + interval '2 hours' + i * interval '100 ms', i % 97 = 0, 'udp-sweep')).*
FROM generate_series(1, 500) i;
-- a ping sweep of a /24 in 25 s, 20 hosts up
INSERT INTO t2 (source_ip, destination_ip, destination_port, protocol, "timestamp", total_backward_packets, icmp_type, who)
SELECT '10.6.0.3', ('10.70.0.' || i)::inet, 0, 1, :t0::timestamptz + interval '30 minutes' + i * interval '100 ms',
	CASE WHEN i % 12 = 0 THEN 1 ELSE 0 END, 8, 'ping-sweep'
FROM generate_series(1, 254) i;
-- a slow UDP sweep: one host every 10 s (64 hosts take 640 s, past the 300 s window)
INSERT INTO t2 SELECT (udp('10.6.0.4', ('10.80.0.' || i)::inet, 161, :t0::timestamptz + i * interval '10 s', false, 'slow-udp-sweep')).*
FROM generate_series(1, 200) i;
-- a host benign for an hour (web browsing), then a fast TCP sweep of port 445
INSERT INTO t2 SELECT (tcp('10.6.0.5', ('151.101.9.' || i)::inet, 443, :t0::timestamptz + i * interval '30 s', true, 'late-fast')).*
FROM generate_series(1, 120) i;
INSERT INTO t2 SELECT (tcp('10.6.0.5', ('10.90.' || (i / 250) || '.' || (i % 250 + 1))::inet, 445,
	:t0::timestamptz + interval '1 hour' + i * interval '50 ms', i % 40 = 0, 'late-fast')).*
FROM generate_series(1, 600) i;
-- ... and one that turns to a slow sweep (one host a minute), past the 300 s sweep window
INSERT INTO t2 SELECT (tcp('10.6.0.6', ('151.101.8.' || i)::inet, 443, :t0::timestamptz + i * interval '30 s', true, 'late-slow')).*
FROM generate_series(1, 60) i;
INSERT INTO t2 SELECT (tcp('10.6.0.6', ('10.91.0.' || i)::inet, 22, :t0::timestamptz + interval '40 minutes' + i * interval '1 minute',
	false, 'late-slow')).*
FROM generate_series(1, 200) i;
UPDATE t2 SET n = o.k FROM (SELECT ctid, row_number() OVER (ORDER BY "timestamp", source_ip, destination_ip) AS k FROM t2) o
WHERE t2.ctid = o.ctid;

-- every scanner found, and no busy host: at which attempt, on what evidence
CREATE TEMP TABLE batch AS SELECT * FROM nids_scans('SELECT * FROM t2');
SELECT (SELECT min(who) FROM t2 WHERE source_ip = src_ip) AS who, kind, attempts, destinations, ports,
	round(score::numeric) AS score, detected_at - first_seen AS after
FROM batch ORDER BY src_ip, kind;
SELECT who FROM (SELECT DISTINCT who, source_ip FROM t2) w
WHERE NOT EXISTS (SELECT 1 FROM batch WHERE src_ip = w.source_ip) ORDER BY 1;

-- the trigger: the same rows in 11 statements decide the same sources at the same attempts,
-- with reasons that say on what evidence
CREATE TABLE live2 (LIKE t2);
CREATE TRIGGER scans AFTER INSERT ON live2 REFERENCING NEW TABLE AS new_flows
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger();
DO $$
DECLARE total bigint := (SELECT count(*) FROM t2);
BEGIN
	FOR i IN 0 .. 10 LOOP
		INSERT INTO live2 SELECT * FROM t2 WHERE n > i * (total / 11 + 1) AND n <= (i + 1) * (total / 11 + 1) ORDER BY n;
	END LOOP;
END
$$;
SELECT count(*) AS differences FROM (
	(SELECT src_ip, class, (reasons -> 0 ->> 'attempts')::int, (reasons -> 0 ->> 'detected_at')::timestamptz
	 FROM nids.alerts WHERE kind = 'scan' EXCEPT SELECT src_ip, kind, attempts, detected_at FROM batch)
	UNION ALL
	(SELECT src_ip, kind, attempts, detected_at FROM batch
	 EXCEPT SELECT src_ip, class, (reasons -> 0 ->> 'attempts')::int, (reasons -> 0 ->> 'detected_at')::timestamptz
	 FROM nids.alerts WHERE kind = 'scan')) d;
SELECT host(src_ip), class, reasons -> 0 ->> 'reason' AS reason, reasons -> 0 ->> 'test' AS test,
	reasons -> 0 ->> 'walk' AS walk
FROM nids.alerts WHERE kind = 'scan' ORDER BY src_ip, class;
SELECT max(octet_length(state)) < 8192 AS state_under_8_kB FROM nids.scan_state;

-- the restart rule: a walk that restarts at once after each benign
-- decision lets the P2P client's occasional failures add up ...
SELECT (SELECT min(who) FROM t2 WHERE source_ip = src_ip) AS who, kind
FROM nids_scans('SELECT * FROM t2 WHERE who = ''p2p''', '{"restart_seconds": 0}');
-- ... while the slow sweep waits for its restart: with a shorter one it is found sooner
SELECT kind, attempts, detected_at - first_seen AS after
FROM nids_scans('SELECT * FROM t2 WHERE who = ''late-slow''', '{"restart_seconds": 600}');
-- the sweep's own thresholds: a longer window finds the slow UDP sweep; sweeps off, none is found
SELECT kind, attempts, round(score::numeric) AS unanswered
FROM nids_scans('SELECT * FROM t2 WHERE who = ''slow-udp-sweep''', '{"sweep_seconds": 900}');
SELECT count(*) FROM nids_scans('SELECT * FROM t2 WHERE protocol <> 6', '{"sweep": false}');
-- options.failed: the protocol still says which evidence an attempt is
SELECT (SELECT min(who) FROM t2 WHERE source_ip = src_ip) AS who, kind, attempts
FROM nids_scans('SELECT source_ip, destination_ip, destination_port, protocol, "timestamp",
	total_backward_packets = 0 AS f FROM t2 WHERE who IN (''udp-sweep'', ''quiet-udp'', ''resolver'')',
	'{"failed": "f"}');
-- bad sweep options (22023)
SELECT count(*) FROM nids_scans('SELECT * FROM t2', '{"sweep_hosts": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT * FROM t2', '{"sweep_answered": 1.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT * FROM t2', '{"sweep": "on"}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM nids_scans('SELECT * FROM t2', '{"restart_seconds": -1}');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM nids.alerts;
DELETE FROM nids.scan_state;
