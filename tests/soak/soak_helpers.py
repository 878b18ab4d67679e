"""Helpers of the soak tests (plain functions, imported by name like tests/unit/workflow/wf_helpers)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def load_pipeline():
    """Parse the pipeline example fresh (it reads AUTOENHANCE_POLL_INTERVAL at parse time)."""
    try:  # Airflow 3.3
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("example_autoenhance_pipeline")
