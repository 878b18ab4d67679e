"""The local sandbox as a test's Autoenhance API (the ``sandbox`` fixtures of the conftest files)."""

from __future__ import annotations

import json

import pytest

from autoenhance_sandbox.testing import SandboxServer


def use_sandbox(server: SandboxServer, monkeypatch: pytest.MonkeyPatch, **env: str) -> SandboxServer:
    """Reset ``server`` (state, stats, faults, config); make it ``autoenhance_default``; set ``env``."""
    server.restore_config()
    server.reset()
    server.clear_faults()
    conn = {"conn_type": "autoenhance", "host": server.base_url, "password": server.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(conn))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return server
