"""TLS cannot be switched off, not by the connection and not by the environment; plain http:// to
a non-loopback host is refused before anything is sent.

A real HTTPS server on 127.0.0.1 with a self-signed certificate stands in for an API host whose
certificate the machine does not trust (as with a man in the middle).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autoenhance_provider.compat import AirflowFailException
from autoenhance_provider.exceptions import AutoenhanceConfigError, AutoenhanceConnectionError
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook

FAST = {"retry_delay": 0, "retry_max_delay": 0, "retry_limit": 1}
#: Room for retries, so that "not retried" is something the hook decides, not the limit.
RETRIES_ALLOWED = {"retry_delay": 0, "retry_max_delay": 0, "retry_limit": 3}
ORDER = {"order_id": "o-1", "images": [], "is_processing": False, "is_merging": False}


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "autoenhance-test-ca")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class Handler(BaseHTTPRequestHandler):
    served: list[str] = []

    def do_GET(self) -> None:
        Handler.served.append(self.path)
        body = json.dumps(ORDER).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class CountingTLSServer(ThreadingHTTPServer):
    """Counts TCP connections before the TLS handshake, so refused handshakes are counted too."""

    current: CountingTLSServer  # the running one (set by the fixture)

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.context = context
        self.connections = 0

    def get_request(self):  # type: ignore[override]
        sock, address = self.socket.accept()
        self.connections += 1
        return self.context.wrap_socket(sock, server_side=True), address


@pytest.fixture
def https_server(tmp_path) -> Iterator[tuple[str, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = CountingTLSServer(context)
    CountingTLSServer.current = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Handler.served = []
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def set_conn(monkeypatch):
    def _set(host: str, **extra) -> None:
        value = {"conn_type": "autoenhance", "host": host, "password": "ae-test-key-tls-0001", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(value))

    return _set


# Environment variables that switch TLS verification off (or replace the CA list) elsewhere.
INSECURE_ENVIRONMENTS = [
    {},
    {"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": ""},
    {"PYTHONHTTPSVERIFY": "0"},
    {"SSL_CERT_FILE": "", "SSL_CERT_DIR": ""},
]


@pytest.mark.parametrize(
    "env", INSECURE_ENVIRONMENTS, ids=["default", "empty-ca-bundles", "pythonhttpsverify", "no-cert-file"]
)
def test_an_untrusted_certificate_is_refused_sync(https_server, set_conn, monkeypatch, env):
    url, _ = https_server
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    set_conn(url)
    hook = AutoenhanceHook(**RETRIES_ALLOWED)
    with pytest.raises(AutoenhanceConnectionError, match="SSL") as info:
        hook.get_order("o-1")
    assert Handler.served == []  # the handshake failed: no request was ever read
    assert CountingTLSServer.current.connections == 1  # not retried by the hook (3 retries allowed)
    assert not isinstance(info.value, AirflowFailException)  # Airflow's own retries still apply


@pytest.mark.parametrize(
    "env", INSECURE_ENVIRONMENTS, ids=["default", "empty-ca-bundles", "pythonhttpsverify", "no-cert-file"]
)
async def test_an_untrusted_certificate_is_refused_async(https_server, set_conn, monkeypatch, env):
    url, _ = https_server
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    set_conn(url)
    async with AutoenhanceAsyncHook(**RETRIES_ALLOWED) as hook:
        with pytest.raises(AutoenhanceConnectionError) as info:
            await hook.get_order("o-1")
    assert Handler.served == []
    assert CountingTLSServer.current.connections == 1  # not retried by the hook (3 retries allowed)
    assert not isinstance(info.value, AirflowFailException)


def test_ca_bundle_is_the_way_to_trust_a_private_ca_sync(https_server, set_conn, monkeypatch):
    url, cert = https_server
    # A machine-wide CA bundle in the environment (common in containers and CI) must not
    # silently replace the bundle the connection asks for.
    monkeypatch.setenv(
        "REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile or "/etc/ssl/cert.pem"
    )
    set_conn(url, ca_bundle=str(cert))
    hook = AutoenhanceHook(**FAST)
    assert hook.get_order("o-1") == ORDER
    assert Handler.served == ["/v3/orders/o-1"]


async def test_ca_bundle_is_the_way_to_trust_a_private_ca_async(https_server, set_conn):
    url, cert = https_server
    set_conn(url, ca_bundle=str(cert))
    async with AutoenhanceAsyncHook(**FAST) as hook:
        assert await hook.get_order("o-1") == ORDER
    assert Handler.served == ["/v3/orders/o-1"]


@pytest.mark.parametrize(
    "extra", [{"verify": False}, {"verify_ssl": "false"}, {"verify": "false", "ca_bundle": "x"}]
)
def test_verification_cannot_be_switched_off_by_the_connection(set_conn, extra, no_network):
    set_conn("https://api.autoenhance.ai", **extra)
    with pytest.raises(AutoenhanceConfigError, match="TLS verification cannot be switched off"):
        AutoenhanceHook(**FAST).get_order("o-1")


# ------------------------------------------------------------------------------ plain http
@pytest.fixture
def no_network(monkeypatch):
    """Fail the test on any attempt to open a socket connection."""
    attempts: list[object] = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError(f"test guard: a connection to {address} was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize(
    "host",
    ["http://api.autoenhance.ai", "http://10.0.0.8:8765", "http://[2001:db8::1]", "http://sandbox.internal"],
)
def test_plain_http_to_a_non_loopback_host_is_refused_before_sending(set_conn, no_network, host):
    set_conn(host)
    with pytest.raises(AutoenhanceConfigError, match="refusing plain http://") as err:
        AutoenhanceHook(**FAST).get_order("o-1")
    assert "ae-test-key-tls-0001" not in str(err.value)
    assert no_network == []


async def test_plain_http_is_refused_by_the_trigger_too(set_conn, no_network):
    from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger

    set_conn("http://api.autoenhance.ai")
    events = [e.payload async for e in AutoenhanceOrderTrigger(order_id="o-1", hook_params=FAST).run()]
    assert [e["status"] for e in events] == ["error"]
    assert "refusing plain http://" in events[0]["message"]
    assert no_network == []


def test_plain_http_needs_the_explicit_opt_in(set_conn, no_network):
    set_conn("http://10.255.255.1:8765", allow_insecure_http=True)
    with pytest.raises(AutoenhanceConnectionError):  # now it really tries (and the guard refuses)
        AutoenhanceHook(**FAST).get_order("o-1")
    assert no_network


def test_plain_http_to_loopback_is_allowed_for_the_sandbox(set_conn):
    set_conn("http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(AutoenhanceConnectionError):
        AutoenhanceHook(**FAST).get_order("o-1")
