"""Loading the example DAGs in tests (shared by tests/dags, tests/soak and tests/security)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DAGS = Path(__file__).resolve().parents[1] / "dags"


def dag_bag(folder: Path = DAGS) -> Any:
    """Parse the DAG files of ``folder`` with Airflow's DagBag."""
    try:  # Airflow 3.3
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(str(folder))


def load_dag(dag_id: str) -> Any:
    """Parse the example DAG file fresh (so AUTOENHANCE_POLL_INTERVAL is read now)."""
    bag = dag_bag()
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)
