#!/usr/bin/env bash
# make demo on a server that is already there (PGHOST, PGPORT, PGDATABASE,
# PGUSER set, as the test cluster's are): nothing built or installed when
# the server offers nids, the database named used (created when missing),
# a database with models or the demo's tables refused, what it made left
# there.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
DB=nids_demo_external_test
work=$(mktemp -d)
trap 'rm -rf "$work"; dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
dropdb --if-exists "$DB" >/dev/null 2>&1

PGDATABASE=$DB scripts/demo >"$work/out" 2>&1
rc=$?
check "the demo runs on the named server (exit $rc)" test "$rc" = 0
check "it says so, and builds and installs nothing" \
	grep -q "the server offers the nids extension: nothing is built or installed" "$work/out"
check "no throwaway cluster" bash -c "! grep -q 'throwaway cluster is removed' '$work/out'"
check "the missing database is created, and the demo's work is in it" \
	test "$(psql -X -At -d "$DB" -c "SELECT (SELECT count(*) FROM flows) > 0 AND (SELECT count(*) FROM nids.models WHERE name = 'default') > 0")" = t
check "the end says what stays and how to remove it" grep -q "remove them with: dropdb $DB" "$work/out"

PGDATABASE=$DB scripts/demo >"$work/again" 2>&1
rc=$?
check "a database that holds models and the demo's tables is refused (exit $rc)" test "$rc" = 3
check "naming what it holds" grep -q "already holds public.flows, public.known_flows.*nids models (default)" "$work/again"
check "and the model is untouched" \
	test "$(psql -X -At -d "$DB" -c "SELECT count(*) FROM nids.models WHERE name = 'default'")" = 1

PGPORT=1 PGDATABASE=$DB scripts/demo >"$work/noserver" 2>&1
rc=$?
check "no server there: an error that says so (exit $rc)" \
	bash -c "test $rc = 1 && grep -q 'cannot reach database $DB' '$work/noserver'"

echo "demo_external: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
