"""Security and bad-input tests: the provider against the sandbox on 127.0.0.1 (and local TLS)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autoenhance_sandbox.testing import SandboxServer
from support.sandbox import connect


@pytest.fixture
def conn(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point an Airflow connection (JSON in an env var) at the sandbox; returns the conn id."""

    def _set(
        conn_id: str = "autoenhance_default", *, password: str | None = None, host: str | None = None, **extra
    ) -> str:
        return connect(sandbox, monkeypatch, conn_id, password=password, host=host, **extra)

    _set()
    return _set
