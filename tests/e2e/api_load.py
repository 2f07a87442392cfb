#!/usr/bin/env python3
"""api_load.py — concurrent clients of zgate-api for tests and the benchmark.

  api_load.py race  --url U [--url U2] --ca CA --cert C --key K --clients N [--twice]
      N threads, released together by a barrier, each POSTs one allocation
      for client "race-<i>" to the URLs in turn (a fresh TLS connection
      each). With --twice every client is also allocated a second time,
      at the same moment, through the other URL. Prints one line per
      client ("race-<i> <status> <address>") and exits 0 only when every
      answer was 200/201 and the addresses are distinct per client (and
      the same for a client's two answers).
  api_load.py bench --url U ... --clients N --workers W
      W threads with one keep-alive connection each allocate N clients;
      prints allocations/s and p50/p99 latency in milliseconds.
"""
import argparse
import http.client
import json
import socket
import ssl
import sys
import threading
import time
from urllib.parse import urlparse


def context(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    return ctx


def connect(url, ctx):
    u = urlparse(url)
    return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)


def allocate(conn, client):
    body = json.dumps({"client_id": client})
    conn.request("POST", "/api/v1/ipam/allocations", body=body,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    addr = json.loads(data).get("address", "-") if r.status in (200, 201) else data.decode()
    return r.status, addr


def race(a):
    ctx = context(a)
    jobs = []
    for i in range(a.clients):
        jobs.append((f"race-{i}", a.url[i % len(a.url)]))
        if a.twice:
            jobs.append((f"race-{i}", a.url[(i + 1) % len(a.url)]))
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(k):
        client, url = jobs[k]
        conn = connect(url, ctx)
        try:
            conn.connect()  # the handshake before the barrier: the requests race, not the TLS
            barrier.wait(timeout=60)
            results[k] = allocate(conn, client)
        except Exception as e:  # reported as a failed client below
            results[k] = (0, repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = True
    by_client = {}
    for (client, url), (status, addr) in zip(jobs, results):
        print(client, status, addr)
        if status not in (200, 201):
            ok = False
        by_client.setdefault(client, set()).add(addr)
    if any(len(s) != 1 for s in by_client.values()):
        print("FAIL: a client got two different addresses", file=sys.stderr)
        ok = False
    addrs = [next(iter(s)) for s in by_client.values()]
    if len(set(addrs)) != len(addrs):
        print("FAIL: one address given to two clients", file=sys.stderr)
        ok = False
    print(f"clients {len(by_client)} answers {len(jobs)} distinct_addresses {len(set(addrs))}")
    return 0 if ok else 1


class RawConn:
    """A minimal keep-alive HTTP/1.1 client for the benchmark: http.client
    parses every answer's headers with the email package, which cost more
    CPU than zgate-api spent on the request, on the same two cores."""

    def __init__(self, url, ctx):
        u = urlparse(url)
        self.host = f"{u.hostname}:{u.port}"
        raw = socket.create_connection((u.hostname, u.port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname=u.hostname)
        self.buf = b""

    def post(self, path, body):
        """Sends one POST; returns (status, body bytes)."""
        self.sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                           f"Content-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        while b"\r\n\r\n" not in self.buf:
            self.recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        if length is None:
            raise RuntimeError("answer without Content-Length")
        while len(self.buf) < length:
            self.recv()
        data, self.buf = self.buf[:length], self.buf[length:]
        return status, data

    def recv(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("server closed the connection")
        self.buf += d

    def close(self):
        self.sock.close()


def bench(a):
    ctx = context(a)
    lat = []
    lock = threading.Lock()
    nxt = [0]
    errors = [0]

    def run(w):
        conn = RawConn(a.url[w % len(a.url)], ctx)
        mine = []
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= a.clients:
                break
            t0 = time.perf_counter()
            status, _ = conn.post("/api/v1/ipam/allocations",
                                  b'{"client_id":"bench-%s-%d"}' % (a.tag.encode(), i))
            mine.append(time.perf_counter() - t0)
            if status != 201:
                errors[0] += 1
        conn.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(a.workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print(f"allocations {len(lat)} errors {errors[0]} seconds {dt:.2f} "
          f"per_second {len(lat) / dt:.0f} p50_ms {p(0.50):.2f} p99_ms {p(0.99):.2f}")
    return 0 if errors[0] == 0 and len(lat) == a.clients else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["race", "bench"])
    ap.add_argument("--url", action="append", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--twice", action="store_true")
    ap.add_argument("--tag", default="0")
    a = ap.parse_args()
    sys.exit(race(a) if a.mode == "race" else bench(a))


if __name__ == "__main__":
    main()
