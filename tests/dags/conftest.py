"""Example DAGs in a real Airflow: SQLite metadata DB, `dag.test()`, the sandbox over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoenhance_sandbox.testing import SandboxServer, run_sandbox

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create the SQLite metadata DB of the test AIRFLOW_HOME (set in tests/conftest.py)."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=dict(os.environ),
    )


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


def dag_bag(folder: Path = DAGS):
    """Parse the DAG files of ``folder`` with Airflow's DagBag."""
    try:  # Airflow 3.3
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(str(folder))


def load_dag(dag_id: str):
    """Parse the example DAG file fresh (so AUTOENHANCE_POLL_INTERVAL is read now)."""
    bag = dag_bag()
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)
