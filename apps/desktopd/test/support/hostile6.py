#!/usr/bin/env python3
"""IPv6 frames a hostile guest sends at desktopd's router, raw on its NIC (AF_PACKET).

  syn-flood IFNAME GW_MAC PREFIX DST PORT N   N TCP SYNs to [DST]:PORT, each from another made-up
                                             address of PREFIX (a /64, e.g. fdc4:f303:9324::)
  frag-flood IFNAME GW_MAC SRC DST N          first fragments of N UDP datagrams that never complete
  garbage IFNAME GW_MAC SRC DST N SEED        N malformed packets: truncated headers, payload lengths
                                             past the frame, long or looping extension-header chains,
                                             bad checksums, fragments that overlap, ND claims on the
                                             router's addresses, router advertisements
Each prints one JSON line with what it sent.
"""
import json
import random
import socket
import struct
import sys
import time

NH_HOP, NH_TCP, NH_UDP, NH_ROUTING, NH_FRAG, NH_ICMP6, NH_NONE, NH_DEST = 0, 6, 17, 43, 44, 58, 59, 60


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def addr(text):
    return socket.inet_pton(socket.AF_INET6, text)


def ip6(src, dst, nh, payload, hop=64):
    return struct.pack("!IHBB", 0x60000000, len(payload), nh, hop) + src + dst + payload


def pseudo(src, dst, nh, length):
    return src + dst + struct.pack("!IxxxB", length, nh)


def tcp_syn(src, dst, sport, dport):
    t = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
    return t[:16] + struct.pack("!H", csum(pseudo(src, dst, NH_TCP, len(t)) + t)) + t[18:]


def udp(src, dst, sport, dport, data, length=None):
    n = 8 + len(data) if length is None else length
    u = struct.pack("!HHHH", sport, dport, n, 0) + data
    c = csum(pseudo(src, dst, NH_UDP, n) + u) or 0xFFFF
    return u[:6] + struct.pack("!H", c) + u[8:]


def icmp6(src, dst, typ, code, body):
    m = struct.pack("!BBH", typ, code, 0) + body
    return m[:2] + struct.pack("!H", csum(pseudo(src, dst, NH_ICMP6, len(m)) + m)) + m[4:]


class Nic:
    def __init__(self, ifname, gw_mac):
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.s.bind((ifname, 0))
        self.own = self.s.getsockname()[4]
        self.gw = bytes.fromhex(gw_mac.replace(":", ""))
        self.sent = 0

    def send(self, packet, dst_mac=None):
        self.s.send((dst_mac or self.gw) + self.own + b"\x86\xdd" + packet)
        self.sent += 1
        # The TAP queues 1000 frames: a short breath every 200 keeps the flood from overrunning it.
        if self.sent % 200 == 0:
            time.sleep(0.02)


def syn_flood(ifname, gw_mac, prefix, dst, port, count):
    nic = Nic(ifname, gw_mac)
    base = addr(prefix)[:8]
    rng = random.Random(7)
    d = addr(dst)
    for _ in range(count):
        src = base + bytes(rng.randrange(256) for _ in range(8))
        nic.send(ip6(src, d, NH_TCP, tcp_syn(src, d, rng.randrange(40000, 60000), port)))
    print(json.dumps({"sent": nic.sent}))


def frag_flood(ifname, gw_mac, src, dst, count):
    nic = Nic(ifname, gw_mac)
    s, d = addr(src), addr(dst)
    for i in range(count):
        data = udp(s, d, 40000 + i % 1000, 9, bytes(1400), 8 + 2800)
        frag = struct.pack("!BBHI", NH_UDP, 0, 0 | 1, 0x10000 + i)  # offset 0, more fragments
        nic.send(ip6(s, d, NH_FRAG, frag + data))
    print(json.dumps({"sent": nic.sent}))


def garbage(ifname, gw_mac, src, dst, count, seed):
    nic = Nic(ifname, gw_mac)
    rng = random.Random(seed)
    s, d = addr(src), addr(dst)
    gateway = addr("fdc4:f303:9324::1")
    all_nodes = addr("ff02::1")
    kinds = {}

    def ext(nh, n):
        return struct.pack("!BB", nh, n) + bytes(6 + 8 * n)

    for _ in range(count):
        kind = rng.choice(["truncated", "long-length", "ext-chain", "ext-past-end", "bad-checksum",
                           "overlap", "na-claim", "ra", "zero-udp-checksum", "random"])
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "truncated":
            nic.send(ip6(s, d, NH_TCP, tcp_syn(s, d, 40000, 80))[: rng.randrange(1, 40)])
        elif kind == "long-length":
            p = bytearray(ip6(s, d, NH_UDP, udp(s, d, 40000, 53, b"x")))
            struct.pack_into("!H", p, 4, 60000)
            nic.send(bytes(p))
        elif kind == "ext-chain":
            # Twelve destination-options headers, then UDP: past the walk's bound.
            chain = b"".join(ext(NH_DEST, 0) for _ in range(11)) + ext(NH_UDP, 0)
            nic.send(ip6(s, d, NH_DEST, chain + udp(s, d, 40000, 53, b"y")))
        elif kind == "ext-past-end":
            nic.send(ip6(s, d, NH_HOP, struct.pack("!BB", NH_UDP, 200) + bytes(6)))
        elif kind == "bad-checksum":
            t = bytearray(tcp_syn(s, d, 40001, 80))
            t[16] ^= 0xFF
            nic.send(ip6(s, d, NH_TCP, bytes(t)))
        elif kind == "overlap":
            ident = rng.getrandbits(32)
            data = udp(s, d, 40002, 9, bytes(64), 8 + 128)
            nic.send(ip6(s, d, NH_FRAG, struct.pack("!BBHI", NH_UDP, 0, 0 | 1, ident) + data))
            nic.send(ip6(s, d, NH_FRAG, struct.pack("!BBHI", NH_UDP, 0, 32, ident) + bytes(96)))
        elif kind == "na-claim":
            body = struct.pack("!I", 0x20000000) + gateway + struct.pack("!BB", 2, 1) + nic.own
            nic.send(ip6(s, all_nodes, NH_ICMP6, icmp6(s, all_nodes, 136, 0, body), 255),
                     b"\x33\x33\x00\x00\x00\x01")
        elif kind == "ra":
            body = struct.pack("!BBHII", 64, 0, 1800, 0, 0)
            nic.send(ip6(s, all_nodes, NH_ICMP6, icmp6(s, all_nodes, 134, 0, body), 255),
                     b"\x33\x33\x00\x00\x00\x01")
        elif kind == "zero-udp-checksum":
            u = bytearray(udp(s, d, 40003, 9, b"z"))
            u[6:8] = b"\0\0"
            nic.send(ip6(s, d, NH_UDP, bytes(u)))
        else:
            nic.send(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200))))
    print(json.dumps({"sent": nic.sent, "kinds": kinds}))


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "syn-flood":
        syn_flood(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]))
    elif cmd == "frag-flood":
        frag_flood(a[0], a[1], a[2], a[3], int(a[4]))
    elif cmd == "garbage":
        garbage(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
