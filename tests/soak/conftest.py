"""The soak: the pipeline DAG again and again in a real (SQLite) Airflow, with injected faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autoenhance_sandbox.testing import SandboxServer, run_sandbox
from support.sandbox import use_sandbox

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


@pytest.fixture(scope="session")
def soak_sandbox_server() -> Iterator[SandboxServer]:
    with run_sandbox(processing_seconds=0.5, merge_seconds=0.3) as server:
        yield server


@pytest.fixture
def soak_sandbox(
    soak_sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """The sandbox as the default connection, with short client back-offs so faults cost little time."""
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
    from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook

    server = use_sandbox(soak_sandbox_server, monkeypatch, AUTOENHANCE_POLL_INTERVAL="0.5")
    # The example DAG passes no hook_params: shorten the hooks' default back-offs instead (a 429's
    # Retry-After of 1 s is capped by retry_max_delay). Retry counts stay the defaults.
    for hook in (AutoenhanceHook, AutoenhanceAsyncHook):
        monkeypatch.setitem(hook.__init__.__kwdefaults__, "retry_delay", 0.02)
        monkeypatch.setitem(hook.__init__.__kwdefaults__, "retry_max_delay", 0.2)
    yield server
    server.clear_faults()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every soak test must carry ``@pytest.mark.timeout(...)``: a hang fails, it never stalls CI."""
    here = Path(__file__).parent
    unbounded = [
        item.nodeid
        for item in items
        if here in item.path.parents and item.get_closest_marker("timeout") is None
    ]
    if unbounded:
        raise pytest.UsageError(f"soak tests without @pytest.mark.timeout: {unbounded}")
