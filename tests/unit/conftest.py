"""Fixtures for unit tests: connections from environment variables, fast retries, the fake API
for the async hook, captured logs. Plain helpers (the fake API's payloads, FakeTI) are in tests/support."""

from __future__ import annotations

import json

import pytest

from support.aio import AioAPI
from support.api import BASE_URL, FAKE_KEY, OrderScript
from support.downloads import IMAGES, FakeDownloads
from support.timing import FakeClock


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
# Added for the hook / core-module unit tests (hooks/, http/, ...).
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


@pytest.fixture
def aio_api(monkeypatch: pytest.MonkeyPatch) -> AioAPI:
    """Answer every request of the async hook's aiohttp sessions in process (tests/support/aio.py).

    Call the fixture's value with a handler ``(support.aio.Request) -> support.aio.Reply``; the
    list of requests seen is returned. A handler raises ``support.aio.refused(url)`` or
    ``read_timeout()`` for a refused connection or a read timeout (aiohttp's own exceptions).
    """
    import autoenhance_provider.http.aio as aio_module

    api = AioAPI()
    monkeypatch.setattr(aio_module, "new_async_session", api.new_session)
    return api


@pytest.fixture
def api(conn, requests_mock, aio_api, monkeypatch):
    """Install an OrderScript on both transports; sleeps of poke mode advance a fake clock.

    One scripted ``GET /v3/orders/<id>`` serves the sync hook (requests-mock) and the trigger's async
    hook, so a sensor sees the same answers in every mode (``support.waits.run_sensor``).
    """
    import airflow.sdk.bases.sensor as base_sensor_module

    clock = FakeClock()
    monkeypatch.setattr(base_sensor_module, "time", clock)

    def install(*steps) -> OrderScript:
        script = OrderScript(*steps)
        script.install_sync(requests_mock)
        aio_api(script.handler)
        script.clock = clock
        return script

    return install


@pytest.fixture
def downloads(conn, requests_mock) -> FakeDownloads:
    """The order ``support.downloads.IMAGES`` and its images, served as the API and its asset host do."""
    return FakeDownloads(requests_mock, IMAGES)


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
