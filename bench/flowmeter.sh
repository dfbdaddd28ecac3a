#!/usr/bin/env bash
# nids-flowmeter against the reference meter, on one core (taskset -c 0):
# - packets/s and flows/s, both writing the CSV of the same flows, on a
#   capture of PACKETS frames (default 836,120) replayed from real ones
#   (the development captures, or the committed few), and whether the
#   flows agree;
# - peak RSS on a 37,841-packet SYN flood;
# - end to end into PostgreSQL, into a flow table with the scoring, alert
#   and scan triggers: flows/s, and the meter's CPU against the server's.
# Ratios are against the reference measured in the same run.  Needs the
# reference's Java packages (scripts/setup --with-reference installs them).
#   bench/flowmeter.sh [DATA]      DATA: flows to train the model (bench/common.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup --with-reference
. bench/common.sh "${1:-data/cicids2017-improved-sample.csv.gz}"
BIN=$(/usr/lib/postgresql/15/bin/pg_config --bindir)
METER=$BIN/nids-flowmeter
REF=../shared/flowmeter/reference/reference-meter
PACKETS=${PACKETS:-836120}
out=$BENCH_TMP/fm
mkdir -p "$out"
if [ -d ../shared/flowmeter/pcaps ]; then caps=../shared/flowmeter/pcaps; else caps=test/flowmeter/captures; fi
python3 bench/flowmeter_gen.py replay "$out/replay.pcap" "$PACKETS" "$caps"/*.pcap
python3 bench/flowmeter_gen.py synflood "$out/synflood.pcap" 37841
one() { taskset -c 0 python3 bench/rusage.py "$@"; }

echo "== CSV of the same flows, one core, $PACKETS packets ($(du -h "$out/replay.pcap" | cut -f1))"
read -r m_cpu m_wall m_rss m_rc < <(one --out "$out/ours.csv" "$METER" -q -r "$out/replay.pcap" --csv)
flows=$(($(wc -l <"$out/ours.csv") - 1))
printf "nids-flowmeter: %.2f s wall, %.2f s CPU, %d flows, %.0f packets/s, %.0f flows/s, peak RSS %d MB\n" \
	"$m_wall" "$m_cpu" "$flows" "$(echo "$PACKETS / $m_wall" | bc -l)" "$(echo "$flows / $m_wall" | bc -l)" $((m_rss / 1024))
if [ -x "$REF" ] && command -v java >/dev/null; then
	read -r r_cpu r_wall r_rss r_rc < <(one "$REF" "$out/replay.pcap" "$out/ref.csv")
	printf "reference:      %.2f s wall, %.2f s CPU, %.0f packets/s, peak RSS %d MB\n" \
		"$r_wall" "$r_cpu" "$(echo "$PACKETS / $r_wall" | bc -l)" $((r_rss / 1024))
	printf "speed: %.1fx the reference's packets/s (goal >= 30x)\n" "$(echo "$r_wall / $m_wall" | bc -l)"
	echo "flows: $(python3 test/flowmeter/compare.py "$out/ref.csv" "$out/ours.csv" --report 3 || true)"

	echo "== memory on a SYN flood of 37,841 packets"
	read -r m_cpu m_wall m_rss m_rc < <(one "$METER" -q -r "$out/synflood.pcap" --csv)
	read -r r_cpu r_wall r_rss r_rc < <(one "$REF" "$out/synflood.pcap" "$out/ref_flood.csv")
	printf "peak RSS: nids-flowmeter %d MB, reference %d MB: %.3fx (goal <= 0.1x)\n" \
		$((m_rss / 1024)) $((r_rss / 1024)) "$(echo "$m_rss / $r_rss" | bc -l)"
else
	echo "the reference meter is not runnable here (Java and scripts/setup --with-reference): no ratios"
fi

echo "== into PostgreSQL with the scoring, alert and scan triggers"
P -c "SELECT nids_train('flows', model => 'default', options => '{\"xgboost\": {\"num_boost_round\": 20}}') ? 'version'" >/dev/null
# the table as the meter makes it, then the triggers
"$METER" -q -r "$out/synflood.pcap" -f "host 192.0.2.1" -t live >/dev/null
P -c "ALTER TABLE live ADD COLUMN predicted_label text, ADD COLUMN probability float8, ADD COLUMN novelty float8, ADD COLUMN verdict text;
	CREATE TRIGGER score BEFORE INSERT ON live FOR EACH ROW EXECUTE FUNCTION nids_score_trigger();
	CREATE TRIGGER alerts AFTER INSERT ON live REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION nids_alert_trigger();
	CREATE TRIGGER scans AFTER INSERT ON live REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger();"
server_cpu() {
	local pid=$1
	awk '{print ($14 + $15) / 100}' "/proc/$pid/stat" 2>/dev/null || echo 0
}
taskset -c 0 python3 bench/rusage.py "$METER" -q -r "$out/replay.pcap" -t live --batch-rows 1000 >"$out/e2e" &
runner=$!
pid=
last=0
while kill -0 "$runner" 2>/dev/null; do
	[ -z "$pid" ] && pid=$(P -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'nids-flowmeter'" || true)
	[ -n "$pid" ] && last=$(server_cpu "$pid")
	sleep 0.2
done
wait "$runner"
read -r e_cpu e_wall e_rss e_rc <"$out/e2e"
rows=$(P -At -c "SELECT count(*) FROM live")
printf "%d flows into the table in %.2f s: %.0f flows/s end to end; the meter used %.2f s CPU, its server backend %.2f s (meter %.0f%% of the two)\n" \
	"$rows" "$e_wall" "$(echo "$rows / $e_wall" | bc -l)" "$e_cpu" "$last" "$(echo "100 * $e_cpu / ($e_cpu + $last)" | bc -l)"
check_rows=$(P -At -c "SELECT count(*) = count(DISTINCT (flow_id, \"timestamp\")) FROM live")
echo "rows equal the flows: $([ "$rows" = "$flows" ] && echo yes || echo "no ($rows rows, $flows flows)"); each once: $check_rows"
P -At -c "SELECT 'incidents: ' || count(*) || ' (' || count(*) FILTER (WHERE kind = 'scan') || ' scans)' FROM nids.alerts"
