-- Incidents and roles: nids_analyst reads incidents and sets their status
-- and note, nothing else; an inserting role needs nids_feeder and no
-- privilege on the alert tables (1.3: without nids_feeder its insert is
-- refused); backfills are for nids_admin.
BEGIN;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
SELECT plan(17);

CREATE ROLE nids_t_analyst IN ROLE nids_analyst;
CREATE ROLE nids_t_ingest;
CREATE ROLE nids_t_nobody;
CREATE TABLE tap_flows AS
	SELECT g::float8 AS destination_port, (g % 7)::float8 AS total_fwd_packets,
		CASE WHEN g % 2 = 0 THEN 'BENIGN' ELSE 'DDoS' END AS label
	FROM generate_series(1, 400) g;
SELECT ok(nids_train('tap_flows', model => 'tap', options => '{"xgboost": {"num_boost_round": 3}}') ? 'version',
	'a model to alert with');
CREATE TABLE tap_live (destination_port float8, total_fwd_packets float8, source_ip inet, "timestamp" timestamptz);
CREATE TRIGGER alerts AFTER INSERT ON tap_live REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger('tap');
GRANT INSERT ON tap_live TO nids_t_ingest;
GRANT SELECT ON tap_flows TO nids_t_ingest;
GRANT USAGE ON SCHEMA public TO nids_t_ingest, nids_t_analyst, nids_t_nobody;

SET ROLE nids_t_ingest;
SELECT throws_ok($$INSERT INTO tap_live SELECT destination_port, total_fwd_packets, '10.1.1.1', now()
	FROM tap_flows WHERE label = 'DDoS'$$, '42501', 'role "nids_t_ingest" may not raise incidents',
	'a role that may insert flows but is no feeder raises no incident: its insert fails');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM tap_live), 0, 'and no flow is kept half-way');
GRANT nids_feeder TO nids_t_ingest;
SET ROLE nids_t_ingest;
SELECT lives_ok($$INSERT INTO tap_live SELECT destination_port, total_fwd_packets, '10.1.1.1', now()
	FROM tap_flows WHERE label = 'DDoS'$$, 'a feeder that may only insert flows opens incidents');
SELECT throws_ok($$SELECT count(*) FROM nids.alerts$$, '42501', NULL, 'but cannot read them');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM nids.alerts WHERE src_ip = '10.1.1.1' AND class = 'DDoS'), 1,
	'one DDoS incident');

SET ROLE nids_t_analyst;
SELECT ok((SELECT count(*) FROM nids.alerts) > 0, 'an analyst reads incidents');
SELECT is((SELECT count(*) FROM nids.alerts_eve), (SELECT count(*) FROM nids.alerts), 'and their EVE lines');
SELECT lives_ok($$UPDATE nids.alerts SET status = 'acknowledged', note = 'looking at it'$$,
	'sets status and note');
SELECT throws_ok($$UPDATE nids.alerts SET flows = 0$$, '42501', NULL, 'but nothing else');
SELECT throws_ok($$DELETE FROM nids.alerts$$, '42501', NULL, 'deletes nothing');
SELECT throws_ok($$INSERT INTO nids.alert_suppressions (src_ip) VALUES ('10.0.0.0/8')$$, '42501', NULL,
	'suppresses nothing');
SELECT throws_ok($$SELECT nids_alerts_from('SELECT * FROM tap_live', 'tap')$$, '42501', NULL,
	'runs no backfill');
RESET ROLE;

SET ROLE nids_t_nobody;
SELECT throws_ok($$SELECT count(*) FROM nids.alerts_eve$$, '42501', NULL, 'PUBLIC reads no incident');
RESET ROLE;
SELECT ok(pg_has_role('nids_admin', 'nids_analyst', 'MEMBER'), 'nids_admin is an analyst too');
SELECT ok(pg_has_role('nids_admin', 'nids_feeder', 'MEMBER'), 'and a feeder');
SELECT is((SELECT status FROM nids.alerts WHERE src_ip = '10.1.1.1' AND class = 'DDoS'), 'acknowledged',
	'the status set stays');

SELECT * FROM finish();
ROLLBACK;
