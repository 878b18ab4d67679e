"""Fixtures for the sandbox contract tests (real HTTP on 127.0.0.1 only)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A session that ignores proxy settings from the environment (loopback only)."""
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()
