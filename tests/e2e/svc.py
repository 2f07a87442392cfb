#!/usr/bin/env python3
"""tests/e2e/svc.py — the service side and client side of the end-to-end
scenarios: TCP sink/source with SHA-256, echo servers, a minimal DNS
responder, and a client that runs many TCP connections at once.

  svc.py tcp-sink ADDR PORT            accept connections; print "sha256 N HEX" per connection
  svc.py tcp-source ADDR PORT NBYTES   accept one connection at a time; send NBYTES random bytes,
                                       print "sha256 N HEX" of what was sent
  svc.py tcp-echo ADDR PORT            echo every connection (threads)
  svc.py http ADDR PORT BODY          answer every HTTP request 200 with BODY (HTTP/1.0)
  svc.py tcp-stall ADDR PORT           accept connections and never read them (a stalled upstream)
  svc.py udp-echo ADDR PORT            echo every datagram
  svc.py dns ADDR PORT NAME IPV4       answer A queries for NAME with IPV4 (others: NXDOMAIN)
  svc.py send ADDR PORT NBYTES         connect, send NBYTES random bytes, print "sha256 N HEX"
  svc.py recv ADDR PORT                connect, read to EOF, print "sha256 N HEX"
  svc.py udp-query ADDR PORT TEXT      send TEXT, print the reply (2 s timeout; an ICMP error
                                       fails at once)
  svc.py dns-query ADDR PORT NAME      print the A records of NAME
  svc.py many ADDR PORT COUNT SIZE     COUNT concurrent connections to an echo server, SIZE
                                       random bytes each; print "ok COUNT" when every byte came back
  svc.py raw-syn IFACE SRC DST PORT    put a TCP SYN SRC -> DST:PORT straight onto IFACE (a packet
                                       socket: no routing, so any destination, even 127.0.0.1, enters
                                       the tunnel) and print the answer that comes back in 2 s:
                                       "synack", "rst", "icmp TYPE CODE" or "none"
Exit status 0 on success, 1 on any mismatch, timeout or error (printed).
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time

CHUNK = 1 << 16


def serve_forever(addr, port, handler):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(512)
    print("listening", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()


def http(c, body):
    # One HTTP/1.0 answer with body, whatever was asked.
    req = b""
    while b"\r\n\r\n" not in req:
        b = c.recv(4096)
        if not b:
            break
        req += b
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
              % (len(body), body))
    c.close()


def sink(c):
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(CHUNK)
        if not b:
            break
        h.update(b)
        n += len(b)
    c.close()
    print(f"sha256 {n} {h.hexdigest()}", flush=True)


def source(c, nbytes):
    # Random bytes with the offset stamped into every 1 KiB: a segment lost,
    # repeated or put in the wrong place changes the digest.
    h, n, block = hashlib.sha256(), 0, bytearray(os.urandom(CHUNK))
    while n < nbytes:
        for off in range(0, CHUNK, 1024):
            struct.pack_into("!Q", block, off, n + off)
        b = block[: min(CHUNK, nbytes - n)]
        c.sendall(b)
        h.update(b)
        n += len(b)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    c.close()
    print(f"sha256 {n} {h.hexdigest()}", flush=True)


def echo(c):
    while True:
        b = c.recv(CHUNK)
        if not b:
            break
        c.sendall(b)
    c.close()


def dns_answer(q, name, ip):
    if len(q) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    labels, i = [], 12
    while i < len(q) and q[i]:
        labels.append(q[i + 1 : i + 1 + q[i]].decode(errors="replace"))
        i += 1 + q[i]
    qname, qend = ".".join(labels).lower(), i + 5
    qtype = struct.unpack("!H", q[i + 1 : i + 3])[0] if len(q) >= i + 3 else 0
    question = q[12:qend]
    if qname == name.lower() and qtype == 1:
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
        return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + rr
    return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question


def dns_query(addr, port, name):
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for part in name.split("."):
        q += bytes([len(part)]) + part.encode()
    q += b"\x00" + struct.pack("!HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(q, (addr, port))
    r, _ = s.recvfrom(512)
    an = struct.unpack("!H", r[6:8])[0]
    i = 12 + len(q) - 12  # skip our question
    out = []
    for _ in range(an):
        i += 2
        typ, _cls, _ttl, rdlen = struct.unpack("!HHIH", r[i : i + 10])
        i += 10
        if typ == 1:
            out.append(socket.inet_ntoa(r[i : i + rdlen]))
        i += rdlen
    return out


def many(addr, port, count, size):
    errors = []

    def one(k):
        try:
            data = os.urandom(size)
            c = socket.create_connection((addr, port), timeout=30)
            got = bytearray()
            t = threading.Thread(target=lambda: c.sendall(data))
            t.start()
            while len(got) < size:
                b = c.recv(CHUNK)
                if not b:
                    break
                got += b
            t.join()
            c.close()
            if bytes(got) != data:
                errors.append(f"connection {k}: {len(got)} of {size} bytes, content differs")
        except OSError as e:
            errors.append(f"connection {k}: {e}")

    threads = [threading.Thread(target=one, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"{len(errors)} of {count} failed; first: {errors[0]}")
        return 1
    print(f"ok {count}")
    return 0


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def raw_syn(iface, src, dst, port):
    sa, da = socket.inet_aton(src), socket.inet_aton(dst)
    sport = 40000 + os.getpid() % 20000
    tcp = struct.pack("!HHIIBBHHH", sport, port, 12345, 0, 5 << 4, 0x02, 65535, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", csum(sa + da + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, sa, da)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    ETH_P_ALL, ETH_P_IP = 0x0003, 0x0800
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    rx.bind((iface, ETH_P_ALL))
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    tx.sendto(ip + tcp, (iface, ETH_P_IP))
    rx.settimeout(0.2)
    deadline = time.time() + 2
    while time.time() < deadline:
        try:
            p, addr = rx.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING or len(p) < 20 or p[0] >> 4 != 4 or p[16:20] != sa:
            continue
        hl = (p[0] & 15) * 4
        if p[9] == 6 and p[12:16] == da and struct.unpack("!H", p[hl + 2 : hl + 4])[0] == sport:
            flags = p[hl + 13]
            return "rst" if flags & 0x04 else "synack" if flags & 0x12 == 0x12 else f"tcp {flags:#x}"
        if p[9] == 1 and p[hl] == 3 and p[hl + 8 + 16 : hl + 8 + 20] == da:
            return f"icmp {p[hl]} {p[hl + 1]}"
    return "none"


def main(a):
    cmd = a[0]
    if cmd == "tcp-sink":
        serve_forever(a[1], int(a[2]), sink)
    elif cmd == "tcp-source":
        nbytes = int(a[3])
        serve_forever(a[1], int(a[2]), lambda c: source(c, nbytes))
    elif cmd == "http":
        body = (a[3] + "\n").encode()
        serve_forever(a[1], int(a[2]), lambda c: http(c, body))
    elif cmd == "tcp-echo":
        serve_forever(a[1], int(a[2]), echo)
    elif cmd == "tcp-stall":
        s = socket.socket(socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited: small kernel buffers
        s.bind((a[1], int(a[2])))
        s.listen(4096)
        print("listening", flush=True)
        held = []
        while True:
            held.append(s.accept()[0])
    elif cmd == "udp-echo" or cmd == "dns":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a[1], int(a[2])))
        print("listening", flush=True)
        while True:
            q, peer = s.recvfrom(65535)
            r = q if cmd == "udp-echo" else dns_answer(q, a[3], a[4])
            if r:
                s.sendto(r, peer)
    elif cmd == "send":
        t0 = time.monotonic()
        try:
            c = socket.create_connection((a[1], int(a[2])), timeout=30)
        except OSError as e:  # the time is the refusal's, not python's start-up
            print(f"{e} (after {int((time.monotonic() - t0) * 1000)} ms)", file=sys.stderr)
            return 1
        source(c, int(a[3]))
    elif cmd == "recv":
        c = socket.create_connection((a[1], int(a[2])), timeout=30)
        sink(c)
    elif cmd == "udp-query":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.connect((a[1], int(a[2])))  # connected: an ICMP error fails recv at once
        t0 = time.monotonic()
        s.send(a[3].encode())
        try:
            print(s.recv(65535).decode())
        except OSError as e:
            print(f"{e} (after {int((time.monotonic() - t0) * 1000)} ms)", file=sys.stderr)
            return 1
    elif cmd == "dns-query":
        print(" ".join(dns_query(a[1], int(a[2]), a[3])))
    elif cmd == "many":
        return many(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif cmd == "raw-syn":
        print(raw_syn(a[1], a[2], a[3], int(a[4])))
    else:
        print(__doc__)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError, IndexError) as e:
        print(f"svc.py: {e}", file=sys.stderr)
        sys.exit(1)
