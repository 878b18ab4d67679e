"""Fixtures for unit tests: connections from environment variables, fast retries."""

from __future__ import annotations

import json

import pytest

FAKE_KEY = "ae-test-KEY-4f9c2d71b8"
BASE_URL = "https://api.autoenhance.test"


@pytest.fixture
def api_key() -> str:
    return FAKE_KEY


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch):
    """Define an Airflow connection through ``AIRFLOW_CONN_<ID>`` (JSON form by default)."""

    def _set(conn_id: str = "autoenhance_default", *, uri: str | None = None, **fields) -> None:
        if uri is not None:
            value = uri
        else:
            conn = {"conn_type": "autoenhance", "password": FAKE_KEY, "host": BASE_URL}
            conn.update(fields)
            value = json.dumps(conn)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)

    return _set


@pytest.fixture
def conn(set_connection) -> str:
    set_connection()
    return "autoenhance_default"


@pytest.fixture
def hook(conn):
    """A hook on the default test connection, with instant retries."""
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    h = AutoenhanceHook(retry_delay=0, retry_max_delay=0)
    yield h
    h.close()


# ---------------------------------------------------------------------------------------------
# Added for the hook / core-module unit tests (test_hook_*.py, test_http.py, ...).
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def base_url() -> str:
    return BASE_URL


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace ``time.sleep`` with a recorder: waits become instant and inspectable."""
    import time

    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    return calls


@pytest.fixture
def make_hook(conn):
    """Build hooks on the default test connection (instant retries unless overridden)."""
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    made: list[AutoenhanceHook] = []

    def _make(**kwargs) -> AutoenhanceHook:
        kwargs.setdefault("retry_delay", 0)
        kwargs.setdefault("retry_max_delay", 0)
        made.append(AutoenhanceHook(**kwargs))
        return made[-1]

    yield _make
    for h in made:
        h.close()


@pytest.fixture
def log_capture(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]):
    """Everything logged during a test, at DEBUG, whatever the route.

    Airflow 3.3 hooks log through structlog (printed to stdout, bypassing ``caplog``), Airflow 3.0
    hooks and libraries through the standard library. ``text()`` returns both, *before* Airflow's
    secrets masker could hide anything, so a leak in the provider's own log calls is visible.
    Records of the ``requests_mock`` logger are left out (the mock logs every URL it fakes).
    """
    import logging

    import structlog

    caplog.set_level(logging.DEBUG)

    class _Logs:
        def __init__(self) -> None:
            self.events: list[dict] = []
            self.printed: list[str] = []

        def text(self) -> str:
            out, err = capfd.readouterr()
            self.printed += [out, err]
            rendered = [" ".join(f"{k}={v}" for k, v in e.items()) for e in self.events]
            # requests-mock's own adapter logs every mocked URL verbatim; it stands in for
            # urllib3 (whose logger the provider filters), so it is left out.
            records = [
                f"{r.levelname} {r.name} {r.getMessage()} {r.exc_text or ''}"
                for r in caplog.records
                if not r.name.startswith("requests_mock")
            ]
            return "\n".join([*records, *self.printed, *rendered])

    # Airflow 3.0's console handler (on the root logger, no level of its own) prints DEBUG records
    # to stdout too, where they can no longer be told apart by logger: keep requests_mock's
    # records off every root handler, not only out of caplog's list.
    mock_logger = logging.getLogger("requests_mock")
    propagate = mock_logger.propagate
    mock_logger.propagate = False
    logs = _Logs()
    try:
        with structlog.testing.capture_logs() as events:
            logs.events = events
            yield logs
    finally:
        mock_logger.propagate = propagate
