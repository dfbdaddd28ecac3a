-- Busy hosts and scans injected into real benign flows (run with psql -f
-- by test/shell/scans.sh and bench/scans.sh): from table flows (loaded
-- by nids-load), table busy holds its benign flows, three busy hosts made
-- of them, which must never be flagged, and scans of chosen speed and
-- shape, which must all be.  Labels name each source's part.
CREATE TABLE busy AS SELECT * FROM flows WHERE label = 'BENIGN';
CREATE FUNCTION pg_temp.addr(prefix int, i bigint) RETURNS inet IMMUTABLE LANGUAGE sql
	AS $$SELECT (prefix || '.' || (i / 62500 % 250) || '.' || (i / 250 % 250) || '.' || (i % 250 + 1))::inet$$;
SELECT min("timestamp") AS t0 FROM busy \gset
-- the real benign TCP and UDP flows, repeated `times`, as one source's to
-- a new host each, one every `step`, `failing` of them left unanswered
CREATE FUNCTION pg_temp.copy_as(src inet, dst_prefix int, times int, step interval, failing float8, what text, t0 timestamptz)
RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
	cols text := (SELECT string_agg(CASE attname WHEN 'source_ip' THEN '$1' WHEN 'destination_ip' THEN 'pg_temp.addr($2, j)'
		WHEN 'timestamp' THEN '$3 + j * $4' WHEN 'label' THEN '$5' ELSE quote_ident(attname) END, ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'flows'::regclass AND attnum > 0 AND NOT attisdropped);
BEGIN
	EXECUTE 'INSERT INTO busy SELECT ' || cols || ' FROM (SELECT f.*, row_number() OVER (ORDER BY k, f."timestamp") AS j
		FROM flows f, generate_series(1, $6) k WHERE f.label = ''BENIGN'' AND f.protocol IN (6, 17)) f'
	USING src, dst_prefix, t0, step, what, times;
	UPDATE busy SET total_backward_packets = 0, total_length_of_bwd_packets = 0
	WHERE label = what AND (hashint8(destination_ip - '0.0.0.0'::inet)::bigint + 2147483648) / 4294967296.0 < failing;
END
$f$;
-- a NAT gateway: the 13 clients' benign TCP and UDP from one address, to hosts of their own, 10% failing
SELECT pg_temp.copy_as('10.200.0.1', 20, 4, '7 s', 0.10, 'busy-nat', :'t0');
-- a recursive resolver's look: 15,000 flows to new hosts in 3 hours, 5% unanswered
SELECT pg_temp.copy_as('10.200.0.2', 21, 10, '0.7 s', 0.05, 'busy-resolver', :'t0');
-- a P2P-like client: 6,000 flows to new peers in 3 hours, a quarter failing
SELECT pg_temp.copy_as('10.200.0.3', 22, 4, '2 s', 0.25, 'busy-p2p', :'t0');
-- scans: a fast TCP sweep of port 445 (100/s), a slow one of port 22 (one a minute),
-- a UDP sweep of port 161 (masscan-like, 1,000/s), a slow vertical TCP scan
INSERT INTO busy (source_ip, destination_ip, destination_port, protocol, "timestamp", syn_flag_count,
	total_backward_packets, rst_flag_count, total_length_of_bwd_packets, label)
SELECT '10.66.0.1'::inet, pg_temp.addr(30, i), 445, 6, :'t0'::timestamptz + interval '5 hours' + i * interval '10 ms',
	1, 0, 0, 0, 'scan-fast-tcp'
FROM generate_series(1, 2000) i
UNION ALL SELECT '10.66.0.2', pg_temp.addr(31, i), 22, 6, :'t0'::timestamptz + interval '7 hours' + i * interval '1 minute', 1,
	CASE WHEN i % 20 = 0 THEN 4 ELSE 0 END, 0, CASE WHEN i % 20 = 0 THEN 300 ELSE 0 END, 'scan-slow-tcp'
FROM generate_series(1, 100) i
UNION ALL SELECT '10.66.0.3', pg_temp.addr(32, i), 161, 17, :'t0'::timestamptz + interval '9 hours' + i * interval '1 ms', 0,
	CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END, 0, CASE WHEN i % 50 = 0 THEN 90 ELSE 0 END, 'scan-udp'
FROM generate_series(1, 5000) i
UNION ALL SELECT '10.66.0.4', '192.168.10.50', 1000 + i, 6, :'t0'::timestamptz + interval '11 hours' + i * interval '30 s', 1,
	1, 1, 0, 'scan-slow-vertical'
FROM generate_series(1, 50) i;
