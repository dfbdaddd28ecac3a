#!/usr/bin/env bash
# `make demo`, the second command of the README, runs to the end and tells
# the whole story; `make demo DATA=dir` passes the directory to the demo
# without taking PGXS's DATA (the extension's SQL script) away from install.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "$0")/../.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT

env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s demo >"$out" 2>&1
rc=$?
check "make demo exits 0" test "$rc" -eq 0
for part in "== training" "== per-class metrics" "== confusion matrix" "== the novelty gate" \
	"== scoring a few flows" "== live flows scored on insert" "== drift" "cron"; do
	check "make demo shows: $part" grep -q -- "$part" "$out"
done
check "the trigger's verdicts are printed" grep -Eq '^ (attack|benign) +\| +[0-9]+' "$out"
[ "$rc" -eq 0 ] || tail -n 20 "$out"

dry=$(env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -n demo DATA=/some/csv/dir 2>&1)
check "make demo DATA=dir passes the directory" grep -q -- '--data "/some/csv/dir"' <<<"$dry"
dry=$(env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -n install DATA=/some/csv/dir 2>&1)
check "and install still installs nids--1.0.sql" grep -q 'nids--1.0.sql' <<<"$dry"
check "and not the directory" bash -c '! grep -q "/some/csv/dir" <<<"$1"' _ "$dry"

echo "demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
