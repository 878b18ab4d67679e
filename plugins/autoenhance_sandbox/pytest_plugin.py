"""pytest fixtures for the sandbox. Enable with ``pytest_plugins = ["autoenhance_sandbox.pytest_plugin"]``.

- ``autoenhance_sandbox_session``: one in-process server for the whole session.
- ``autoenhance_sandbox``: that same server, reset before each test (state, stats, faults and any
  config the previous test changed), so tests are isolated but cheap.
- ``autoenhance_sandbox_config``: keyword arguments for ``SandboxConfig``; override it in a
  conftest to change the session server (fast timings by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from autoenhance_sandbox.testing import SandboxServer, run_sandbox


@pytest.fixture(scope="session")
def autoenhance_sandbox_config() -> dict[str, Any]:
    return {"processing_seconds": 0.2, "merge_seconds": 0.2}


@pytest.fixture(scope="session")
def autoenhance_sandbox_session(autoenhance_sandbox_config: dict[str, Any]) -> Iterator[SandboxServer]:
    with run_sandbox(**autoenhance_sandbox_config) as server:
        yield server


@pytest.fixture
def autoenhance_sandbox(autoenhance_sandbox_session: SandboxServer) -> SandboxServer:
    server = autoenhance_sandbox_session
    server.restore_config()
    server.reset()
    server.clear_faults()
    return server
