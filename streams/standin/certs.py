"""A local CA and a TLS certificate for 127.0.0.1/localhost, generated once and cached on disk.

google-genai always speaks `wss://` to the Live API (PROTOCOLS.md A2), so the stand-in must
serve TLS. A separate CA signs the server certificate (rather than one self-signed leaf) so
that OpenSSL's strict verification, the default from Python 3.13, accepts the chain too.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID_FOR = dt.timedelta(days=3650)
_RENEW_BEFORE = dt.timedelta(days=30)
CA_FILE = "standin-ca.pem"
CERT_FILE = "standin-cert.pem"
KEY_FILE = "standin-key.pem"


@dataclass(frozen=True, slots=True, kw_only=True)
class CertPaths:
    """Where the stand-in's TLS material lives: trust `ca_file`, serve `cert_file` + `key_file`."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def ensure_certificate(cert_dir: Path) -> CertPaths:
    """Return the cached CA/cert/key in `cert_dir`, generating them if missing or near expiry."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(
        ca_file=cert_dir / CA_FILE, cert_file=cert_dir / CERT_FILE, key_file=cert_dir / KEY_FILE
    )
    with _locked(cert_dir / ".lock"):
        if not _usable(paths):
            _generate(paths)
    return paths


def client_ssl_context(ca_file: Path | str) -> ssl.SSLContext:
    """A client context that trusts the stand-in's CA (hostname checks stay on)."""
    return ssl.create_default_context(cafile=str(ca_file))


def server_ssl_context(paths: CertPaths) -> ssl.SSLContext:
    """The server side of the stand-in's TLS."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(paths.cert_file), str(paths.key_file))
    return ctx


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    # Two processes starting together must not write a CA and a leaf that do not match.
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _usable(paths: CertPaths) -> bool:
    if not (paths.ca_file.exists() and paths.cert_file.exists() and paths.key_file.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(paths.cert_file.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc - _RENEW_BEFORE > dt.datetime.now(dt.UTC)


def _generate(paths: CertPaths) -> None:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voiceagent offline Gemini stand-in CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(paths.key_file, key_pem, mode=0o600)
    _write(paths.cert_file, leaf.public_bytes(pem) + ca_cert.public_bytes(pem))
    _write(paths.ca_file, ca_cert.public_bytes(pem))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
