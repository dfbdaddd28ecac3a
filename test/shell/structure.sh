#!/usr/bin/env bash
# The structure the code keeps (doc/development.md), read off the built
# objects: no two files of src/ call each other; the evaluators (the
# forests, the gate, the KS statistics, health, explanations of a verdict)
# call nothing in the model cache or the catalogue: the cache makes a model
# ready before they run; C reaches nids' own SQL functions only where a
# scheduled job's command names one; no function of src/ or tools/ over
# 120 lines, no file of tools/ over 1,000.
set -uo pipefail
# shellcheck source=check.bash
. "$(dirname "${BASH_SOURCE[0]}")/check.bash"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
[ -e src/model_cache.o ] || make -s all >/dev/null

graph=$(python3 - <<'PY'
import collections, glob, subprocess
defs, undef = {}, {}
for o in sorted(glob.glob('src/*.o')):
    d, u = set(), set()
    for line in subprocess.run(['nm', o], capture_output=True, text=True).stdout.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in 'TDBR':
            d.add(p[2])
        elif len(p) == 2 and p[0] == 'U':
            u.add(p[1])
    defs[o], undef[o] = d, u
owner = {s: o for o, d in defs.items() for s in d}
uses = collections.defaultdict(set)
for o, u in undef.items():
    for s in u:
        if s in owner and owner[s] != o:
            uses[o].add(owner[s])
for a in sorted(uses):
    for b in sorted(uses[a]):
        print(a[4:-2], b[4:-2])
PY
)
check "the call graph of src/ was read ($(wc -l <<<"$graph") edges)" test "$(wc -l <<<"$graph")" -gt 50
circles=$(awk '{e[$1" "$2] = 1} END {for (k in e) {split(k, p, " "); if ((p[2]" "p[1]) in e && p[1] < p[2]) print p[1] " <-> " p[2]}}' <<<"$graph")
check "no two files call each other${circles:+ ($circles)}" test -z "$circles"
upward=$(awk '($1 ~ /^(model_eval|model_shap|model_iforest|model_novelty|explain_verdict|drift_stats|drift_health)$/) &&
	($2 ~ /^(model_cache|model_catalog)$/) {print $1 " -> " $2}' <<<"$graph" | paste -sd, -)
check "the evaluators never call the model cache or the catalogue${upward:+ ($upward)}" test -z "$upward"
check "and scoring and explaining read a ready model: nothing loads lazily below the cache" \
	bash -c '! grep -n "model_column_bytes\|catalog_read" src/scoring.c src/explain.c src/explain_verdict.c src/drift_health.c src/model_eval.c src/model_shap.c'

# SQL that C runs naming nids' own functions: only the cron job's command
own=$(grep -n '"[^"]*\(SELECT\|PERFORM\)[^"]*nids[._][a-z_]*(' src/*.c | grep -v "src/drift_schedule.c:.*nids_log_drift" || true)
check "C never calls nids' own functions through SQL${own:+: $own}" test -z "$own"

long=$(python3 - <<'PY'
import glob, re
out = []
for f in sorted(glob.glob('src/*.c') + glob.glob('tools/*/*.c')):
    lines = open(f, encoding='utf-8', errors='replace').read().split('\n')
    start = None
    for i, l in enumerate(lines):
        if l == '{' and i > 0 and re.match(r'^[A-Za-z_]', lines[i - 1]):
            start = i
        elif l == '}' and start is not None:
            if i - start + 1 > 120:
                out.append(f"{f}:{lines[start - 1].split('(')[0]} {i - start + 1}")
            start = None
print(', '.join(out))
PY
)
check "no function over 120 lines${long:+ ($long)}" test -z "$long"
big=$(wc -l tools/*/*.c | awk '$2 != "total" && $1 > 1000 {print $2 " " $1}' | paste -sd, -)
check "no program file of tools/ over 1,000 lines${big:+ ($big)}" test -z "$big"

echo "structure: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
