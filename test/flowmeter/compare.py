#!/usr/bin/env python3
"""Compare nids-flowmeter's CSV with the reference meter's, flow by flow.

    compare.py REFERENCE.csv OURS.csv [--report N]

Flows are matched by Flow ID and start timestamp (several flows of one
tuple at one time are matched in order).  Integer features must be equal,
real ones within 1e-9 relative (NaN equals NaN, Infinity Infinity).  The
reference reads IPv4 only: IPv6 flows of ours are not compared.  Prints
one line "matched M of R reference flows, X of ours unmatched" and, for the
first N differences, what differs; exits 1 unless every flow matches.
"""
import csv
import math
import sys
from collections import defaultdict


def value(s):
    if s in ("NaN", "Infinity", "-Infinity"):
        return float(s.replace("Infinity", "inf")), False
    try:
        return int(s), True
    except ValueError:
        pass
    try:
        return float(s), False
    except ValueError:
        return s, None


def same(a, b):
    va, ia = value(a)
    vb, ib = value(b)
    if ia is None or ib is None:
        return a == b
    if ia and ib:
        return va == vb
    fa, fb = float(va), float(vb)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    if math.isinf(fa) or math.isinf(fb):
        return fa == fb
    return abs(fa - fb) <= 1e-9 * max(abs(fa), abs(fb)) or fa == fb


def load(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        rows = [row for row in r if row]
    return header, rows


def main():
    ref_path, our_path = sys.argv[1], sys.argv[2]
    report = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--report" else 5
    rh, rrows = load(ref_path)
    oh, orows = load(our_path)
    if rh != oh:
        print("headers differ")
        return 1
    ours = defaultdict(list)
    for row in orows:
        if ":" in row[1]:
            continue  # IPv6: the reference reads IPv4 only
        ours[(row[0], row[6])].append(row)
    matched = 0
    diffs = []
    for row in rrows:
        key = (row[0], row[6])
        cands = ours.get(key)
        if not cands:
            diffs.append("missing: %s at %s" % key)
            continue
        other = cands.pop(0)
        bad = [(rh[i], row[i], other[i]) for i in range(len(rh)) if not same(row[i], other[i])]
        if bad:
            diffs.append("%s at %s: %s" % (key[0], key[1], "; ".join(
                "%s ref %s ours %s" % b for b in bad[:6])))
        else:
            matched += 1
    extra = sum(len(v) for v in ours.values())
    for k, v in ours.items():
        for _ in v:
            diffs.append("extra: %s at %s" % k)
    print("matched %d of %d reference flows, %d of ours unmatched" % (matched, len(rrows), extra))
    for d in diffs[:report]:
        print("  " + d)
    return 0 if matched == len(rrows) and extra == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
