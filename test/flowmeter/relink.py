#!/usr/bin/env python3
"""Rewrite an Ethernet pcap's frames under another link type (for tests).

    relink.py sll2|sll IN.pcap OUT.pcap

The Ethernet header becomes a Linux cooked capture header (v2: 20 bytes,
v1: 16) carrying the same EtherType and source address; the rest of each
frame is unchanged, so the flows must be the same.
"""
import struct
import sys

kind, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
d = open(src, "rb").read()
assert struct.unpack("<I", d[:4])[0] == 0xA1B2C3D4 and struct.unpack("<I", d[20:24])[0] == 1
linktype = 276 if kind == "sll2" else 113
out = bytearray(d[:20] + struct.pack("<I", linktype))
off = 24
while off + 16 <= len(d):
    s, us, cl, ln = struct.unpack("<IIII", d[off:off + 16])
    frame = d[off + 16:off + 16 + cl]
    off += 16 + cl
    if cl < 14:
        continue
    etype, mac = frame[12:14], frame[6:12]
    if kind == "sll2":
        hdr = etype + b"\x00\x00" + struct.pack(">IHBB", 2, 1, 0, 6) + mac + b"\x00\x00"
    else:
        hdr = struct.pack(">HHH", 0, 1, 6) + mac + b"\x00\x00" + etype
    body = hdr + frame[14:]
    out += struct.pack("<IIII", s, us, len(body), ln - 14 + len(hdr)) + body
open(dst, "wb").write(out)
