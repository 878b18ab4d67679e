"""Example DAGs in a real Airflow: SQLite metadata DB, `dag.test()`, the sandbox over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from autoenhance_sandbox.testing import SandboxServer, run_sandbox
from example_dags_support import DAGS, dag_bag, load_dag  # noqa: F401 - used by the tests


@pytest.fixture(scope="session")
def dag_sandbox() -> Iterator[SandboxServer]:
    with run_sandbox(processing_seconds=0.5, merge_seconds=0.3) as server:
        yield server


@pytest.fixture
def sandbox(dag_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    dag_sandbox.restore_config()
    dag_sandbox.reset()
    dag_sandbox.clear_faults()
    conn = {"conn_type": "autoenhance", "host": dag_sandbox.base_url, "password": dag_sandbox.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AUTOENHANCE_POLL_INTERVAL", "0.5")
    return dag_sandbox
