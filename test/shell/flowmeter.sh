#!/usr/bin/env bash
# nids-flowmeter against the reference meter, and into PostgreSQL:
# - every capture's --csv equals the reference's CSV beside it (flows matched
#   by Flow ID and start time; integers equal, reals within 1e-9): the 95
#   development captures of ../shared/flowmeter when it is there, else the
#   few committed in test/flowmeter/captures (never skipped);
# - valgrind finds nothing on the committed captures;
# - -t TABLE writes what nids-load makes of the reference's CSV, row for row;
#   a table that does not fit and a missing server are refused before any
#   packet is read; the scan trigger finds the scan in flows written so;
# - a live capture on the loopback interface of the test's own TCP and UDP
#   exchanges with 127.0.0.1 (nothing leaves the machine), into a table,
#   with the server stopped and started again while flows wait;
# - bad input: not a capture, a capture cut short, bad usage.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
BIN=$(/usr/lib/postgresql/15/bin/pg_config --bindir)
METER=${NIDS_FLOWMETER:-$BIN/nids-flowmeter}
LOAD=${NIDS_LOAD:-$BIN/nids-load}
DB=nids_flowmeter_test
work=$(mktemp -d)
chmod 755 "$work"
bg=
cleanup() {
	[ -n "$bg" ] && kill "$bg" 2>/dev/null
	rm -rf "$work"
	dropdb --if-exists "$DB" >/dev/null 2>&1
}
trap cleanup EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

# 1. every capture against the reference
if [ -d ../shared/flowmeter/pcaps ]; then
	caps=../shared/flowmeter/pcaps
else
	caps=test/flowmeter/captures
fi
# link types the reference does not decode (Linux cooked capture): it writes
# no flow of them, nids-flowmeter reads their flows
unread=" nfstream-mdns nfstream-reasm_crash_anon-ng "
ncap=0
nflows=0
bad=0
for cap in "$caps"/*.pcap "$caps"/*.pcapng; do
	csv=${cap%.*}.csv
	[ -f "$csv" ] || continue
	name=$(basename "${cap%.*}")
	ncap=$((ncap + 1))
	if ! "$METER" -q -r "$cap" --csv >"$work/ours.csv" 2>"$work/err"; then
		bad=$((bad + 1))
		echo "# $name: exit $?: $(head -1 "$work/err")"
		continue
	fi
	if [[ $unread == *" $name "* ]]; then
		if [ "$(wc -l <"$csv")" -ne 1 ] || [ "$(wc -l <"$work/ours.csv")" -le 1 ]; then
			bad=$((bad + 1))
			echo "# $name: expected no reference flow and some of ours"
		fi
		continue
	fi
	nflows=$((nflows + $(wc -l <"$csv") - 1))
	if ! out=$(python3 test/flowmeter/compare.py "$csv" "$work/ours.csv" --report 3); then
		bad=$((bad + 1))
		echo "# $name: $out"
	fi
done
check "$ncap captures in $caps: nids-flowmeter's flows equal the reference's ($nflows flows, $bad captures differ)" \
	test "$ncap" -ge 8 -a "$bad" -eq 0

# edge cases made byte by byte (every TCP flag combination, teardowns,
# timeouts, bulks, IPv4 and TCP header oddities, fragments, ICMP, the second
# reading of frames without IPv4), against the reference's CSVs of them
python3 test/flowmeter/edge_cases.py "$work/edge" >/dev/null
ebad=0
eflows=0
for csv in test/flowmeter/edge/edge-*.csv; do
	name=$(basename "$csv" .csv)
	"$METER" -q -r "$work/edge/$name.pcap" --csv >"$work/edge.csv" 2>/dev/null
	eflows=$((eflows + $(wc -l <"$csv") - 1))
	out=$(python3 test/flowmeter/compare.py "$csv" "$work/edge.csv" --report 3) || { ebad=$((ebad + 1)); echo "# $name: $out"; }
done
check "edge cases: the reference's flows ($eflows flows, $ebad cases differ)" test "$ebad" -eq 0 -a "$eflows" -gt 300

if command -v valgrind >/dev/null; then
	vbad=0
	for cap in test/flowmeter/captures/*.pcap test/flowmeter/captures/*.pcapng; do
		valgrind -q --error-exitcode=9 --leak-check=full "$METER" -q -r "$cap" --csv >/dev/null 2>"$work/vg" ||
			{ vbad=$((vbad + 1)); head -5 "$work/vg" | sed 's/^/# /'; }
	done
	check "valgrind: no error and no leak on the committed captures" test "$vbad" -eq 0
else
	check "valgrind is installed (scripts/setup)" false
fi

# link types beyond the reference's: the same frames under Linux cooked
# capture headers give the same flows; IPv6 flows are written too
"$METER" -q -r test/flowmeter/captures/nfstream-synscan.pcap --csv >"$work/eth.csv"
for kind in sll sll2; do
	python3 test/flowmeter/relink.py "$kind" test/flowmeter/captures/nfstream-synscan.pcap "$work/$kind.pcap"
	"$METER" -q -r "$work/$kind.pcap" --csv >"$work/$kind.csv"
	out=$(python3 test/flowmeter/compare.py "$work/eth.csv" "$work/$kind.csv")
	check "Linux cooked capture ($kind): the same flows as over Ethernet ($out)" \
		test "$out" = "matched 1994 of 1994 reference flows, 0 of ours unmatched"
done
"$METER" -q -r test/flowmeter/captures/nfstream-iphone.pcap --csv >"$work/v6.csv"
check "IPv6 flows are written beside the IPv4 ones ($(grep -c '^[0-9a-f:]*:[0-9a-f:]*-' "$work/v6.csv") of them)" \
	test "$(grep -c '^[0-9a-f:]*:[0-9a-f:]*-' "$work/v6.csv")" -gt 0
# -r -: a capture on standard input (a pipe: no size, no seeking)
out=$(cat test/flowmeter/captures/nfstream-synscan.pcap | "$METER" -q -r - --csv | cmp - "$work/eth.csv" && echo same)
check "-r - reads a capture from a pipe: the same flows ($out)" test "$out" = same
# --max-flows: the idlest flows are written early, and counted
"$METER" -q -r test/flowmeter/captures/nfstream-synscan.pcap --csv --max-flows 10 --stats "$work/mf.json" >"$work/mf.csv"
rc=$?
check "--max-flows 10: exit $rc, flows evicted and counted ($(cat "$work/mf.json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["evicted"], "evicted,", d["flows"], "flows")'))" \
	python3 -c "import json,sys; d=json.load(open('$work/mf.json')); sys.exit(0 if $rc == 0 and d['evicted'] > 1900 and d['flows'] >= 1994 else 1)"

# 2. into PostgreSQL
createdb "$DB" || exit 1
q "CREATE EXTENSION nids" || exit 1
fix=test/flowmeter/captures
"$METER" -q -r "$fix/nfstream-synscan.pcap" -r "$fix/nfstream-nintendo.pcap" -t meter -d "$DB"
rc=$?
"$LOAD" -d "$DB" -t ref "$fix/nfstream-synscan.csv" "$fix/nfstream-nintendo.csv" >/dev/null 2>&1
check "-t TABLE: the meter's table (exit $rc) ..." test "$rc" -eq 0
check "... equals nids-load of the reference's CSV, row for row" \
	test "$(q "SELECT (SELECT count(*) FROM meter) || ' ' || (SELECT count(*) FROM ref) || ' ' ||
		(SELECT count(*) FROM (SELECT * FROM meter EXCEPT ALL SELECT * FROM ref) a) || ' ' ||
		(SELECT count(*) FROM (SELECT * FROM ref EXCEPT ALL SELECT * FROM meter) b)")" = "2016 2016 0 0"
check "... with the canonical columns and types the triggers read" \
	test "$(q "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'meter'::regclass AND attname IN ('source_ip', 'destination_ip', 'timestamp', 'source_port', 'destination_port')")" = \
	"source_ip inet, source_port integer, destination_ip inet, destination_port double precision, timestamp timestamp with time zone"

q "CREATE TABLE misfit (source_ip inet, flow_duration text)" >/dev/null
"$METER" -q -r "$fix/nfstream-synscan.pcap" -t misfit -d "$DB" 2>"$work/err"
rc=$?
check "a table whose columns do not fit is refused (exit $rc: $(head -1 "$work/err"))" \
	test "$rc" -eq 2 -a "$(q "SELECT count(*) FROM misfit")" = 0
"$METER" -q -r "$fix/nfstream-synscan.pcap" -t meter -h "$work/no-server-here" -d "$DB" 2>"$work/err"
rc=$?
check "no server: exit 2 before any packet is read ($(head -1 "$work/err" | cut -c1-80))" test "$rc" -eq 2

# the scan trigger on flows the meter writes: the SYN scan opens an incident
"$METER" -q -r "$fix/nfstream-synscan.pcap" -f "host 192.0.2.1" -t scanned -d "$DB"
q "CREATE TRIGGER scans AFTER INSERT ON scanned REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION nids_scan_trigger()" >/dev/null
"$METER" -q -r "$fix/nfstream-synscan.pcap" -t scanned -d "$DB" --batch-rows 500
check "into a table with the scan trigger: the SYN scan is a scan incident ($(q "SELECT string_agg(class || ' from ' || host(src_ip), ', ') FROM nids.alerts WHERE kind = 'scan'"))" \
	test "$(q "SELECT count(*) FROM nids.alerts WHERE kind = 'scan'")" -ge 1

# 3. bad input
echo "not a capture" >"$work/text.pcap"
"$METER" -q -r "$work/text.pcap" --csv >/dev/null 2>"$work/err"
rc=$?
check "a file that is not a capture: exit 1, naming it ($(head -1 "$work/err" | cut -c1-90))" \
	test "$rc" -eq 1 -a "$(grep -c "text.pcap" "$work/err")" -ge 1
head -c 70000 "$fix/nfstream-synscan.pcap" >"$work/cut.pcap"
"$METER" -q -r "$work/cut.pcap" --csv >"$work/cut.csv" 2>"$work/err"
rc=$?
check "a capture cut short: exit 1, naming the file and the packet ($(head -1 "$work/err" | cut -c1-90))" \
	test "$rc" -eq 1 -a "$(grep -c "cut.pcap: packet [0-9]" "$work/err")" -ge 1
check "... and the flows read before it are written" test "$(wc -l <"$work/cut.csv")" -gt 100
"$METER" -q --csv >/dev/null 2>&1
check "no input: exit 1" test $? -eq 1
"$METER" -q -r "$fix/nfstream-raw.pcap" --csv -t x >/dev/null 2>&1
check "--csv and -t together: exit 1" test $? -eq 1
"$METER" -q -r "$fix/nfstream-raw.pcap" --csv --batch-rows 0 >/dev/null 2>&1
check "--batch-rows 0: exit 1" test $? -eq 1
"$METER" -q -r "$fix/nfstream-raw.pcap" -f "not a filter (" --csv >/dev/null 2>"$work/err"
rc=$?
check "a bad BPF filter: exit 1 ($(head -1 "$work/err" | cut -c1-70))" test $rc -eq 1
"$METER" -q -r "$fix/nfstream-fuzz-2021-06-07-c6c72a0a56.pcap" --csv --stats "$work/stats.json" >/dev/null
check "--stats writes the counts as JSON" python3 -c "import json,sys; d=json.load(open('$work/stats.json')); sys.exit(0 if d['packets'] >= 0 and 'skipped' in d else 1)"

# 4. live, on the loopback interface: the test's own exchanges with 127.0.0.1
if [ "$(id -u)" -ne 0 ] && ! getcap "$METER" 2>/dev/null | grep -q cap_net_raw; then
	check "a live capture needs root or CAP_NET_RAW on $METER (setcap cap_net_raw,cap_net_admin=eip)" false
else
	port=$((30000 + RANDOM % 20000))
	"$METER" -q -i lo -f "host 127.0.0.1 and port $port" -t live -d "$DB" --batch-ms 200 2>"$work/live.err" &
	bg=$!
	sleep 1.5
	traffic() {
		python3 - "$port" "$1" <<'PY'
import socket, sys, threading
port, rounds = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(8)
def serve():
    for _ in range(rounds):
        c, _ = srv.accept(); c.sendall(c.recv(4096) * 3); c.close()
t = threading.Thread(target=serve); t.start()
for i in range(rounds):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"x" * (100 + i)); s.recv(65536); s.close()
t.join(); srv.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(rounds):
    u.sendto(b"ping %d" % i, ("127.0.0.1", port))
PY
	}
	traffic 5
	sleep 1
	# the server goes away while flows are open, and comes back
	datadir=$(q "SHOW data_directory")
	if [ "$(id -u)" -eq 0 ]; then runas="runuser -u postgres --"; else runas=; fi
	$runas "$BIN/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null 2>&1
	kill -INT "$bg"
	sleep 2
	$runas env MALLOC_PERTURB_=165 "$BIN/pg_ctl" -D "$datadir" -l "$datadir/../server.log" -w start >/dev/null 2>&1
	wait "$bg"
	rc=$?
	bg=
	check "a live capture on lo, flushed by SIGINT while the server was away: exit $rc" test "$rc" -eq 0
	check "its TCP and UDP flows with 127.0.0.1 are in the table ($(q "SELECT count(*) || ' flows: ' || string_agg(DISTINCT protocol::text, ',') FROM live"))" \
		test "$(q "SELECT count(*) FILTER (WHERE protocol = 6) >= 5 AND count(*) FILTER (WHERE protocol = 17) >= 1
			AND bool_and(source_ip = '127.0.0.1' AND destination_ip = '127.0.0.1') FROM live")" = t
	check "each flow once" test "$(q "SELECT count(*) - count(DISTINCT (flow_id, \"timestamp\")) FROM live")" = 0
	check "the meter said it waited for the server" grep -q "server went away\|flows wait" "$work/live.err"
fi

echo "flowmeter: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
