#!/usr/bin/env bash
# scripts/install (what make test and make demo run) refuses to replace an
# installed nids library that a running server has loaded when the new one
# differs, and says which processes hold it; it goes ahead when nothing
# holds it or the library is the same.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
tmp=$(mktemp -d)
cleanup() {
	psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LOAD%pg_sleep%' AND pid <> pg_backend_pid()" >/dev/null 2>&1
	kill "$holder" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
installed="$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)/nids.so"

# a copy of the script beside a "newly built" library that differs; make is
# never reached when it refuses
mkdir -p "$tmp/scripts"
cp scripts/install "$tmp/scripts/install"
cp "$installed" "$tmp/nids.so"
printf 'x' >>"$tmp/nids.so"

# a backend that has loaded nids, kept open
psql -X -q -d postgres -c "LOAD 'nids'; SELECT pg_sleep(60)" >/dev/null 2>&1 &
holder=$!
up=0
for _ in $(seq 50); do
	[ "$(psql -X -A -t -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LOAD%pg_sleep%' AND pid <> pg_backend_pid()")" -ge 1 ] && { up=1; break; }
	sleep 0.1
done
check "a backend holds nids loaded" test "$up" -eq 1
out=$(bash "$tmp/scripts/install" 2>&1)
rc=$?
check "a different library is not installed under a server that has nids loaded (exit $rc)" test "$rc" -eq 3
check "the refusal names the installed library and the way round it" \
	bash -c "grep -qF '$installed' <<<\"\$0\" && grep -q NIDS_REPLACE_INSTALLED <<<\"\$0\"" "$out"

echo "install_guard: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
