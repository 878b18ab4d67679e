"""Fixtures for the workflow tests: a test connection, an in-process HTTP handler for the async hook, logs."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from wf_helpers import BASE_URL, FAKE_KEY


@pytest.fixture
def wf_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """The default Autoenhance connection, from an environment variable (no Airflow DB)."""
    conn = {"conn_type": "autoenhance", "password": FAKE_KEY, "host": BASE_URL}
    monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(conn))
    return "autoenhance_default"


@pytest.fixture
def httpx_handler(monkeypatch: pytest.MonkeyPatch):
    """Answer every request of the async hook's aiohttp session in process, from a handler.

    Call the fixture's value with a handler ``(httpx.Request) -> httpx.Response`` (httpx's
    models only describe the exchange); the list of requests seen is returned. Raising
    ``httpx.ConnectError`` or ``httpx.ReadTimeout`` makes the session raise what aiohttp raises
    for a refused connection or a read timeout. Nothing leaves the process; the real aiohttp
    path is exercised against real sockets by tests/hostile and tests/integration.
    """
    import autoenhance_provider.http.aio as http_module

    seen: list[Any] = []

    def install(handler):
        def recording(request):
            seen.append(request)
            return handler(request)

        def session(headers, connect, read, verify):
            return InProcessSession(recording, headers)

        monkeypatch.setattr(http_module, "new_async_session", session)
        return seen

    return install


class InProcessSession:
    """The part of ``aiohttp.ClientSession`` the async transport uses, answered by a handler."""

    def __init__(self, handler, headers) -> None:
        self.handler = handler
        self.headers = dict(headers)
        self.closed = False

    async def close(self) -> None:
        self.closed = True

    def get(self, url: str, *, allow_redirects: bool = True, **proxy: Any) -> InProcessResponse:
        assert not allow_redirects, "the transport follows redirects itself"
        assert not self.closed, "request on a closed session"
        return InProcessResponse(self.handler, httpx.Request("GET", url, headers=self.headers))


class InProcessResponse:
    def __init__(self, handler, request) -> None:
        self.handler, self.request = handler, request

    async def __aenter__(self) -> InProcessResponse:
        import aiohttp

        url = self.request.url
        try:
            answer = self.handler(self.request)
        except httpx.ConnectError as exc:
            key = SimpleNamespace(host=url.host, port=url.port or 443, ssl=True)
            raise aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, str(exc))) from None
        except httpx.TimeoutException as exc:
            raise aiohttp.ServerTimeoutError(str(exc)) from None
        except httpx.TransportError as exc:
            raise aiohttp.ServerDisconnectedError(str(exc)) from None
        self.status = answer.status_code
        self.headers = answer.headers
        # the bytes as sent (still encoded): the transport decodes them itself
        stream = answer.stream
        self._body = b"".join(stream) if isinstance(stream, httpx.ByteStream) else answer.content
        self.content = SimpleNamespace(iter_any=self._chunks)
        return self

    async def _chunks(self):
        yield self._body

    def close(self) -> None:
        pass

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def logs():
    """Log events of operators, hooks and triggers during the test, as structlog event dicts.

    Their loggers are structlog loggers on Airflow 3.3 and standard-library loggers
    (``airflow.task.operators.…``) on Airflow 3.0; records of the latter are added in the same shape.
    """
    import logging

    import structlog.testing

    class _AsEvents(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.append(
                {
                    "event": record.msg,
                    "positional_args": record.args or (),
                    "log_level": record.levelname.lower(),
                    "logger": record.name,
                }
            )

    root, handler = logging.getLogger(), _AsEvents()
    level = root.level
    with structlog.testing.capture_logs() as events:
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            yield events
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
