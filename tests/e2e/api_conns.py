#!/usr/bin/env python3
"""api_conns.py — what zgate-api does with slow, silent and too many
connections (tests/e2e/t_api.sh). Each check prints one line and exits 1
when zgate-api did not behave.

  api_conns.py early --host H --port P --ca CA
      An unauthenticated POST whose head announces a 100 kB body, and no
      body: the 401 must come at once and the connection close, without
      zgate-api waiting for the body.
  api_conns.py deadline --host H --port P --ca CA --within S
      A TCP connection that sends nothing, and a TLS connection that sends
      its request head one byte every 0.2 s: zgate-api must close both
      within S seconds.
  api_conns.py keepalive --host H --port P --ca CA --cert C --key K --wait-file F
      GET /api/v1/ipam/allocations/nobody twice on one keep-alive
      connection, the second once file F exists; prints both statuses
      ("404 401": the second saw a change of credentials, e.g. a CRL).
  api_conns.py peraddr --host H --port P --ca CA --cap N
      N keep-alive connections (one request each) stay open; the next
      connection from the same address is closed at once; after one of the
      N closes, a new one is served.
  api_conns.py chunked --host H --port P --ca CA --cert C --key K [--total B]
      An authenticated POST of an allocation whose chunked body (no
      Content-Length: nothing to refuse at the head) is B bytes (default
      1 MiB, 256 times the 4096-byte limit), sent 1 KiB at a time: zgate-api
      must refuse it (413, or at least the connection closed) once the
      body passes the limit, when at most 64 KiB have been sent, not read
      it to the end.
  api_conns.py bigslots --host H --port P --ca CA --cert C --key K [--cap N]
      N admin POSTs of a policy announcing a 5 MB body each send 64 KiB of
      it and wait: they hold the N large-body slots. One more is answered
      503 at its head; once one of the N is closed, a body over 4096 bytes
      is read again (a validation, 200).
"""
import argparse
import os
import select
import socket
import ssl
import sys
import time


def tls(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    s = socket.create_connection((a.host, a.port), timeout=5)
    return ctx.wrap_socket(s, server_hostname=a.host)


def read_all(s, limit):
    """What s sends until it closes, or None if it is still open after limit s."""
    s.settimeout(limit)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (socket.timeout, TimeoutError):
        return None
    except (ConnectionResetError, ssl.SSLError, OSError):
        return data


def early(a):
    s = tls(a)
    t0 = time.monotonic()
    s.sendall(b"POST /api/v1/ipam/allocations HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    data = read_all(s, 3)
    dt = time.monotonic() - t0
    if data is None:
        print("early: no answer within 3 s: zgate-api waits for the body before checking credentials")
        return 1
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    print(f"early: {line!r} and closed after {dt:.2f} s, body unsent")
    return 0 if " 401 " in line + " " else 1


def deadline(a):
    t0 = time.monotonic()
    silent = socket.create_connection((a.host, a.port), timeout=5)
    slow = tls(a)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    closed_slow = None
    for b in head:
        try:
            slow.sendall(bytes([b]))
            if select.select([slow], [], [], 0.2)[0] and not slow.recv(4096):
                raise ConnectionResetError
        except (OSError, ssl.SSLError):
            closed_slow = time.monotonic() - t0
            break
        if time.monotonic() - t0 > a.within + 2:
            break
    r = read_all(silent, max(0.1, a.within + 1 - (time.monotonic() - t0)))
    closed_silent = time.monotonic() - t0 if r is not None else None
    print(f"deadline: silent TCP closed after {closed_silent}, slow head closed after {closed_slow} "
          f"(limit {a.within} s)")
    ok = closed_silent is not None and closed_silent <= a.within + 1 and \
        closed_slow is not None and closed_slow <= a.within + 1
    return 0 if ok else 1


def health(s):
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    data = b""
    while b"ok\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return False
        data += chunk
    return data.startswith(b"HTTP/1.1 200")


def peraddr(a):
    held = []
    for i in range(a.cap):
        s = tls(a)
        if not health(s):
            print(f"peraddr: connection {i + 1} of {a.cap} not served")
            return 1
        held.append(s)
    refused = False
    try:
        extra = tls(a)  # the server closes it before or during the handshake
        refused = not health(extra)
    except (OSError, ssl.SSLError):
        refused = True
    if not refused:
        print(f"peraddr: connection {a.cap + 1} from one address was served")
        return 1
    held.pop().close()
    time.sleep(0.3)
    s = tls(a)
    ok = health(s)
    print(f"peraddr: {a.cap} held, the next refused, served again after one closed: {ok}")
    return 0 if ok else 1


def keepalive(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    s = ctx.wrap_socket(socket.create_connection((a.host, a.port), timeout=10),
                        server_hostname=a.host)
    codes = []
    for i in range(2):
        if i == 1:
            for _ in range(200):
                if os.path.exists(a.wait_file):
                    break
                time.sleep(0.05)
        s.sendall(b"GET /api/v1/ipam/allocations/nobody HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        codes.append(data.split(b" ", 2)[1].decode() if data else "closed")
    print(" ".join(codes))
    return 0


def chunked(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    s = ctx.wrap_socket(socket.create_connection((a.host, a.port), timeout=10),
                        server_hostname=a.host)
    s.sendall(b"POST /api/v1/ipam/allocations HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"400\r\n" + b" " * 1024 + b"\r\n"
    sent, stopped, data = 0, None, b""
    while sent < a.total:
        try:
            s.sendall(piece)
        except (OSError, ssl.SSLError) as e:
            stopped = f"send failed ({e.__class__.__name__})"
            break
        sent += 1024
        if select.select([s], [], [], 0.002)[0]:
            stopped = "answered"
            break
    if stopped is None:
        # the whole body went in: end it and see what comes
        try:
            s.sendall(b"0\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass
    r = read_all(s, 5)
    data = r or b""
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    print(f"chunked: {sent} of {a.total} body bytes sent, then {stopped or 'the end of the body'}; "
          f"answer {line!r}")
    if stopped is None or sent > 64 * 1024:
        print(f"chunked: zgate-api read {sent} bytes of a chunked body over the limit before refusing it")
        return 1
    if data and not line.startswith("HTTP/1.1 413 "):
        print("chunked: the answer is not a 413")
        return 1
    return 0


def big_post(a, length, body, path=b"/api/v1/policies"):
    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    s = ctx.wrap_socket(socket.create_connection((a.host, a.port), timeout=10),
                        server_hostname=a.host)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n" % (path, length) + body)
    return s


def status(s):
    data = read_all(s, 5) or b""
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def bigslots(a):
    held = [big_post(a, 5000000, b'{"document":"' + b"a" * 65536) for _ in range(a.cap)]
    time.sleep(0.5)
    line = status(big_post(a, 5000000, b'{"document":"'))
    print(f"bigslots: {a.cap} large bodies held, one more: {line!r}")
    if " 503 " not in line + " ":
        return 1
    held.pop().close()
    time.sleep(0.5)
    doc = b"version: 1\\n#" + b"a" * 5000
    body = b'{"document":"' + doc + b'"}'
    line = status(big_post(a, len(body), body, b"/api/v1/policies/validate"))
    print(f"bigslots: one closed, then a 5 kB body: {line!r}")
    for s in held:
        s.close()
    return 0 if line.startswith("HTTP/1.1 20") else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["early", "deadline", "peraddr", "keepalive", "chunked",
                                     "bigslots"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--wait-file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--within", type=float, default=1.0)
    p.add_argument("--cap", type=int, default=4)
    p.add_argument("--total", type=int, default=1 << 20)
    a = p.parse_args()
    return {"early": early, "deadline": deadline, "peraddr": peraddr,
            "keepalive": keepalive, "chunked": chunked, "bigslots": bigslots}[a.what](a)


if __name__ == "__main__":
    sys.exit(main())
