"""Fixtures for the workflow tests: a test connection, an httpx mock for the async hook, logs."""

from __future__ import annotations

import json
from typing import Any

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
    """Route every ``httpx.AsyncClient`` the async hook builds through a MockTransport.

    Call the fixture's value with a handler ``(httpx.Request) -> httpx.Response``; the list of
    requests seen is returned. Nothing leaves the process.
    """
    import httpx

    import autoenhance_provider.http as async_module

    real_client = httpx.AsyncClient
    seen: list[Any] = []

    def install(handler):
        def recording(request):
            seen.append(request)
            return handler(request)

        transport = httpx.MockTransport(recording)

        def client(*args, **kwargs):
            kwargs.pop("verify", None)
            kwargs["transport"] = transport
            return real_client(*args, **kwargs)

        monkeypatch.setattr(async_module.httpx, "AsyncClient", client)
        return seen

    return install


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
