"""Everything a secured federation needs, made with the `cryptography` package (no openssl).

`fedge certs DIR --host NAME_OR_IP --device NAME ...` writes:
  ca.pem, ca.key          a CA that signs the server certificate; devices get ca.pem only
  server.pem, server.key  the server's certificate, its subject alternative names = the hosts,
                          then 127.0.0.1 and localhost (the server's own processes reach
                          their SuperLink on loopback, whatever address devices use)
  devices/NAME, NAME.pub  one ECDSA P-384 key pair per device in OpenSSH format, as Flower's
                          SuperNode authentication expects; the server gets the .pub files
Private keys are written owner-read-only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedge.security import CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY

DEVICES = "devices"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
VALID_DAYS = 365


def make_certs(folder: Path, hosts: list[str], devices: list[str]) -> list[Path]:
    """Write a CA, a server certificate for `hosts` and a key pair per device; return the files."""
    folder = Path(folder)
    taken = [folder / name for name in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY) if (folder / name).exists()]
    if taken:
        raise ValueError(f"{taken[0]} already exists; choose an empty folder (existing keys are never "
                         "overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedge CA")])
    ca = (_builder(ca_name, ca_name, ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA384()))
    server_key = ec.generate_private_key(ec.SECP384R1())
    names = [*hosts, *(name for name in LOOPBACK_NAMES if name not in hosts)]
    server = (_builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), ca_name, server_key)
              .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in names]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA384()))
    written = [_write(folder / CA_CERT, ca.public_bytes(serialization.Encoding.PEM)),
               _write(folder / CA_KEY, _pem_key(ca_key), private=True),
               _write(folder / SERVER_CERT, server.public_bytes(serialization.Encoding.PEM)),
               _write(folder / SERVER_KEY, _pem_key(server_key), private=True)]
    for device in devices:
        written += make_device_key(folder / DEVICES / device)
    return written


def make_device_key(path: Path) -> list[Path]:
    """An ECDSA P-384 key pair in OpenSSH format: `path` (private) and `path`.pub."""
    if path.exists():
        raise ValueError(f"{path} already exists; existing keys are never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return [_write(path, private, private=True), _write(path.with_name(path.name + ".pub"), public + b"\n")]


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS)))


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path
