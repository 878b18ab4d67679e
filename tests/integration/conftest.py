"""Integration tests: the provider against the local sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from autoenhance_sandbox.testing import SandboxServer
from support.images import jpeg_bytes
from support.sandbox import connect

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox_conn(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point an Airflow connection at the sandbox (JSON form); returns the conn id."""

    def _set(conn_id: str = "autoenhance_default", *, password: str | None = None, **extra) -> str:
        return connect(sandbox, monkeypatch, conn_id, password=password, **extra)

    _set()
    return _set


@pytest.fixture
def hook(sandbox_conn) -> Iterator:
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    h = AutoenhanceHook(retry_delay=0.01, retry_max_delay=0.05)
    yield h
    h.close()


@pytest.fixture
def photo(tmp_path) -> Callable[..., str]:
    """Write a small real JPEG and return its path."""

    def _make(name: str = "front.jpg", **kwargs) -> str:
        path = tmp_path / "photos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(160, 120, **kwargs))
        return str(path)

    return _make
