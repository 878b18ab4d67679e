"""Contract tests: the official SDK ``autoenhance==1.1.0`` is the oracle for the sandbox.

Everything runs over real HTTP on 127.0.0.1 against the in-process sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from autoenhance_sandbox.testing import SandboxServer

SDK_VERSION = "2025-05-08"  # what autoenhance 1.1.0 sends as x-api-version


@pytest.fixture
def sdk(sandbox: SandboxServer) -> Iterator[Any]:
    """The official client pointed at the sandbox."""
    import autoenhance

    assert autoenhance.__version__ == "1.1.0"
    assert autoenhance.__api_version__ == SDK_VERSION
    client = autoenhance.Autoenhance(apiKey=sandbox.api_key, baseURL=sandbox.base_url)
    yield client
    client.rest_client.pool_manager.clear()


@pytest.fixture
def http(sandbox: SandboxServer) -> Iterator[requests.Session]:
    """Raw HTTP pinned like the SDK (for bodies the SDK cannot build, e.g. wrong ones)."""
    session = requests.Session()
    session.trust_env = False
    session.headers.update({"x-api-key": sandbox.api_key, "x-api-version": SDK_VERSION})
    yield session
    session.close()
