#!/usr/bin/env bash
# The long version of test/shell/concurrency.sh: 4 pgbench scoring clients
# for SECONDS_RUN seconds (default 120) while models are redeployed,
# imported, trained and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
unset MAKEFLAGS MFLAGS MAKEOVERRIDES
scripts/setup
make -s all >/dev/null
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
scripts/install
dir=$(mktemp -d "${TMPDIR:-/tmp}/nids-bench.XXXXXX")
trap 'scripts/tmpcluster stop "$dir"' EXIT
. "$(MALLOC_PERTURB_=0 scripts/tmpcluster start "$dir")"
CONCURRENCY_SECONDS=${SECONDS_RUN:-120} bash test/shell/concurrency.sh
