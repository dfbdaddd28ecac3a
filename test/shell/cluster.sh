#!/usr/bin/env bash
# make demo-cluster (scripts/cluster) with two shards: the catalogue
# replicated to the shards, flows scored at insert there, the distributed
# verdict summary computed by the shards, IMMUTABLE scoring by version id
# shipped to them, and the merged drift equal to ks_drift on one node.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT

env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS scripts/cluster 2 >"$out" 2>&1
rc=$?
check "scripts/cluster 2 exits 0" test "$rc" -eq 0
check "each shard scored its flows at insert with the replicated model" \
	test "$(grep -Ec '^shard_[12]: [0-9]+ flows, [0-9]+ flagged at insert' "$out")" = 2
check "the verdict summary adds every flow of the sample" \
	test "$(sed -n '/== distributed verdict summary/,/rows)/p' "$out" | awk -F'|' '/^ (anomaly|attack|benign)/ {s += $2} END {print s}')" = 3651
check "and each shard counts its own (GROUP BY runs remotely, async)" \
	test "$(grep -c 'Remote SQL: SELECT verdict, count(\*) FROM public.flows GROUP BY 1' "$out")" = 2
check "IMMUTABLE scoring by version id is shipped to the shards" \
	test "$(grep -c 'Remote SQL: SELECT public.nids_classify_at(' "$out")" = 2
check "the merged drift equals ks_drift over all the flows" \
	grep -Eq '^ +([0-9]+) \| +\1$' <(sed -n '/same_as_one_node/,/rows)/p' "$out")
check "drift reports logged on the coordinator and both shards have distinct ids" \
	grep -q "^3 reports, 3 distinct ids" "$out"
[ "$rc" -eq 0 ] || tail -n 20 "$out"
echo "cluster: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
