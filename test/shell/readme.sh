#!/usr/bin/env bash
# Every example of README.md and of the guide's chapters in doc/ (in the
# order README lists them) runs, against the demo's data, so an example
# cannot rot: each ```sql block through psql (ON_ERROR_STOP),
# and each ```sh block made only of psql and nids-load commands through bash,
# on a throwaway cluster of its own whose pg_cron runs in the test database.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
root=$(pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/nids-readme.XXXXXX")
work=$(mktemp -d "${TMPDIR:-/tmp}/nids-readme-work.XXXXXX")
trap 'scripts/tmpcluster stop "$dir"; rm -rf "$work"' EXIT
envfile=$(CRON_DB=nids_readme scripts/tmpcluster start "$dir") || exit 1
# shellcheck disable=SC1090
. "$envfile"
export PGDATABASE=nids_readme
bindir=$(/usr/lib/postgresql/15/bin/pg_config --bindir)
export PATH="$bindir:$PATH"
psql -X -q -c 'CREATE EXTENSION nids' -c 'CREATE EXTENSION pg_cron' || exit 1
cp -r data "$work/"

# the fenced blocks, one file each: NNN.sql or NNN.sh, with their line
awk -v out="$work/blocks" '
	BEGIN { n = 0; inblock = 0 }
	/^```sql[ \t]*$/ { inblock = 1; kind = "sql"; start = FNR; body = ""; next }
	/^```sh[ \t]*$/ { inblock = 1; kind = "sh"; start = FNR; body = ""; next }
	/^```/ && inblock {
		inblock = 0; n++;
		f = sprintf("%s.%03d.%d.%s", out, n, start, kind);
		printf "%s", body > f; close(f);
		printf "%03d %s\n", n, FILENAME > (out ".where"); next
	}
	inblock { body = body $0 "\n" }
' README.md $(grep -o 'doc/[a-z_]*\.md' README.md | grep -v api.md | awk '!seen[$0]++')

ran=0
for f in "$work"/blocks.[0-9]*; do
	base=${f##*/}
	line=$(cut -d. -f3 <<<"$base")
	file=$(awk -v n="$(cut -d. -f2 <<<"$base")" '$1 == n {print $2}' "$work/blocks.where")
	kind=${base##*.}
	if [ "$kind" = sh ]; then
		# only blocks a user runs against the database: psql and nids-load
		if grep -Ev '^[[:space:]]*(#|$)' "$f" | grep -Evq '^(psql|nids-load) '; then
			continue
		fi
		out=$(cd "$work" && bash -e "$f" 2>&1)
	else
		out=$(cd "$work" && psql -X -q -v ON_ERROR_STOP=1 -f "$f" 2>&1 >/dev/null)
	fi
	rc=$?
	ran=$((ran + 1))
	check "$file line $line ($kind) runs" test "$rc" -eq 0
	if [ "$rc" -ne 0 ]; then
		sed 's/^/#   /' "$f"
		sed 's/^/# > /' <<<"$out"
	fi
done
check "the README has examples to run ($ran)" test "$ran" -ge 12
check "and the last one dropped the extension" \
	test "$(psql -X -A -t -c "SELECT count(*) FROM pg_extension WHERE extname = 'nids'")" = 0
cd "$root" || exit 1
echo "readme: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
