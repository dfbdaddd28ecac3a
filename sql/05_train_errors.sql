-- Bad input to nids_train: a clear message and a specific SQLSTATE each,
-- and nothing registered.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS nids;
RESET client_min_messages;
\set SHOW_CONTEXT never
SELECT count(*) AS models_before FROM nids.models \gset
CREATE TABLE t (flow_duration float8, destination_port int, flow_bytes_s numeric, note float8, label text);
INSERT INTO t SELECT g, g % 7, g % 3, g, CASE WHEN g % 2 = 0 THEN 'BENIGN' ELSE 'y' END FROM generate_series(1, 200) g;

-- options
SELECT nids_train('t', options => '{"colour": "red"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"test_size": 0.95}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"test_size": "a lot"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"correlation_threshold": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"seed": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"deploy": "yes"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"exclude": "a"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"benign_label": ""}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"xgboost": {"eta": 0}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"xgboost": {"max_depth": 2.5}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"xgboost": {"tree_method": "gpu_hist"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"xgboost": {"objective": "reg:squarederror"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"xgboost": {"booster": "dart"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"xgboost": {"num_boost_round": 0}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"iforest": {"trees": 0}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"iforest": {"benign_fpr": 0.9}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"iforest": {"depth": 3}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"iforest": {"scale": "cubic"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"iforest": {"scale": 10}}');
\echo :LAST_ERROR_SQLSTATE

-- the source
SELECT nids_train('no_such_table');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', 'no_such_column');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE empty (flow_duration float8, label text);
SELECT nids_train('empty');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE one_class AS SELECT g::float8 AS flow_duration, 'x'::text AS label FROM generate_series(1, 10) g;
SELECT nids_train('one_class');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE no_numbers AS SELECT g::text AS flow_duration, (g % 2)::text AS label FROM generate_series(1, 10) g;
SELECT nids_train('no_numbers');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE constant AS SELECT 1::float8 AS flow_duration, 2::float8 AS flow_bytes_s, CASE WHEN g % 2 = 0 THEN 'BENIGN' ELSE 'y' END AS label FROM generate_series(1, 10) g;
SELECT nids_train('constant');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE same_name ("Flow Bytes/s" float8, flow_bytes_s float8, label text);
INSERT INTO same_name VALUES (1, 2, 'a'), (2, 3, 'b');
SELECT nids_train('same_name');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', model => '');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', model => 'm@2');
\echo :LAST_ERROR_SQLSTATE

-- mistakes in options that name the data
SELECT nids_train('t', options => '{"exclude": ["flow_duratoin"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"include": ["notes"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"include": ["label"]}');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE t_text AS SELECT *, 'x'::text AS site FROM t;
SELECT nids_train('t_text', options => '{"include": ["site"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"benign_label": "Normal"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train('t', options => '{"deploy": "maybe"}');
\echo :LAST_ERROR_SQLSTATE
SELECT nids_train(NULL);
\echo :LAST_ERROR_SQLSTATE

-- cancelled by statement_timeout: promptly, and nothing registered
CREATE TABLE big AS SELECT random() AS flow_duration, random() AS flow_bytes_s, random() AS flow_iat_mean,
	CASE WHEN g % 5 = 0 THEN 'BENIGN' ELSE (g % 5)::text END AS label FROM generate_series(1, 20000) g;
SET statement_timeout = '1s';
SELECT nids_train('big', model => 'cancelled', options => '{"xgboost": {"num_boost_round": 10000, "max_depth": 12}}');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;

SELECT count(*) - :models_before AS registered FROM nids.models;

DROP TABLE t, t_text, empty, one_class, no_numbers, constant, same_name, big;
