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

from autoenhance_sandbox.pytest_plugin import (  # noqa: F401 - fixtures for every directory
    autoenhance_sandbox,
    autoenhance_sandbox_config,
    autoenhance_sandbox_session,
)
from autoenhance_sandbox.testing import SandboxServer

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


@pytest.fixture
def sandbox(autoenhance_sandbox: SandboxServer) -> SandboxServer:  # noqa: F811 - fixture injection
    """The session's in-process sandbox on 127.0.0.1, reset for this test (no connection is set).

    A directory that needs other timings, or ``autoenhance_default`` pointing at the sandbox,
    overrides this with its own server and ``support.sandbox.use_sandbox``.
    """
    return autoenhance_sandbox


@pytest.fixture(autouse=True)
def _forget_registered_keys():
    """Keys registered for redaction are process-wide; each test starts with none (as a new task)."""
    from autoenhance_provider import exceptions

    yield
    exceptions._SECRET_FORMS.clear()
