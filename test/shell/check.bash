# Sourced by the shell tests (not run on its own: scripts/run-tests runs
# test/shell/*.sh): TAP-style checks and their counts.
passed=0
failed=0

# check DESCRIPTION COMMAND...: the command must succeed
check() {
	local what=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		echo "ok - $what"
	else
		failed=$((failed + 1))
		echo "not ok - $what"
	fi
}
