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
