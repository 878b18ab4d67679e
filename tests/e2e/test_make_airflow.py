"""`make airflow` (scripts/airflow_local.py): up, UI answers, connection in the DB, Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from run_celery_stack import REPO, free_port

pytestmark = pytest.mark.e2e


def test_make_airflow_starts_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "airflow_home"
    port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AUTOENHANCE"))}
    # A webhook connection exported in the shell reaches the API server's receiver.
    env["AIRFLOW_CONN_AUTOENHANCE_WEBHOOK_AGENCY_B"] = json.dumps(
        {"conn_type": "generic", "password": "b-token"}
    )
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "airflow_local.py"), "--home", str(home),
         "--port", str(port), "--sandbox-port", str(sandbox_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
    reader.start()
    pids: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 240
        while "Press Ctrl-C" not in "".join(output):
            assert process.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            time.sleep(0.5)
        banner = "".join(output)
        assert f"http://127.0.0.1:{port}" in banner
        password = re.search(r"log in as: admin / (\S+)", banner).group(1)
        pids = {p.stem: int(p.read_text()) for p in (home / "pids").glob("*.pid")}
        assert set(pids) == {"sandbox", "api-server", "scheduler", "dag-processor", "triggerer"}

        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
        token = requests.post(
            f"http://127.0.0.1:{port}/auth/token",
            json={"username": "admin", "password": password},
            timeout=10,
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        # In the metadata DB (so the UI lists it), pointing at the sandbox this script started.
        conn = requests.get(
            f"http://127.0.0.1:{port}/api/v2/connections/autoenhance_default", headers=headers, timeout=10
        ).json()
        assert conn["conn_type"] == "autoenhance"
        assert conn["host"] == f"http://127.0.0.1:{sandbox_port}"
        health = requests.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/health", timeout=5)
        assert health.status_code == 200
        assert "Webhook connection AIRFLOW_CONN_AUTOENHANCE_WEBHOOK_AGENCY_B is passed" in banner
        event = {"event": "image_processed", "order_id": "o-1", "order_is_processing": False}
        delivery = requests.post(
            f"http://127.0.0.1:{port}/autoenhance/webhook/agency_b",
            json=event,
            headers={"Authorization": "Bearer b-token"},
            timeout=10,
        )
        assert delivery.status_code == 200, delivery.text  # no DAG schedules on agency_b: 0 events
        assert delivery.json() == {"status": "recorded", "event": "image_processed", "asset_events": 0}
    finally:
        # What Ctrl-C in a terminal does: SIGINT to the foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=90)
        reader.join(timeout=5)
    assert code == 0, "".join(output)
    for name, pid in pids.items():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # the whole process group of each component is gone
        assert f"stopped {name} (pid {pid})" in "".join(output)
    assert not list((home / "pids").glob("*.pid"))
