#!/usr/bin/env python3
"""Captures for bench/flowmeter.sh, made from real ones.

    flowmeter_gen.py replay OUT.pcap PACKETS CAPTURE...   the Ethernet captures given,
        replayed one after the other until PACKETS frames, each replay 200 s after the
        last and with its IPv4 addresses moved into 10.x (distinct flows each time)
    flowmeter_gen.py synflood OUT.pcap PACKETS            a SYN flood: one SYN a packet
        from random sources and ports to one server, 20 us apart
"""
import random
import struct
import sys


def read_frames(path):
    d = open(path, "rb").read()
    if struct.unpack("<I", d[:4])[0] != 0xA1B2C3D4 or struct.unpack("<I", d[20:24])[0] != 1:
        return []
    off, out = 24, []
    while off + 16 <= len(d):
        s, us, cl, ln = struct.unpack("<IIII", d[off:off + 16])
        off += 16
        if us >= 1000000 or cl > ln:
            return []  # a capture with impossible records: not replayed
        out.append((s * 1000000 + us, d[off:off + cl], ln))
        off += cl
    return out


def checksum_free_ipv4_shift(frame, k):
    # move IPv4 source and destination by k in their second octet (checksums are not read)
    if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
        b = bytearray(frame)
        b[27] = (b[27] + k) % 256
        b[31] = (b[31] + k) % 256
        return bytes(b)
    return frame


def write(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for ts, fr, ln in frames:
            f.write(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(fr), max(ln, len(fr))))
            f.write(fr)


def main():
    mode, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "synflood":
        rnd = random.Random(7)
        frames = []
        ts = 1600000000000000
        for i in range(n):
            src = bytes([10, rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255)])
            ip = bytearray(b"\x45\x00\x00\x28\x00\x01\x00\x00\x40\x06\x00\x00") + src + bytes([192, 168, 1, 1])
            tcp = struct.pack(">HHIIBBHHH", rnd.randrange(1024, 65536), 80, rnd.randrange(2**32), 0, 0x50, 0x02, 1024, 0, 0)
            frames.append((ts, b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + bytes(ip) + tcp + b"\x00" * 6, 60))
            ts += 20
        write(out, frames)
        return
    sources = [f for p in sys.argv[4:] for f in [read_frames(p)] if f]
    frames, k, t0 = [], 0, 1600000000000000
    while len(frames) < n:
        for src in sources:
            base = min(x[0] for x in src)
            for ts, fr, ln in src:
                if ts - base > 10**11:
                    continue  # outliers in time (a capture's bad clock)
                frames.append((t0 + (ts - base), checksum_free_ipv4_shift(fr, k), ln))
                if len(frames) >= n:
                    break
            t0 = frames[-1][0] + 200000000
            if len(frames) >= n:
                break
        k += 1
    frames.sort(key=lambda x: x[0])
    write(out, frames)


if __name__ == "__main__":
    main()
