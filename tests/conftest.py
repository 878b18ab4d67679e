"""Test-wide set-up: an isolated AIRFLOW_HOME before Airflow is first imported."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_home = Path(tempfile.mkdtemp(prefix="autoenhance-test-airflow-"))
atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_home / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
# Tests never reach the real API: a connection must be defined explicitly by each test.
os.environ.pop("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", None)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create the SQLite metadata DB of the test AIRFLOW_HOME (for tests that run DAGs)."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=dict(os.environ),
    )


@pytest.fixture(autouse=True)
def _forget_registered_keys():
    """Keys registered for redaction are process-wide; each test starts with none (as a new task)."""
    from autoenhance_provider import exceptions

    yield
    exceptions._SECRET_FORMS.clear()
