"""The pinned connection still speaks TLS to the host's name: SNI and the certificate check use the
name while the socket goes to the address that was checked (no second DNS lookup)."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.lnurl import RecipientUnreachable, SafeFetcher
from tests.lnurl_support import LnurlTestServer, Reply

NAME = "wallet.lnurl.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_ca_and_server_cert(directory: Path, dns_name: str) -> tuple[Path, Path, Path]:
    """A test CA (ca.pem) and a server certificate for ``dns_name`` signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("lnurl test CA"))
        .issuer_name(_name("lnurl test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[LnurlTestServer, Path, list[str]]]:
    ca, cert, key = write_ca_and_server_cert(tmp_path, NAME)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server_names: list[str] = []
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    server = LnurlTestServer(tls=context).start()
    try:
        yield server, ca, server_names
    finally:
        server.stop()


def pinned_fetcher(port: int, ca: Path, lookups: list[str]) -> SafeFetcher:
    def resolve(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    # Listed only so that loopback is allowed; https and the certificate check still apply.
    return SafeFetcher(
        timeout_seconds=3.0, insecure_hosts=[f"{NAME}:{port}"], resolve=resolve, ca_certs=str(ca)
    )


def test_https_to_the_pinned_address_uses_the_name_for_sni_and_the_certificate(tls_server):
    server, ca, server_names = tls_server
    server.reply("/.well-known/lnurlp/alice", Reply(body={"tag": "payRequest"}))
    lookups: list[str] = []
    fetched = pinned_fetcher(server.port, ca, lookups).get_json(
        f"https://{NAME}:{server.port}/.well-known/lnurlp/alice"
    )
    assert fetched.body == {"tag": "payRequest"}
    assert lookups == [NAME]
    assert server_names == [NAME]
    assert server.seen[0].headers["host"] == f"{NAME}:{server.port}"


def test_a_certificate_for_another_name_is_refused(tls_server):
    server, ca, _ = tls_server
    server.reply("/x", Reply(body={}))
    other = "other.lnurl.test"

    def resolve(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"]

    fetcher = SafeFetcher(
        timeout_seconds=3.0, insecure_hosts=[f"{other}:{server.port}"], resolve=resolve, ca_certs=str(ca)
    )
    with pytest.raises(RecipientUnreachable) as caught:
        fetcher.get_json(f"https://{other}:{server.port}/x")
    assert caught.value.reason == "network_error"
    assert server.seen == []
