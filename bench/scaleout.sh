#!/usr/bin/env bash
# Scale-out on one machine (issue "past one machine"): the distributed
# verdict summary and the distributed drift report of scripts/cluster,
# against the same queries on one node holding the same rows, and the work
# each shard does.  On a 2-core machine the shards share the cores, so the
# distributed times measure overhead, not speed-up: the per-shard times are
# what a shard on its own server would take.
#   SHARDS=2 ROWS=200000 bench/scaleout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDS=${SHARDS:-2}
ROWS=${ROWS:-200000}
log=$(mktemp)
KEEP=1 scripts/cluster "$SHARDS" >"$log" 2>&1 || { tail -20 "$log"; exit 1; }
envfile=$(sed -n 's/.*left running: \. \([^;]*\);.*/\1/p' "$log")
# shellcheck disable=SC1090
. "$envfile"
trap 'scripts/tmpcluster stop "$(dirname "$envfile")"; rm -f "$log"' EXIT
export PGOPTIONS="-c client_min_messages=warning"
P() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
t() { # db sql: seconds, best of 3
	local db=$1 sql=$2
	for _ in 1 2 3; do
		P "$db" -At -c "\\timing on" -c "$sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
	done | sort -n | head -1 | awk '{printf "%.3f", $1 / 1000}'
}

# each shard grows its own flows to ROWS / SHARDS (scored at insert)
names=$(P shard_1 -Atc "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 'flows'::regclass AND attnum > 0 AND NOT attisdropped
	AND attname NOT IN ('predicted_label', 'novelty', 'verdict')")
for i in $(seq "$SHARDS"); do
	P "shard_$i" -c "INSERT INTO flows ($names) SELECT $names FROM flows,
		generate_series(1, ceil($ROWS / $SHARDS / (SELECT count(*) FROM flows)::float8)::int - 1)" -c "ANALYZE flows"
done
P coordinator -c "CREATE TABLE all_flows AS SELECT * FROM flows" -c "ANALYZE all_flows"
total=$(P coordinator -Atc "SELECT count(*) FROM all_flows")
union=$(for i in $(seq "$SHARDS"); do printf "SELECT verdict, count(*) AS flows FROM flows_%s GROUP BY verdict UNION ALL " "$i"; done | sed 's/ UNION ALL $//')
counts=$(for i in $(seq "$SHARDS"); do printf "SELECT * FROM drift_counts_%s UNION ALL " "$i"; done | sed 's/ UNION ALL $//')

echo "machine: $(nproc) cores; $SHARDS shards (databases of one server); $total flows"
printf '%-46s %10s\n' "" "seconds"
one_v=$(t coordinator "SELECT verdict, count(*) FROM all_flows GROUP BY 1")
dist_v=$(t coordinator "SELECT verdict, sum(flows) FROM ($union) s GROUP BY 1")
one_d=$(t coordinator "SELECT count(*) FROM ks_drift('SELECT * FROM all_flows')")
dist_d=$(t coordinator "SELECT count(*) FROM ks_drift_merge('$counts')")
printf '%-46s %10s\n' "verdict summary, one node" "$one_v" "verdict summary, distributed" "$dist_v" \
	"drift (ks_drift), one node" "$one_d" "drift (ks_drift_merge of counts), distributed" "$dist_d"
for i in $(seq "$SHARDS"); do
	printf '%-46s %10s\n' "shard_$i alone: verdict counts" "$(t "shard_$i" "SELECT verdict, count(*) FROM flows GROUP BY 1")" \
		"shard_$i alone: drift counts" "$(t "shard_$i" "SELECT count(*) FROM drift_counts")"
done
awk -v a="$dist_v" -v b="$one_v" -v c="$dist_d" -v d="$one_d" 'BEGIN {
	printf "distributed / one node: summary %.2fx, drift %.2fx\n", a / b, c / d }'
