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

# without PGHOST and the rest: the throwaway cluster of a fresh machine
env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u PGHOST -u PGPORT -u PGDATABASE -u PGUSER make -s demo >"$out" 2>&1
rc=$?
check "make demo exits 0" test "$rc" -eq 0
for part in "loading the real CIC-IDS2017 sample" "== training" "== per-class metrics" \
	"== confusion matrix" "== the novelty gate" "== a zero-day: the Infiltration flows" \
	"== scoring a few flows" "== why: nids_explain" "== live flows scored on insert" \
	"== incidents: the flagged flows" "one incident as a Suricata EVE line" "why its most confident flow" \
	"== scans: what no single flow shows" "first contacts to new ports of one host failed" \
	"== packets in: nids-flowmeter" "scan | PortScan" \
	"== drift: ks_drift on another capture" "== health" "cron"; do
	check "make demo shows: $part" grep -q -- "$part" "$out"
done
check "the trigger's verdicts are printed" grep -Eq '^ (attack|benign) +\| +[0-9]+' "$out"
check "an EVE line is printed" grep -q '"event_type": "alert"' "$out"
check "incidents are few: far fewer than flagged flows" \
	bash -c "sed -n '/== incidents/,/^ *sev/p' '$out' | awk -F'|' 'NF == 2 && \$1 + 0 > 0 {exit !(\$2 * 5 < \$1)}'"
check "health says alarm on the other capture" grep -Eq '^ overall +\| +[0-9]+ +\| +0 +\| alarm' "$out"
check "real data: per-class F1 is not 1.000 everywhere" \
	bash -c "sed -n '/== per-class metrics/,/== confusion/p' '$out' | grep -Eq '\| 0\.[0-9]{3} \|'"
[ "$rc" -eq 0 ] || tail -n 20 "$out"

env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u PGHOST -u PGPORT -u PGDATABASE -u PGUSER make -s demo GENERATED=1 >"$out" 2>&1
check "make demo GENERATED=1 runs on generated flows" test $? -eq 0
check "and says so" grep -q "generating 20000" "$out"

dry=$(env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -n demo DATA=/some/csv/dir 2>&1)
check "make demo DATA=dir passes the directory" grep -q -- '--data "/some/csv/dir"' <<<"$dry"
dry=$(env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -n install DATA=/some/csv/dir 2>&1)
check "and install still installs nids--1.0.sql" grep -q 'nids--1.0.sql' <<<"$dry"
check "and not the directory" bash -c '! grep -q "/some/csv/dir" <<<"$1"' _ "$dry"

echo "demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
