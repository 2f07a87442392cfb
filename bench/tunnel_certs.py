#!/usr/bin/env python3
"""tunnel_certs.py PKI_DIR OUT_DIR N — N client certificates for bench/tunnels.

Signs OUT_DIR/t00000.crt ... (CN t00000 ..., clientAuth, 2 days) with
PKI_DIR/ca.crt + ca.key (scripts/gen-certs.sh) for one shared key,
OUT_DIR/client.key. openssl(1) per certificate takes minutes for 10,000;
this takes seconds (Debian's python3-cryptography).
"""
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def main():
    if len(sys.argv) != 4 or not sys.argv[3].isdigit():
        sys.exit("usage: tunnel_certs.py PKI_DIR OUT_DIR N")
    pki, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(os.path.join(pki, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(pki, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    os.makedirs(out, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(out, "client.key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    now = datetime.datetime.now(datetime.timezone.utc)
    for i in range(n):
        cn = "t%05d" % i
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(ca.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                             False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        with open(os.path.join(out, cn + ".crt"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))


if __name__ == "__main__":
    main()
