"""TLS material: a development certificate when none is configured.

ECDSA P-256, valid 14 days: the cheapest handshake, and the only kind browsers accept
for WebTransport ``serverCertificateHashes`` (which also caps validity at 14 days).
It is regenerated when fewer than 2 days remain.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["certificate_sha256", "ensure_dev_certificate", "generate_certificate"]

_VALIDITY = datetime.timedelta(days=14)
_RENEW_BEFORE = datetime.timedelta(days=2)


def generate_certificate(
    hostnames: tuple[str, ...] = ("localhost",),
    addresses: tuple[str, ...] = ("127.0.0.1", "::1"),
) -> tuple[bytes, bytes]:
    """A self-signed ``(certificate_pem, private_key_pem)`` pair."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY - datetime.timedelta(minutes=5))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def ensure_dev_certificate(state_dir: str | Path) -> tuple[Path, Path]:
    """Paths of a usable development certificate and key, made or renewed as needed.

    Several processes may share a state directory (``imaccess cluster``): a file lock
    makes one of them generate the pair while the others wait and then reuse it.
    """
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "dev-cert.pem", directory / "dev-key.pem"
    with (directory / ".dev-cert.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > _RENEW_BEFORE:
                return cert_path, key_path
        cert_pem, key_pem = generate_certificate()
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        cert_path.write_bytes(cert_pem)
    return cert_path, key_path


def certificate_sha256(cert_pem: bytes) -> bytes:
    """SHA-256 of the DER certificate (WebTransport ``serverCertificateHashes``)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
