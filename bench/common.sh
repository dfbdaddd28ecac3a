# Shared by the bench scripts: a throwaway cluster with nids installed, and
# real CIC-IDS2017 flows loaded with nids-load: the first argument is a
# CSV file (.csv or .csv.gz) or a directory of them; by default the sample
# the repository ships in data/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-data/cicids2017-improved-sample.csv.gz}
if [ -d "$DATA_DIR" ]; then
	DATA_FILES=("$DATA_DIR"/*.csv*)
elif [ -f "$DATA_DIR" ]; then
	DATA_FILES=("$DATA_DIR")
else
	echo "no data file or directory $DATA_DIR (pass one as the first argument)" >&2
	exit 1
fi
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
unset MAKEFLAGS MFLAGS MAKEOVERRIDES
scripts/setup --with-python
make -s all >/dev/null
scripts/install
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/nids-bench.XXXXXX")
chmod 755 "$BENCH_TMP"
trap 'scripts/tmpcluster stop "$BENCH_TMP/pg"; rm -rf "$BENCH_TMP"' EXIT
# timings without glibc's fill of freed memory, which the test clusters
# keep on (MALLOC_PERTURB_): no production server runs with it
envfile=$(MALLOC_PERTURB_=0 CRON_DB=nids_bench scripts/tmpcluster start "$BENCH_TMP/pg")
# shellcheck disable=SC1090
. "$envfile"
export PGDATABASE=nids_bench
P() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
P -c 'CREATE EXTENSION nids'
"$(/usr/lib/postgresql/15/bin/pg_config --bindir)/nids-load" -t flows "${DATA_FILES[@]}" >/dev/null

# time_sql SQL [RUNS]: prints min median max seconds of a statement
time_sql() {
	local sql=$1 runs=${2:-5} t
	for _ in $(seq "$runs"); do
		t=$(P -At -c "SET max_parallel_workers_per_gather = ${WORKERS:-0}" -c "\\timing on" -c "$sql" 2>&1 |
			sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
		echo "$t"
	done | sort -n | awk '{a[NR] = $1 / 1000} END {printf "%.4f %.4f %.4f\n", a[1], a[int((NR + 1) / 2)], a[NR]}'
}
