"""Each benchmark script runs end to end on a tiny size (seconds). No timing is asserted:
benchmarks are measured by ``make bench``, and a slow CI machine must not fail the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"

EXPECTED_ROWS = {
    "bench_upload.py": "(a) time / (c) time",
    "bench_memory.py": "download 8 MiB through the hook",
    "bench_triggers.py": "client CPU",
    "bench_triggers.py --webhooks": "API requests per order",
    "bench_requests.py": "purchases per image (none bought twice)",
    "bench_import.py": "then all provider operator/sensor/trigger/hook modules",
    "bench_ui.py": "thumbnails, 6 at a time, cached",
    "bench_limits.py": "429s at the default max_requests_per_second",
}


@pytest.mark.parametrize("script", sorted(EXPECTED_ROWS))
def test_bench_script_runs_on_a_tiny_size(script, tmp_path):
    out = tmp_path / "rows.json"
    # The scripts inherit the test session's AIRFLOW_HOME (tests/conftest.py), never ~/airflow.
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    name, *options = script.split()
    done = subprocess.run(
        [sys.executable, str(BENCH / name), *options, "--tiny", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows, done.stdout
    assert any(EXPECTED_ROWS[script] in row["metric"] for row in rows), [r["metric"] for r in rows]
    assert all(row["value"] for row in rows)
    assert "| benchmark | metric |" in done.stdout


def test_run_all_knows_every_script():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    assert set(run_all.BENCHES.values()) == set(EXPECTED_ROWS)
    assert all((BENCH / command.split()[0]).is_file() for command in run_all.BENCHES.values())
