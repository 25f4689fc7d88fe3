"""The stand-in's TLS material: generated once, reused, and trusted for 127.0.0.1 and localhost."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from streams.standin.certs import client_ssl_context, ensure_certificate, server_ssl_context


def test_certificate_is_generated_once_and_covers_loopback(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path)
    before = first.cert_file.read_bytes()
    again = ensure_certificate(tmp_path)
    assert again == first
    assert again.cert_file.read_bytes() == before
    leaf = x509.load_pem_x509_certificate(before)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert first.key_file.stat().st_mode & 0o077 == 0
    assert client_ssl_context(first.ca_file).check_hostname
    server_ssl_context(first)  # the key matches the certificate


def test_a_damaged_certificate_is_regenerated(tmp_path: Path) -> None:
    paths = ensure_certificate(tmp_path)
    paths.cert_file.write_text("garbage")
    assert ensure_certificate(tmp_path).cert_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
