"""Fixtures of the hostile-server suite: servers on 127.0.0.1, connections, log capture."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from servers import KEY, App, HostileServer


@pytest.fixture
def serve() -> Iterator[Callable[[App], HostileServer]]:
    """Start servers for the test; all are stopped (releasing stuck clients) at teardown."""
    started: list[HostileServer] = []

    def _serve(app: App) -> HostileServer:
        started.append(HostileServer(app))
        return started[-1]

    yield _serve
    for server in started:
        server.stop()


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point the connection ``hostile`` (or ``conn_id``) at a server; extras as keyword arguments."""

    def _connect(
        server: HostileServer | str, *, key: str = KEY, conn_id: str = "hostile", **extra: Any
    ) -> str:
        host = server if isinstance(server, str) else server.base_url
        value = {"conn_type": "autoenhance", "password": key, "host": host, "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
        return conn_id

    return _connect


class LogCapture:
    """Every log line of the test, whatever the route (stdlib, structlog, printed)."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
        self.caplog = caplog
        self.capfd = capfd
        self.events: list[dict[str, Any]] = []
        self.printed: list[str] = []

    def text(self) -> str:
        out, err = self.capfd.readouterr()
        self.printed += [out, err]
        records = [f"{r.levelname} {r.name} {r.getMessage()} {r.exc_text or ''}" for r in self.caplog.records]
        rendered = [" ".join(f"{k}={v}" for k, v in e.items()) for e in self.events]
        return "\n".join([*records, *self.printed, *rendered])


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[LogCapture]:
    """Capture at DEBUG, including urllib3 and aiohttp (they log URLs and headers)."""
    import structlog

    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "aiohttp", "autoenhance_provider", "airflow"):
        caplog.set_level(logging.DEBUG, logger=name)
    capture = LogCapture(caplog, capfd)
    with structlog.testing.capture_logs() as events:
        capture.events = events
        yield capture


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def outside(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Refuse and record every lookup of or connection to a non-loopback host."""
    attempts: list[object] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if str(host) not in LOOPBACK:
            attempts.append(("lookup", host))
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: lookup of {host} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if str(host) not in LOOPBACK:
            attempts.append(("connect", address))
            raise ConnectionRefusedError(f"test guard: connection to {address} refused")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts
