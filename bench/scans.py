#!/usr/bin/env python3
"""Reference scan detectors for bench/scans.sh, over the same connection
attempts nids reads (CSV: src, dst, dport, ts_epoch_s, failed, scanner,
tcp), in time order per source.  The three peers see TCP attempts only, as
they are defined:
  trw    the Threshold Random Walk as the paper has it (Jung, Paxson,
         Berger, Balakrishnan, "Fast Portscan Detection Using Sequential
         Hypothesis Testing", 2004): each source's first TCP attempt to each
         distinct host, theta0 0.8, theta1 0.2, PD 0.99, PF 0.01; a benign
         decision ends the source's walk;
  zeek   Zeek's scan policy: a source that failed to reach 25 hosts on one
         port (Address_Scan) or 15 ports of one host (Port_Scan) within 5 min;
  snort  Snort 3 port_scan, medium sensitivity in spirit: 15 ports of one
         host or 25 hosts rejected or unanswered within a 60 s window.
Prints, per method: scanners detected, attempts until detection (median and
max over detected scanners), non-scanning sources flagged; then nids
against TRW as ratios.  The nids rows come from nids_scans (second CSV:
src, attempts)."""
import csv
import sys
from collections import defaultdict, deque


def load(path):
    rows = []
    with open(path) as f:
        for r in csv.reader(f):
            rows.append((r[0], r[1], int(r[2]) if r[2] else -1, float(r[3]), r[4] == 't', r[5] == 't', r[6] == 't'))
    rows.sort(key=lambda r: (r[0], r[3]))
    return rows


def tcp_only(attempts):
    return [a for a in attempts if a[6]]


def zeek(attempts):
    """index (1-based TCP attempt) at which the source is flagged, or None"""
    hosts_by_port = defaultdict(deque)   # port -> (ts, host) of failed attempts
    ports_by_host = defaultdict(deque)
    for i, (_, dst, dport, ts, failed, _, _) in enumerate(tcp_only(attempts), 1):
        if not failed:
            continue
        for q, key, item in ((hosts_by_port, dport, dst), (ports_by_host, dst, dport)):
            d = q[key]
            d.append((ts, item))
            while d and ts - d[0][0] > 300:
                d.popleft()
        if len({h for _, h in hosts_by_port[dport]}) >= 25 or len({p for _, p in ports_by_host[dst]}) >= 15:
            return i
    return None


def snort(attempts):
    window = deque()
    for i, (_, dst, dport, ts, failed, _, _) in enumerate(tcp_only(attempts), 1):
        if not failed:
            continue
        window.append((ts, dst, dport))
        while window and ts - window[0][0] > 60:
            window.popleft()
        ports = defaultdict(set)
        hosts = set()
        for _, h, p in window:
            ports[h].add(p)
            hosts.add(h)
        if max(len(s) for s in ports.values()) >= 15 or len(hosts) >= 25:
            return i
    return None


def trw(attempts, theta0=0.8, theta1=0.2, pd=0.99, pf=0.01):
    eta1, eta0 = pd / pf, (1 - pd) / (1 - pf)
    seen = set()
    ratio = 1.0
    for i, (_, dst, _, _, failed, _, _) in enumerate(tcp_only(attempts), 1):
        if dst in seen:
            continue
        seen.add(dst)
        ratio *= (1 - theta1) / (1 - theta0) if failed else theta1 / theta0
        if ratio >= eta1:
            return i
        if ratio <= eta0:
            return None             # benign: the walk ends
    return None


def report(name, decided, sources):
    scanners = [s for s, a in sources.items() if a[0][5]]
    benign = [s for s, a in sources.items() if not a[0][5]]
    got = sorted(decided[s] for s in scanners if decided.get(s))
    flagged = sorted(s for s in benign if decided.get(s))
    med = got[(len(got) - 1) // 2] if got else '-'
    print(f"{name:6} scanners {len(got)}/{len(scanners)}  attempts until detection median {med} "
          f"max {got[-1] if got else '-'}  non-scanning sources flagged {len(flagged)}/{len(benign)}"
          + (f" ({', '.join(flagged[:5])})" if flagged else ""))
    return {s: decided.get(s) for s in sources}, len(flagged)


def main():
    rows = load(sys.argv[1])
    nids = {}
    with open(sys.argv[2]) as f:
        for r in csv.reader(f):
            nids[r[0]] = min(int(r[1]), nids.get(r[0], 10**12))
    sources = defaultdict(list)
    for r in rows:
        sources[r[0]].append(r)
    hours = (max(r[3] for r in rows) - min(r[3] for r in rows)) / 3600 if rows else 0
    print(f"{len(rows)} attempts ({sum(r[6] for r in rows)} TCP), {len(sources)} sources, {hours:.1f} hours of traffic")
    per = {}
    fp = {}
    for name, fn in (("trw", trw), ("zeek", zeek), ("snort", snort)):
        per[name], fp[name] = report(name, {s: fn(a) for s, a in sources.items()}, sources)
    per["nids"], fp["nids"] = report("nids", nids, sources)
    scanners = [s for s, a in sources.items() if a[0][5]]
    both = [s for s in scanners if per["nids"][s] and per["trw"][s]]
    ratios = sorted(per["nids"][s] / per["trw"][s] for s in both)
    print(f"nids / trw: scanners found {sum(1 for s in scanners if per['nids'][s])}/{sum(1 for s in scanners if per['trw'][s])}, "
          f"attempts until detection where both find it (median ratio) "
          f"{ratios[(len(ratios) - 1) // 2] if ratios else float('nan'):.2f}x over {len(both)}, "
          f"non-scanning sources flagged {fp['nids']} vs {fp['trw']}")


if __name__ == "__main__":
    main()
