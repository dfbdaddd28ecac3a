#!/usr/bin/env python3
"""Run a command; print its CPU seconds (user + system), wall seconds, peak RSS (kB) and exit status.

    rusage.py [--out FILE] CMD ARG...

Peak RSS is the program's own high-water mark (VmHWM in /proc, polled until it
exits): getrusage's ru_maxrss would also count the memory of this Python
process, which a forked child has until it execs.
"""
import os
import resource
import subprocess
import sys
import time

args = sys.argv[1:]
out = None
if args and args[0] == "--out":
    out, args = args[1], args[2:]
t = time.monotonic()
hwm = 0
with open(out or os.devnull, "wb") as f:
    p = subprocess.Popen(args, stdout=f)
    while p.poll() is None:
        try:
            with open("/proc/%d/status" % p.pid) as s:
                for line in s:
                    if line.startswith("VmHWM:"):
                        # a wrapper script execs (or runs) the program: follow the largest
                        hwm = max(hwm, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        try:
            kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
            for k in kids:
                with open("/proc/%s/status" % k) as s:
                    for line in s:
                        if line.startswith("VmHWM:"):
                            hwm = max(hwm, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.005)
    rc = p.returncode
wall = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.3f %.3f %d %d" % (r.ru_utime + r.ru_stime, wall, hwm, rc))
