"""Example DAGs in a real Airflow: SQLite metadata DB, `dag.test()`, the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from autoenhance_sandbox.testing import SandboxServer, run_sandbox
from example_dags_support import DAGS, dag_bag, load_dag  # noqa: F401 - used by the tests
from support.sandbox import use_sandbox


@pytest.fixture(scope="session")
def dag_sandbox() -> Iterator[SandboxServer]:
    with run_sandbox(processing_seconds=0.5, merge_seconds=0.3) as server:
        yield server


@pytest.fixture
def sandbox(dag_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    return use_sandbox(dag_sandbox, monkeypatch, AUTOENHANCE_POLL_INTERVAL="0.5")
