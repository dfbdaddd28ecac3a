#!/usr/bin/env python3
"""Small captures of edge cases, written byte by byte (no library), for
comparing nids-flowmeter with the reference meter.

    edge_cases.py OUTDIR

Writes OUTDIR/edge-NAME.pcap for each case: every TCP flag combination, IPv4
options, TCP options and bad data offsets, truncated captures (snap length),
IP total lengths that disagree with the frame, fragments, ICMP types and
codes, UDP length fields, one VLAN tag with link padding, odd frames.
"""
import os
import struct
import sys

BASE = 1600000000000000


def csum(b):
    return 0  # the reference reads no checksum


def eth(payload, etype=0x0800, vlan=None):
    hdr = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb"
    if vlan is not None:
        hdr += struct.pack(">HH", 0x8100, vlan)
    return hdr + struct.pack(">H", etype) + payload


def ipv4(src, dst, proto, payload, options=b"", total=None, frag=0, ident=1):
    ihl = 5 + len(options) // 4
    tot = total if total is not None else ihl * 4 + len(payload)
    hdr = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, tot, ident, frag, 64, proto, 0,
                      bytes(src), bytes(dst))
    return hdr + options + payload


def tcp(sport, dport, flags, payload=b"", window=1024, offset=5, options=b""):
    hdr = struct.pack(">HHIIBBHHH", sport, dport, 1, 0, offset << 4, flags, window, 0, 0)
    return hdr + options + payload


def udp(sport, dport, payload=b"", length=None):
    ln = length if length is not None else 8 + len(payload)
    return struct.pack(">HHHH", sport, dport, ln, 0) + payload


def icmp(typ, code, payload=b"abcd"):
    return struct.pack(">BBHHH", typ, code, 0, 1, 1) + payload


def write(path, frames):
    """frames: (microseconds since BASE, frame bytes, [wire length], [snaplen cut])"""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for fr in frames:
            t, data = fr[0], fr[1]
            wire = fr[2] if len(fr) > 2 and fr[2] else len(data)
            cap = data[:fr[3]] if len(fr) > 3 and fr[3] is not None else data
            ts = BASE + t
            f.write(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(cap), max(wire, len(cap))))
            f.write(cap)


A, B = [10, 0, 0, 1], [10, 0, 0, 2]


def conversation(sport, flags_seq, t0=0, step=1000):
    out = []
    for i, (direction, flags, data) in enumerate(flags_seq):
        s, d, sp, dp = (A, B, sport, 80) if direction == ">" else (B, A, 80, sport)
        out.append((t0 + i * step, eth(ipv4(s, d, 6, tcp(sp, dp, flags, data)))))
    return out


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    cases = {}

    # every flag combination: each a flow's first packet, then a reply and more
    frames = []
    for fl in range(256):
        t = fl * 10000
        frames += conversation(20000 + fl, [(">", fl, b"x" * (fl % 3)), ("<", fl ^ 0x10, b""),
                                            (">", 0x10, b"hello"), ("<", fl, b"y" * 7)], t0=t)
    cases["flags"] = frames

    # teardown orders: FIN/FIN/ACK, RST, RST then more packets, SYN after READY
    frames = []
    seqs = [
        [(">", 0x02, b""), ("<", 0x12, b""), (">", 0x10, b""), (">", 0x18, b"get"), ("<", 0x18, b"ok"),
         (">", 0x11, b""), ("<", 0x11, b""), (">", 0x10, b""), (">", 0x02, b""), ("<", 0x12, b"")],
        [(">", 0x02, b""), ("<", 0x14, b""), (">", 0x10, b"late"), (">", 0x02, b""), ("<", 0x14, b"")],
        [(">", 0x02, b""), ("<", 0x12, b""), ("<", 0x11, b""), ("<", 0x11, b""), (">", 0x11, b""),
         (">", 0x10, b""), ("<", 0x10, b"after"), (">", 0x12, b"")],
        [("<", 0x12, b""), (">", 0x10, b""), (">", 0x04, b""), ("<", 0x02, b"")],
    ]
    for k, s in enumerate(seqs):
        frames += conversation(30000 + k, s, t0=k * 1000000, step=300000)
    cases["teardown"] = frames

    # timeouts: a long UDP and TCP flow over 120 s, packets 7 s apart (idle > 5 s)
    frames = []
    for i in range(40):
        frames.append((i * 7000000, eth(ipv4(A, B, 17, udp(5353, 53, b"q" * (i % 5))))))
        frames.append((i * 7000000 + 10, eth(ipv4(B, A, 17, udp(53, 5353, b"r" * 30)))))
        frames.append((i * 7000000 + 20, eth(ipv4(A, B, 6, tcp(40000, 443, 0x18, b"d" * i)))))
    cases["timeouts"] = frames

    # bulks: bursts of payload packets, each direction, gaps around 1 s
    frames = []
    t = 0
    for burst in range(6):
        for i in range(6):
            frames.append((t, eth(ipv4(A, B, 6, tcp(41000, 80, 0x18, b"b" * (100 + i))))))
            t += 100000 if burst % 2 else 400000
        for i in range(5):
            frames.append((t, eth(ipv4(B, A, 6, tcp(80, 41000, 0x18, b"c" * (1000 + i))))))
            t += 200000
        t += 1100000 * (burst % 3)
    cases["bulks"] = frames

    # IPv4 and TCP options, bad data offsets, truncated headers
    frames = []
    frames.append((0, eth(ipv4(A, B, 6, tcp(42000, 80, 0x02), options=b"\x01\x01\x01\x00"))))
    frames.append((10, eth(ipv4(B, A, 6, tcp(80, 42000, 0x12, offset=8, options=b"\x02\x04\x05\xb4" + b"\x01" * 8)))))
    frames.append((20, eth(ipv4(A, B, 6, tcp(42000, 80, 0x10, b"z" * 10, offset=3)))))
    frames.append((30, eth(ipv4(A, B, 6, tcp(42000, 80, 0x10, b"z" * 10, offset=15)))))
    frames.append((40, eth(ipv4(A, B, 6, tcp(42000, 80, 0x18, b"w" * 100))), None, 54 + 10))
    frames.append((50, eth(ipv4(A, B, 6, tcp(42000, 80, 0x18, b"w" * 100))), None, 40))
    frames.append((60, eth(ipv4(A, B, 6, tcp(42000, 80, 0x18, b"w" * 50), total=60))))
    frames.append((70, eth(ipv4(A, B, 6, tcp(42000, 80, 0x18, b"w" * 50), total=30))))
    frames.append((80, eth(ipv4(A, B, 6, tcp(42000, 80, 0x18, b"w" * 10), total=200))))
    frames.append((90, eth(ipv4(A, B, 17, udp(42001, 53, b"u" * 20, length=5)))))
    frames.append((100, eth(ipv4(A, B, 17, udp(42001, 53, b"u" * 20, length=200)))))
    frames.append((110, eth(ipv4(A, B, 17, udp(42001, 53, b"u" * 20))), None, 14 + 20 + 4))
    cases["headers"] = frames

    # fragments: a UDP datagram in three pieces, a TCP first fragment
    frames = []
    big = udp(43000, 9999, b"f" * 64)
    frames.append((0, eth(ipv4(A, B, 17, big[:24], frag=0x2000, ident=7))))
    frames.append((10, eth(ipv4(A, B, 17, big[24:48], frag=0x2000 | 2, ident=7))))
    frames.append((20, eth(ipv4(A, B, 17, big[48:], frag=5, ident=7))))
    frames.append((30, eth(ipv4(A, B, 6, tcp(43001, 80, 0x18, b"t" * 40)[:24], frag=0x2000, ident=8))))
    frames.append((40, eth(ipv4(A, B, 6, b"rest-of-tcp" * 3, frag=3, ident=8))))
    cases["fragments"] = frames

    # ICMP: echo and reply, type and code changes, errors quoting TCP
    frames = []
    for i, (typ, code, d) in enumerate([(8, 0, ">"), (0, 0, "<"), (8, 0, ">"), (3, 3, "<"), (3, 1, ">"),
                                        (11, 0, "<"), (8, 0, ">"), (5, 1, "<"), (0, 0, ">")]):
        s, dd = (A, B) if d == ">" else (B, A)
        frames.append((i * 500000, eth(ipv4(s, dd, 1, icmp(typ, code, tcp(1, 2, 0x02)[:8])))))
    frames.append((9 * 500000, eth(ipv4(A, B, 1, b"\x08"))))
    cases["icmp"] = frames

    # other protocols, one VLAN tag with link padding, odd frames
    frames = []
    frames.append((0, eth(ipv4(A, B, 47, b"\x00\x00\x08\x00" + b"g" * 30))))
    frames.append((10, eth(ipv4(A, B, 50, b"e" * 40))))
    frames.append((20, eth(ipv4(A, B, 6, tcp(44000, 80, 0x10)), vlan=5) + b"\x00" * 6))
    frames.append((30, eth(ipv4(B, A, 6, tcp(80, 44000, 0x10)), vlan=5) + b"\x00" * 6))
    frames.append((40, eth(ipv4(A, B, 6, tcp(44001, 80, 0x10))) + b"\x00" * 6))
    frames.append((50, b"\x45" * 10))
    frames.append((60, eth(b"\x46\x00")))
    frames.append((70, eth(b"\x00" * 30, etype=0x0806)))
    frames.append((80, b"\x4f\x00\x00\x28" + b"\x01" * 40))
    cases["odd"] = frames

    # the second reading of frames without IPv4: header length against the
    # frame, ARP frames read even when shorter than the header says
    frames = []
    i = 0
    for first in (0x4F, 0x45, 0x46, 0x7C, 0xFF, 0x55, 0x4C):
        for tot in (0x0028, 0x0100, 0x0014, 0x0000):
            for cap in (42, 60, 80):
                fr = bytearray(b"\x01" * cap)
                fr[0] = first
                fr[2:4] = struct.pack(">H", tot)
                fr[9] = 0x99
                fr[12:16] = bytes([1, 1, i // 256, i % 256])
                fr[16:20] = bytes([10, 2, 0, 1])
                frames.append((i * 10, bytes(fr)))
                i += 1
    for k, first in enumerate((0x7C, 0xFF, 0x00, 0x45)):
        arp = bytes([first]) + b"\xbb\x8a\x89\xfb\x84\x00\x0e\x8e\x19\x71\x0c\x08\x06" + \
            b"\x00\x01\x08\x00\x06\x04\x00\x01" + bytes([0, 14, 142, 25, 113, k]) + bytes([192, 168, 12, 1]) + \
            b"\x00" * 6 + bytes([192, 168, 12, 114])
        frames.append((10000 + k * 10, arp))
    cases["second-reading"] = frames

    # transport headers short of their minimum, one flow each
    frames = []
    k = 0
    for build in (lambda sp: eth(ipv4(A, B, 6, tcp(sp, 80, 0x18, b"z" * 10, offset=3))),
                  lambda sp: eth(ipv4(A, B, 6, tcp(sp, 80, 0x18, b"w" * 50), total=30)),
                  lambda sp: eth(ipv4(A, B, 17, udp(sp, 53, b"u" * 20), total=26)),
                  lambda sp: eth(ipv4(A, B, 1, b"\x08")),
                  lambda sp: eth(ipv4(A, B, 1, b"\x08\x00\x00")),
                  lambda sp: eth(ipv4(A, B, 1, b"\x08\x00\x00\x00")),
                  lambda sp: eth(ipv4(A, B, 6, tcp(sp, 80, 0x18)[:10])),
                  lambda sp: eth(ipv4(A, B, 17, udp(sp, 53)[:4])),
                  lambda sp: eth(b"\x44" + ipv4(A, B, 6, tcp(sp, 80, 0x18, b"q"))[1:]),
                  lambda sp: eth(b"\x65" + ipv4(A, B, 6, tcp(sp, 80, 0x18, b"q"))[1:]),
                  lambda sp: eth(ipv4(A, B, 6, tcp(sp, 80, 0x18, b"z" * 60, offset=15)))):
        frames.append((k * 1000000, build(51000 + k)))
        k += 1
    frames.append((k * 1000000, eth(ipv4(A, B, 6, tcp(51000 + k, 80, 0x18, b"w" * 100))), None, 40))
    cases["short-headers"] = frames

    for name, frames in cases.items():
        write(os.path.join(outdir, "edge-%s.pcap" % name), sorted(frames, key=lambda f: f[0]))
    print(" ".join(sorted(cases)))


if __name__ == "__main__":
    main()
