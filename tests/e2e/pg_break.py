#!/usr/bin/env python3
"""tests/e2e/pg_break.py --listen DIR --to DIR --break NAME [--break NAME...]

A PostgreSQL proxy on Unix sockets (DIR/.s.PGSQL.5432 to the server's
DIR/.s.PGSQL.5432) that loses one answer: the first execution of each
prepared statement NAME (its Bind message) is forwarded to the server, and
once the server has answered it in full (ReadyForQuery: the statement's
implicit transaction committed), both connections are closed without a byte
of that answer reaching the client. The client sees a connection that broke
after its write committed. Each NAME is broken once; everything else passes
unchanged. Prints "ready" once listening, one line per broken statement.
"""
import argparse
import os
import selectors
import socket
import struct
import sys

SOCK = ".s.PGSQL.5432"
SSL_REQUEST, GSS_REQUEST = 80877103, 80877104


class Pair:
    def __init__(self, c, u):
        self.c, self.u = c, u
        self.cbuf = b""  # client bytes not yet parsed into messages
        self.startup = True  # the client's next message has no type byte
        self.armed = False  # a broken statement was sent: drop the answer
        self.sbuf = b""
        self.closed = False

    def client_data(self, data, breaks):
        self.cbuf += data
        while True:
            if self.startup:
                if len(self.cbuf) < 8:
                    return
                n, code = struct.unpack("!II", self.cbuf[:8])
                if len(self.cbuf) < n:
                    return
                self.cbuf = self.cbuf[n:]
                self.startup = code in (SSL_REQUEST, GSS_REQUEST)
                continue
            if len(self.cbuf) < 5:
                return
            n = struct.unpack("!I", self.cbuf[1:5])[0]
            if len(self.cbuf) < 1 + n:
                return
            msg, self.cbuf = self.cbuf[: 1 + n], self.cbuf[1 + n :]
            if msg[:1] == b"B":
                stmt = msg[5:].split(b"\0")[1].decode()
                if stmt in breaks:
                    breaks.remove(stmt)
                    self.armed = True
                    print(f"breaking the answer to {stmt}", flush=True)

    def server_data(self, data):
        """Returns the bytes to forward, or None to close the pair."""
        if not self.armed:
            return data
        self.sbuf += data
        while len(self.sbuf) >= 5:
            n = struct.unpack("!I", self.sbuf[1:5])[0]
            if len(self.sbuf) < 1 + n:
                break
            if self.sbuf[:1] == b"Z":
                return None
            self.sbuf = self.sbuf[1 + n :]
        return b""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--break", dest="breaks", action="append", required=True)
    a = ap.parse_args()
    breaks = set(a.breaks)
    path = os.path.join(a.listen, SOCK)
    if os.path.exists(path):
        os.unlink(path)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    print("ready", flush=True)

    def close(p):
        p.closed = True
        for s in (p.c, p.u):
            sel.unregister(s)
            s.close()

    while True:
        for key, _ in sel.select():
            if key.data is None:
                c, _ = ls.accept()
                u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    u.connect(os.path.join(a.to, SOCK))
                except OSError as e:
                    print(f"cannot reach the server: {e}", file=sys.stderr, flush=True)
                    c.close()
                    continue
                p = Pair(c, u)
                sel.register(c, selectors.EVENT_READ, (p, True))
                sel.register(u, selectors.EVENT_READ, (p, False))
                continue
            p, from_client = key.data
            if p.closed:
                continue
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(p)
                continue
            if from_client:
                p.client_data(data, breaks)  # arms before the Bind goes out
                p.u.sendall(data)
            else:
                out = p.server_data(data)
                if out is None:
                    close(p)
                elif out:
                    p.c.sendall(out)


if __name__ == "__main__":
    main()
