"""Fixtures for the sandbox contract tests (real HTTP on 127.0.0.1 only)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from autoenhance_sandbox.pytest_plugin import (  # noqa: F401 - re-exported fixtures
    autoenhance_sandbox,
    autoenhance_sandbox_config,
    autoenhance_sandbox_session,
)
from autoenhance_sandbox.testing import SandboxServer


@pytest.fixture
def sandbox(autoenhance_sandbox: SandboxServer) -> SandboxServer:  # noqa: F811 - fixture injection
    """Short alias: the shared server, freshly reset."""
    return autoenhance_sandbox


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A session that ignores proxy settings from the environment (loopback only)."""
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()
