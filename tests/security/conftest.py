"""Security and bad-input tests: the provider against the sandbox on 127.0.0.1 (and local TLS)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from autoenhance_sandbox.testing import SandboxServer


@pytest.fixture
def conn(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point an Airflow connection (JSON in an env var) at the sandbox; returns the conn id."""

    def _set(
        conn_id: str = "autoenhance_default", *, password: str | None = None, host: str | None = None, **extra
    ) -> str:
        value = {
            "conn_type": "autoenhance",
            "host": sandbox.base_url if host is None else host,
            "password": sandbox.api_key if password is None else password,
            "extra": extra,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
        return conn_id

    _set()
    return _set
