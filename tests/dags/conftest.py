"""Example DAGs in a real Airflow: SQLite metadata DB, `dag.test()`, the sandbox over HTTP."""

from __future__ import annotations

from example_dags_support import DAGS, dag_bag, load_dag  # noqa: F401 - used by the tests
from support.sandbox import sandbox_fixtures

dag_sandbox, sandbox = sandbox_fixtures(
    "dag_sandbox", "session", {"AUTOENHANCE_POLL_INTERVAL": "0.5"}, processing_seconds=0.5, merge_seconds=0.3
)
