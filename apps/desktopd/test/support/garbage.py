#!/usr/bin/env python3
"""Sends malformed and hostile frames from a guest NIC at the desktopd stack.

Run inside the guest namespace (root, AF_PACKET):
  python3 garbage.py --ifname eth0 --gw-mac MAC --src-ip 192.168.65.3 \
      --host-ip 192.168.65.254 --gateway 192.168.65.1 --port PORT --seed 1 --count 300

Before the garbage it opens a real (kernel) TCP connection to HOST:PORT; among the garbage are
segments outside that connection's window (data, RST, SYN, FIN). Afterwards it sends an HTTP
request on that connection, so the report shows whether the stack kept it intact. Prints one
JSON line: frames sent per kind, send errors, how many frames the stack read from the TAP
(tx_packets of the guest NIC, which includes the kernel's own packets) and how many the TAP
dropped, and the answer on the live connection.
"""
import argparse
import json
import random
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def read_stat(path: str) -> int:
    with open(path) as f:
        return int(f.read())


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def ip_bytes(ip: str) -> bytes:
    return socket.inet_aton(ip)


class Gen:
    def __init__(self, a):
        self.a = a
        self.r = random.Random(a.seed)
        self.gw_mac = mac_bytes(a.gw_mac)
        self.src_mac = b""  # filled in main
        self.src = ip_bytes(a.src_ip)
        self.host = ip_bytes(a.host_ip)
        self.gw = ip_bytes(a.gateway)

    def rbytes(self, n: int) -> bytes:
        return bytes(self.r.getrandbits(8) for _ in range(n))

    def eth(self, payload: bytes, ethertype: int = 0x0800, dst: bytes = b"") -> bytes:
        return (dst or self.gw_mac) + self.src_mac + struct.pack("!H", ethertype) + payload

    def ipv4(self, proto: int, payload: bytes, src=None, dst=None, *, bad_csum=False, ihl=5,
             total=None, flags_frag=0x4000, ttl=64, version=4, ident=None) -> bytes:
        src = src or self.src
        dst = dst or self.host
        total = len(payload) + 20 if total is None else total
        ident = self.r.getrandbits(16) if ident is None else ident
        hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total & 0xFFFF, ident,
                          flags_frag, ttl, proto, 0, src, dst)
        c = csum(hdr)
        if bad_csum:
            c ^= 1 + self.r.getrandbits(15)
        hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
        return hdr + payload

    def tcp(self, sport, dport, seq, ack, flags, data=b"", src=None, dst=None, *, bad_csum=False,
            doff=5, window=65535) -> bytes:
        src = src or self.src
        dst = dst or self.host
        hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, doff << 4, flags,
                          window, 0, 0)
        seg = hdr + data
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
        c = csum(pseudo + seg)
        if bad_csum:
            c ^= 1 + self.r.getrandbits(15)
        return seg[:16] + struct.pack("!H", c) + seg[18:]

    def udp(self, sport, dport, data, src=None, dst=None, *, length=None, bad_csum=False) -> bytes:
        src = src or self.src
        dst = dst or self.host
        length = 8 + len(data) if length is None else length
        seg = struct.pack("!HHHH", sport, dport, length & 0xFFFF, 0) + data
        pseudo = src + dst + struct.pack("!BBH", 0, 17, 8 + len(data))
        c = csum(pseudo + seg) or 0xFFFF
        if bad_csum:
            c ^= 1 + self.r.getrandbits(15)
        return seg[:6] + struct.pack("!H", c) + seg[8:]


def kinds(g: Gen, a, live_sport: int):
    r = g.r
    port = a.port
    # Each entry: name -> function producing one frame.
    def random_frame():
        return g.rbytes(r.randint(14, 1514))

    def random_ethertype():
        return g.eth(g.rbytes(r.randint(0, 1500)), r.choice([0x0800, 0x0806, 0x86DD, 0x8100, r.getrandbits(16)]))

    def ipv4_bad_checksum():
        return g.eth(g.ipv4(6, g.tcp(r.randint(1024, 65535), port, r.getrandbits(32), 0, 0x02), bad_csum=True))

    def ipv4_bad_header():
        choice = r.randrange(7)
        payload = g.tcp(r.randint(1024, 65535), port, r.getrandbits(32), 0, 0x02)
        if choice == 0:
            return g.eth(g.ipv4(6, payload, ihl=r.randint(0, 4)))
        if choice == 1:
            return g.eth(g.ipv4(6, payload, ihl=15))
        if choice == 2:
            return g.eth(g.ipv4(6, payload, total=len(payload) + 20 + r.randint(1, 3000)))
        if choice == 3:
            return g.eth(g.ipv4(6, payload, total=r.randint(0, 19)))
        if choice == 4:
            return g.eth(g.ipv4(6, payload, version=r.choice([0, 5, 6, 15])))
        if choice == 5:  # fragments: first, middle, overlapping
            return g.eth(g.ipv4(r.choice([6, 17, 1]), g.rbytes(r.randint(8, 1400)),
                                flags_frag=r.choice([0x2000, 0x0000]) | r.randint(0, 0x1FFF)))
        return g.eth(g.ipv4(r.choice([0, 2, 47, 50, 132, 255]), g.rbytes(r.randint(0, 200))))

    def ipv4_truncated():
        frame = g.eth(g.ipv4(6, g.tcp(r.randint(1024, 65535), port, 1, 0, 0x02)))
        return frame[: r.randint(14, len(frame) - 1)]

    def tcp_bad_checksum():
        return g.eth(g.ipv4(6, g.tcp(live_sport, port, r.getrandbits(32), r.getrandbits(32), 0x18,
                                     g.rbytes(r.randint(1, 500)), bad_csum=True)))

    def tcp_bad_offset():
        seg = g.tcp(r.randint(1024, 65535), port, r.getrandbits(32), 0, 0x02, g.rbytes(r.randint(0, 30)),
                    doff=r.choice([0, 1, 4, 15]))
        return g.eth(g.ipv4(6, seg))

    def tcp_odd_flags():
        flags = r.choice([0x03, 0x3F, 0x00, 0x29, 0x06, 0xFF, 0x01, 0x04])
        return g.eth(g.ipv4(6, g.tcp(r.randint(1024, 65535), r.choice([port, r.randint(1, 65535)]),
                                     r.getrandbits(32), r.getrandbits(32), flags, g.rbytes(r.randint(0, 100)))))

    def tcp_out_of_window():
        # On the live connection: sequence numbers far from anything the kernel sent.
        flags = r.choice([0x10, 0x18, 0x04, 0x14, 0x02, 0x11, 0x12])
        data = g.rbytes(r.randint(1, 1000)) if flags in (0x10, 0x18) else b""
        return g.eth(g.ipv4(6, g.tcp(live_sport, port, r.getrandbits(32), r.getrandbits(32), flags, data)))

    def udp_bad():
        choice = r.randrange(4)
        data = g.rbytes(r.randint(0, 600))
        if choice == 0:
            return g.eth(g.ipv4(17, g.udp(r.randint(1024, 65535), r.randint(1, 65535), data,
                                          length=r.choice([0, 7, len(data) + 9, 65535]))))
        if choice == 1:
            return g.eth(g.ipv4(17, g.udp(r.randint(1024, 65535), r.randint(1, 65535), data, bad_csum=True)))
        if choice == 2:  # garbage DNS to the gateway
            return g.eth(g.ipv4(17, g.udp(r.randint(1024, 65535), 53, data, dst=g.gw), dst=g.gw))
        # garbage DHCP, broadcast
        bcast = b"\xff" * 4
        return g.eth(g.ipv4(17, g.udp(68, 67, data, src=b"\0" * 4, dst=bcast), src=b"\0" * 4, dst=bcast),
                     dst=b"\xff" * 6)

    def icmp_bad():
        choice = r.randrange(3)
        dst = r.choice([g.gw, g.host])
        if choice == 0:  # echo request with a bad checksum
            icmp = struct.pack("!BBHHH", 8, 0, r.getrandbits(16), 1, 1) + g.rbytes(r.randint(0, 1000))
            return g.eth(g.ipv4(1, icmp, dst=dst))
        if choice == 1:  # truncated
            return g.eth(g.ipv4(1, g.rbytes(r.randint(0, 3)), dst=dst))
        # destination unreachable quoting garbage
        body = struct.pack("!BBHI", 3, r.randint(0, 15), 0, 0) + g.rbytes(r.randint(0, 60))
        body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
        return g.eth(g.ipv4(1, body, dst=dst))

    def arp_bad():
        choice = r.randrange(3)
        if choice == 0:
            return g.eth(g.rbytes(r.randint(0, 60)), 0x0806, dst=b"\xff" * 6)
        # requests for random addresses, some with odd hardware/protocol sizes
        hlen, plen = (6, 4) if choice == 1 else (r.randint(0, 255), r.randint(0, 255))
        arp = struct.pack("!HHBBH", 1, 0x0800, hlen, plen, r.choice([1, 2, 3, 9])) + g.src_mac + g.src
        arp += b"\0" * 6 + bytes([192, 168, 65, r.randint(0, 255)])
        return g.eth(arp, 0x0806, dst=b"\xff" * 6)

    def syn_flood():
        # From the guest address (the kernel answers the SYN-ACK with RST) and from spoofed
        # addresses in the subnet that never answer ARP.
        if r.random() < 0.5:
            src = g.src
        else:
            src = bytes([192, 168, 65, r.randint(100, 199)])
        return g.eth(g.ipv4(6, g.tcp(r.randint(1024, 65535), port, r.getrandbits(32), 0, 0x02, src=src),
                            src=src))

    return {
        "random_frame": random_frame,
        "random_ethertype": random_ethertype,
        "ipv4_bad_checksum": ipv4_bad_checksum,
        "ipv4_bad_header": ipv4_bad_header,
        "ipv4_truncated": ipv4_truncated,
        "tcp_bad_checksum": tcp_bad_checksum,
        "tcp_bad_offset": tcp_bad_offset,
        "tcp_odd_flags": tcp_odd_flags,
        "tcp_out_of_window": tcp_out_of_window,
        "udp_bad": udp_bad,
        "icmp_bad": icmp_bad,
        "arp_bad": arp_bad,
        "syn_flood": syn_flood,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ifname", default="eth0")
    p.add_argument("--gw-mac", required=True)
    p.add_argument("--src-ip", required=True)
    p.add_argument("--host-ip", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=200, help="frames per kind")
    p.add_argument("--syn-flood", type=int, default=2000, help="SYNs in the flood")
    a = p.parse_args()

    g = Gen(a)
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind((a.ifname, 0))
    g.src_mac = raw.getsockname()[4][:6]

    live = socket.create_connection((a.host_ip, a.port), timeout=10)
    live_sport = live.getsockname()[1]

    makers = kinds(g, a, live_sport)
    plan = []
    for name in makers:
        n = a.syn_flood if name == "syn_flood" else a.count
        plan += [name] * n
    g.r.shuffle(plan)

    # Flow control: a TAP device drops frames when its reader falls behind, and a TAP counts a
    # frame in tx_packets only once the reader (the stack) has taken it. Keep at most WINDOW
    # frames outstanding, so every frame reaches the stack; give up waiting after a while (a
    # stack that stopped reading shows up as missing frames in the report).
    stats = f"/sys/class/net/{a.ifname}/statistics/"
    tx_start, drop_start = read_stat(stats + "tx_packets"), read_stat(stats + "tx_dropped")
    window = 100
    total = 0
    stalled = False
    sent = {name: 0 for name in makers}
    errors = {}
    for name in plan:
        frame = makers[name]()
        try:
            raw.send(frame)
            sent[name] += 1
            total += 1
        except OSError as e:
            key = f"{name}:{e.errno}"
            errors[key] = errors.get(key, 0) + 1
        if total % 50 == 0 and not stalled:
            deadline = time.monotonic() + 20
            while total - (read_stat(stats + "tx_packets") - tx_start) > window:
                if time.monotonic() > deadline:
                    stalled = True
                    break
                time.sleep(0.001)
    deadline = time.monotonic() + 20
    while read_stat(stats + "tx_packets") - tx_start < total and time.monotonic() < deadline:
        time.sleep(0.005)
    taken = read_stat(stats + "tx_packets") - tx_start
    tap_dropped = read_stat(stats + "tx_dropped") - drop_start

    answer = ""
    try:
        live.sendall(b"GET /hello/survivor HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while True:
            b = live.recv(65536)
            if not b:
                break
            chunks.append(b)
        answer = b"".join(chunks).decode("latin-1")
    except OSError as e:
        answer = f"error: {e}"
    print(json.dumps({"sent": sent, "errors": errors, "taken_by_stack": taken, "tap_dropped": tap_dropped,
                      "stalled": stalled, "live_connection": answer}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
