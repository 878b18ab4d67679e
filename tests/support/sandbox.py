"""The local sandbox as a test's Autoenhance API (the ``sandbox`` fixtures of the conftest files)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from autoenhance_sandbox.testing import SandboxServer, run_sandbox


def connect(
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str = "autoenhance_default",
    *,
    password: str | None = None,
    host: str | None = None,
    **extra: Any,
) -> str:
    """Point the Airflow connection ``conn_id`` (JSON in an environment variable) at ``server``."""
    conn = {
        "conn_type": "autoenhance",
        "host": server.base_url if host is None else host,
        "password": server.api_key if password is None else password,
        "extra": extra,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def use_sandbox(server: SandboxServer, monkeypatch: pytest.MonkeyPatch, **env: str) -> SandboxServer:
    """Reset ``server`` (state, stats, faults, config); make it ``autoenhance_default``; set ``env``."""
    server.restore_config()
    server.reset()
    server.clear_faults()
    connect(server, monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return server


def sandbox_fixtures(
    name: str, scope: str, env: dict[str, str] | None = None, **config: Any
) -> tuple[Any, Any]:
    """The two fixtures of a directory or module whose sandbox needs timings of its own.

    ``name``: a server started with ``config`` once per ``scope``; ``sandbox``: that server for one
    test, through :func:`use_sandbox` (``env`` set too). Assign both to module names::

        dag_sandbox, sandbox = sandbox_fixtures("dag_sandbox", "session", processing_seconds=0.5)
    """

    @pytest.fixture(scope=scope, name=name)
    def server() -> Iterator[SandboxServer]:
        with run_sandbox(**config) as running:
            yield running

    @pytest.fixture(name="sandbox")
    def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
        return use_sandbox(request.getfixturevalue(name), monkeypatch, **(env or {}))

    return server, sandbox
