"""Helpers of the soak tests (plain functions; helpers shared across directories are in tests/support)."""

from __future__ import annotations

from pathlib import Path

from example_dags_support import load_dag

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def load_pipeline():
    """Parse the pipeline example fresh (it reads AUTOENHANCE_POLL_INTERVAL at parse time)."""
    return load_dag("example_autoenhance_pipeline")
