#!/usr/bin/env bash
# doc/api.md documents the whole public surface: every function, view and
# table that CREATE EXTENSION nids (the default version) makes is named in
# it, so nothing can be added to the SQL without its contract.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
DB=nids_api_doc_test
trap 'dropdb --if-exists "$DB" >/dev/null 2>&1' EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

createdb "$DB" || exit 1
q "CREATE EXTENSION nids" || exit 1

# the extension's members: functions by name (internal ones start with _),
# views and tables as nids.name
members=$(q "SELECT DISTINCT p.proname FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
	WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass
	AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'nids') AND d.deptype = 'e'
	AND p.proname NOT LIKE '\\_%'
	UNION
	SELECT DISTINCT n.nspname || '.' || c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
	JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass
	AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'nids') AND d.deptype = 'e'
	AND c.relkind IN ('r', 'v', 'p') ORDER BY 1")
count=$(wc -l <<<"$members")
check "the extension has members to check ($count)" test "$count" -gt 20
missing=
for m in $members; do
	# named in backticks, alone or as a call: `name`, `name(...`
	grep -qE "\`$m(\`|\()" doc/api.md || missing="$missing $m"
done
check "every function, view and table is in doc/api.md (missing:${missing:- none})" test -z "$missing"

echo "api_doc: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
