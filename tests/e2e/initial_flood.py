#!/usr/bin/env python3
"""initial_flood.py RELAY_HOST RELAY_PORT COUNT -- PROBE_ARGV...

A burst of QUIC handshakes from one address, for the fairness scenario:
runs PROBE_ARGV (a zgate-probe aimed at a local UDP port this script
listens on) to capture one real client first flight (every Initial of its
ClientHello: two with an X25519MLKEM768 key share), decrypts each with the
Initial keys of its Destination Connection ID (RFC 9001 5.2), and sends
COUNT copies of the flight to the relay, each re-encrypted under a fresh
random DCID, as fast as the socket takes them. Each one is a new
connection whose whole ClientHello costs the relay a full handshake (key
exchange, signature); nobody answers the relay's flight. Prints "sent N"
(flights).
"""
import os, socket, subprocess, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC

SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")


def hkdf_extract(salt, ikm):
    h = HMAC(salt, hashes.SHA256()); h.update(ikm); return h.finalize()


def expand_label(secret, label, length):
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\0"
    out, t, i = b"", b"", 1
    while len(out) < length:
        h = HMAC(secret, hashes.SHA256()); h.update(t + info + bytes([i])); t = h.finalize()
        out += t; i += 1
    return out[:length]


def keys(dcid):
    s = expand_label(hkdf_extract(SALT, dcid), b"client in", 32)
    return expand_label(s, b"quic key", 16), expand_label(s, b"quic iv", 12), expand_label(s, b"quic hp", 16)


def mask(hp, sample):
    e = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    return e.update(sample) + e.finalize()


def varint(b, i):
    n = 1 << (b[i] >> 6)
    v = b[i] & 0x3F
    for k in range(1, n):
        v = (v << 8) | b[i + k]
    return v, i + n


def parse(d):
    """(scid, plaintext, pn, pn_len, packet length) of the first Initial in d."""
    if d[0] & 0xF0 != 0xC0:
        raise SystemExit("not an Initial packet")
    i = 5
    dcid = d[i + 1:i + 1 + d[i]]; i += 1 + d[i]
    scid = d[i + 1:i + 1 + d[i]]; i += 1 + d[i]
    tlen, i = varint(d, i); i += tlen
    plen, i = varint(d, i)
    key, iv, hp = keys(dcid)
    m = mask(hp, d[i + 4:i + 20])
    first = d[0] ^ (m[0] & 0x0F)
    pnl = (first & 3) + 1
    pn = int.from_bytes(bytes(a ^ b for a, b in zip(d[i:i + pnl], m[1:1 + pnl])), "big")
    hdr = bytes([first]) + d[1:i] + pn.to_bytes(pnl, "big")
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    pt = AESGCM(key).decrypt(nonce, d[i + pnl:i + plen], hdr)
    return first, scid, pt, pn, pnl, plen


def build(first, scid, pt, pn, pnl, plen, dcid):
    key, iv, hp = keys(dcid)
    l = plen.to_bytes(2, "big"); l = bytes([l[0] | 0x40]) + l[1:]  # 2-byte varint
    hdr = bytes([first]) + (1).to_bytes(4, "big") + bytes([len(dcid)]) + dcid + \
        bytes([len(scid)]) + scid + b"\0" + l
    pnb = pn.to_bytes(pnl, "big")
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    ct = AESGCM(key).encrypt(nonce, pt, hdr + pnb)
    m = mask(hp, ct[4 - pnl:20 - pnl])
    out = bytearray(hdr + pnb + ct)
    out[0] ^= m[0] & 0x0F
    for k in range(pnl):
        out[len(hdr) + k] ^= m[1 + k]
    return bytes(out)


def main(a):
    host, port, count = a[0], int(a[1]), int(a[2])
    probe = a[a.index("--") + 1:]
    lst = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lst.bind(("127.0.0.1", 14433))
    lst.settimeout(10)
    p = subprocess.Popen(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    flight = []
    try:
        d, _ = lst.recvfrom(65535)
        flight.append(parse(d))
        # the rest of the flight follows at once; a retransmission would
        # come only after the probe's timeout (about 1 s)
        lst.settimeout(0.2)
        while True:
            try:
                d, _ = lst.recvfrom(65535)
            except socket.timeout:
                break
            flight.append(parse(d))
    finally:
        p.kill(); p.wait()
    pkts = []
    for _ in range(count):
        dcid = os.urandom(16)
        pkts += [build(*f, dcid) for f in flight]
    pkts = [x + b"\0" * max(0, 1200 - len(x)) for x in pkts]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    for x in pkts:
        s.send(x)
    print("sent", count, "flights of", len(flight), "Initials", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
