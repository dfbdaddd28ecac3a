#!/usr/bin/env bash
# Importing a large XGBoost document: the backend's peak memory as a multiple
# of the document's size, and how long a cancel (statement_timeout = 1 s)
# takes to stop it.  The document is a real XGBoost model (the softprob
# fixture, made by XGBoost) with its trees repeated.
#   bench/import_memory.sh [SIZE_MB]      default 50
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-50}
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
scripts/setup --with-python
make -s all >/dev/null
scripts/install
work=$(mktemp -d "${TMPDIR:-/tmp}/nids-import.XXXXXX")
chmod 755 "$work"
trap 'scripts/tmpcluster stop "$work/pg"; rm -rf "$work"' EXIT
. "$(MALLOC_PERTURB_=0 scripts/tmpcluster start "$work/pg")"
P() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
P -c 'CREATE EXTENSION nids'
# the fixture's softprob model, as XGBoost wrote it
P -At -c "\\i test/fixtures/xgb_fixtures.sql" -c "\\copy (SELECT convert_from(booster, 'UTF8') FROM fx_models WHERE name = 'softprob_json') TO '$work/small.json'" >/dev/null
trees=$(/usr/bin/python3 bench/import_memory.py "$work/small.json" "$SIZE_MB" "$work/big.json")
chmod 644 "$work/big.json"
bytes=$(stat -c %s "$work/big.json")
features=$(P -At -c "\\i test/fixtures/xgb_fixtures.sql" -c "SELECT features::text FROM fx_models WHERE name = 'softprob_json'" | tail -1)
classes=$(P -At -c "\\i test/fixtures/xgb_fixtures.sql" -c "SELECT classes::text FROM fx_models WHERE name = 'softprob_json'" | tail -1)
out=$(P -At <<SQL
SELECT 'import_ms ' || round(extract(epoch FROM clock_timestamp() - now()) * 1000) FROM (SELECT nids_import_xgboost('big', pg_read_binary_file('$work/big.json'), '$features', '$classes')) s;
SELECT line FROM regexp_split_to_table(pg_read_file('/proc/' || pg_backend_pid() || '/status'), E'\n') line WHERE line LIKE 'VmHWM%';
SQL
)
hwm=$(awk '/VmHWM/ {print $2}' <<<"$out")
base=$(P -At -c "SELECT 1" -c "SELECT line FROM regexp_split_to_table(pg_read_file('/proc/' || pg_backend_pid() || '/status'), E'\n') line WHERE line LIKE 'VmHWM%'" | awk '/VmHWM/ {print $2}')
start=$(date +%s.%N)
P -c "SET statement_timeout = '1s'" -c "SELECT nids_import_xgboost('big2', pg_read_binary_file('$work/big.json'), '$features', '$classes')" >/dev/null 2>&1 || true
end=$(date +%s.%N)
echo "document: $((bytes / 1000000)) MB, $trees trees; $(awk '/import_ms/ {print $2}' <<<"$out") ms to import"
awk -v h="$hwm" -v b="$base" -v s="$bytes" 'BEGIN {printf "backend peak RSS %.0f MB (an idle backend: %.0f MB): %.1fx the document\n", h / 1024, b / 1024, (h - b) * 1024 / s}'
awk -v a="$start" -v b="$end" 'BEGIN {printf "with statement_timeout = 1s, the import returned after %.2f s\n", b - a}'
