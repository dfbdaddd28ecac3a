#!/usr/bin/env bash
# nids-alerts as a real LISTEN client under what breaks clients: bursts of
# thousands of incidents, restarts of the client (with its state file), a
# terminated backend, a restart of the server; every change of an incident
# is written exactly once.  And its errors: a state file that is not one,
# a state path it cannot write, a role without nids_analyst: a message and
# a non-zero exit status, never a silent 0.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
BIN=$(/usr/lib/postgresql/15/bin/pg_config --bindir)
ALERTS=${NIDS_ALERTS:-$BIN/nids-alerts}
DB=nids_alerts_client_test
work=$(mktemp -d)
chmod 755 "$work"
client=
cleanup() {
	[ -n "$client" ] && kill "$client" 2>/dev/null
	rm -rf "$work"
	dropdb --if-exists "$DB" >/dev/null 2>&1
	psql -X -q -c "DROP ROLE IF EXISTS ac_nobody" >/dev/null 2>&1
}
trap cleanup EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
# n incidents of new sources, committed at once, with one NOTIFY as the triggers send
burst() {
	q "INSERT INTO nids.alerts (kind, verdict, class, severity, src_ip, first_seen, last_seen, flows)
	   SELECT 'flow', 'attack', 'DDoS', 2, ('10.' || (($2 + i) / 65536 % 256) || '.' || (($2 + i) / 256 % 256) || '.' || (($2 + i) % 256))::inet,
		now(), now(), 1 FROM generate_series(1, $1) i;
	   NOTIFY nids_alerts" >/dev/null
}
start_client() {
	"$ALERTS" -d "$DB" -o "$work/eve.json" -s "$work/state" --poll 1 2>>"$work/client.err" &
	client=$!
}
stop_client() {
	kill -TERM "$client" 2>/dev/null
	wait "$client"
	local rc=$?
	client=
	return $rc
}
# every (alert_id, updated_at) in the table has exactly one line, and no line more
settled() {
	local want=$1 i
	for i in $(seq 1 100); do
		[ "$(wc -l <"$work/eve.json")" -ge "$want" ] && break
		sleep 0.2
	done
	sleep 1.5
	q "TRUNCATE eve_lines" >/dev/null
	psql -X -q -d "$DB" -c "\\copy eve_lines FROM '$work/eve.json' WITH (FORMAT text)"
	q "SELECT (SELECT count(*) FROM eve_lines) || ' lines, ' ||
		(SELECT count(*) FROM (SELECT 1 FROM eve_lines GROUP BY line::jsonb -> 'nids' ->> 'alert_id',
			line::jsonb -> 'nids' ->> 'updated_at' HAVING count(*) > 1) d) || ' twice'"
}

createdb "$DB" || exit 1
q "CREATE EXTENSION nids" || exit 1
q "CREATE TABLE eve_lines (line text)" >/dev/null
: >"$work/eve.json"

start_client
sleep 1
# a burst of 5,000 incidents in one transaction, then 10 of 300 in a row
burst 5000 0
for k in $(seq 1 10); do burst 300 $((5000 + k * 300)); done
got=$(settled 8000)
check "a burst of 8,000 incidents: each written once ($got)" test "$got" = "8000 lines, 0 twice"

# changes are written once each, however often the client wakes meanwhile
q "UPDATE nids.alerts SET status = 'acknowledged' WHERE alert_id IN (SELECT alert_id FROM nids.alerts ORDER BY alert_id LIMIT 200);
   NOTIFY nids_alerts; NOTIFY nids_alerts" >/dev/null
got=$(settled 8200)
check "200 acknowledged incidents: a line each ($got)" test "$got" = "8200 lines, 0 twice"

# a restart of the client, with its state file: nothing written again,
# although every incident is within the look-back
check "the client stops cleanly on SIGTERM (exit 0)" stop_client
head -1 "$work/state" >"$work/state.head"
check "its state file says what it is" grep -qx "nids-alerts state 2" "$work/state.head"
start_client
sleep 2
got=$(settled 8200)
check "after a restart with its state file: no line again ($got)" test "$got" = "8200 lines, 0 twice"
burst 50 20000
got=$(settled 8250)
check "and the next 50 incidents once each ($got)" test "$got" = "8250 lines, 0 twice"

# its backend terminated: it reconnects, writes what came meanwhile, once
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'nids-alerts'" >/dev/null
burst 40 21000
got=$(settled 8290)
check "after its backend was terminated: the 40 new incidents once each ($got)" test "$got" = "8290 lines, 0 twice"
check "and it is connected again" \
	test "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nids-alerts'")" = 1

# the server restarted under it
datadir=$(q "SHOW data_directory")
if [ "$(id -u)" -eq 0 ]; then
	runuser -u postgres -- "$BIN/pg_ctl" -D "$datadir" -m fast -w restart >/dev/null 2>&1
else
	"$BIN/pg_ctl" -D "$datadir" -m fast -w restart >/dev/null 2>&1
fi
check "the server restarted" test "$(q "SELECT 1")" = 1
burst 30 22000
got=$(settled 8320)
check "after a server restart: the 30 new incidents once each ($got)" test "$got" = "8320 lines, 0 twice"
stop_client

# --once with the state file: nothing new, nothing written, exit 0
"$ALERTS" -d "$DB" -o "$work/eve.json" -s "$work/state" --once 2>>"$work/client.err"
rc=$?
check "--once after all that: exit 0, no line again" test $rc -eq 0 -a "$(wc -l <"$work/eve.json")" = 8320
check "the client reported only the lost connections" \
	bash -c "! grep -v -iE 'terminat|connection|server closed|shut ?down|no connection|could not (receive|send)|^\\s|^\$|before or while' '$work/client.err'"

# a 1.2 state file (a timestamp, a tab, an id) is read as 1.2 wrote it
q "SELECT to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' || E'\\t' || alert_id
   FROM nids.alerts ORDER BY updated_at, alert_id OFFSET 8100 LIMIT 1" >"$work/state12"
"$ALERTS" -d "$DB" -o "$work/eve12.json" -s "$work/state12" --once 2>"$work/err12"
rc=$?
check "a 1.2 state file: only the incidents after its position ($(wc -l <"$work/eve12.json") lines, exit $rc)" \
	test $rc -eq 0 -a "$(wc -l <"$work/eve12.json")" = 19
check "and it is then in the new format" grep -qx "nids-alerts state 2" "$work/state12"

# errors: a message and a non-zero exit, and nothing written
printf 'this is not\na state file\n' >"$work/junk"
"$ALERTS" -d "$DB" -o "$work/junk.json" -s "$work/junk" --once 2>"$work/err"
rc=$?
check "a corrupt state file: exit 1 ($(head -1 "$work/err"))" test $rc -eq 1
check "... naming the file, and nothing written" \
	test "$(grep -c "$work/junk" "$work/err")" -ge 1 -a ! -s "$work/junk.json"
check "... and the file is left as it was" grep -q "this is not" "$work/junk"
mkdir "$work/adir"
"$ALERTS" -d "$DB" -o "$work/x.json" -s "$work/adir" --once 2>"$work/err"
rc=$?
check "a state path that is a directory: exit 1 ($(head -1 "$work/err"))" test $rc -eq 1
"$ALERTS" -d "$DB" -o "$work/x.json" -s "$work/no/such/dir/state" --once 2>"$work/err"
rc=$?
check "a state file in a directory that does not exist: exit 1 ($(head -1 "$work/err"))" test $rc -eq 1
mkdir "$work/ro"
chmod 555 "$work/ro"
if [ "$(id -u)" -eq 0 ]; then
	chmod 777 "$work/x.json" 2>/dev/null || touch "$work/x.json"
	chmod 666 "$work/x.json"
	runuser -u postgres -- "$ALERTS" -d "$DB" -o "$work/x.json" -s "$work/ro/state" --once 2>"$work/err"
else
	"$ALERTS" -d "$DB" -o "$work/x.json" -s "$work/ro/state" --once 2>"$work/err"
fi
rc=$?
check "a state directory it may not write: exit 1 ($(head -1 "$work/err"))" test $rc -eq 1
q "CREATE ROLE ac_nobody LOGIN" >/dev/null
"$ALERTS" -d "dbname=$DB user=ac_nobody" -o "$work/y.json" --once 2>"$work/err"
rc=$?
check "a role without nids_analyst: exit 2 ($(head -1 "$work/err"))" test $rc -eq 2
check "... saying permission denied, nothing written" \
	test "$(grep -c 'permission denied' "$work/err")" -ge 1 -a ! -s "$work/y.json"
"$ALERTS" -d "dbname=$DB" --poll 0 --once 2>"$work/err"
rc=$?
check "a bad option value: exit 1" test $rc -eq 1

echo "alerts_client: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
