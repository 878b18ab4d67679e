"""Integration tests: the provider against the local sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import pytest
from PIL import Image

from autoenhance_sandbox.pytest_plugin import (  # noqa: F401 - fixtures used by the tests
    autoenhance_sandbox,
    autoenhance_sandbox_config,
    autoenhance_sandbox_session,
)
from autoenhance_sandbox.testing import SandboxServer

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox(autoenhance_sandbox: SandboxServer) -> SandboxServer:  # noqa: F811
    return autoenhance_sandbox


@pytest.fixture
def sandbox_conn(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point an Airflow connection at the sandbox (JSON form); returns the conn id."""

    def _set(conn_id: str = "autoenhance_default", *, password: str | None = None, **extra) -> str:
        conn = {
            "conn_type": "autoenhance",
            "host": sandbox.base_url,
            "password": sandbox.api_key if password is None else password,
            "extra": extra,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    _set()
    return _set


@pytest.fixture
def hook(sandbox_conn) -> Iterator:
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    h = AutoenhanceHook(retry_delay=0.01, retry_max_delay=0.05)
    yield h
    h.close()


def jpeg_bytes(width: int = 160, height: int = 120, level: int = 110) -> bytes:
    img = Image.new("RGB", (width, height))
    img.putdata([(level + x % 30, level + y % 20, level + 10) for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture
def photo(tmp_path) -> Callable[..., str]:
    """Write a small real JPEG and return its path."""

    def _make(name: str = "front.jpg", **kwargs) -> str:
        path = tmp_path / "photos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(**kwargs))
        return str(path)

    return _make
