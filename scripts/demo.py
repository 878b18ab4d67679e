"""`make demo`: run example_autoenhance_pipeline end to end on an embedded SQLite Airflow.

Starts the local Autoenhance sandbox on 127.0.0.1 (unless AUTOENHANCE_API_KEY is set, in which
case the real API is used in development mode), runs the DAG with `airflow dags test`, prints
where the enhanced photos are and the order's page, and stops everything it started (from a
terminal, the sandbox keeps serving the order page until Enter is pressed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from autoenhance_provider.ui import run_tab_url

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PORT = int(os.environ.get("SANDBOX_PORT", "8765"))
OUTPUT = REPO / "output" / "enhanced"
SANDBOX_KEY = "demo-sandbox-key"
LOG_MESSAGE = re.compile(r"\]\s+(.*?)\s+\[[\w.]+\]")


def wait_healthy(url: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"The sandbox did not answer at {url}")


def main() -> int:
    env = dict(os.environ)
    home = REPO / "airflow_home"
    home.mkdir(exist_ok=True)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AUTOENHANCE_POLL_INTERVAL=env.get("AUTOENHANCE_POLL_INTERVAL", "2"),
    )
    sandbox = None
    if env.get("AUTOENHANCE_API_KEY"):
        print("Using the real Autoenhance API in development mode (no credits spent).")
        conn = {
            "conn_type": "autoenhance",
            "password": env["AUTOENHANCE_API_KEY"],
            "extra": {"dev_mode": True},
        }
    else:
        sandbox = subprocess.Popen(
            [
                str(VENV_BIN / "autoenhance-sandbox"),
                "--port",
                str(PORT),
                "--api-key",
                SANDBOX_KEY,
                "--processing-seconds",
                "3",
                "--log-level",
                "warning",
            ],
        )
        wait_healthy(f"http://127.0.0.1:{PORT}/_sandbox/health")
        print(f"Local Autoenhance sandbox running at http://127.0.0.1:{PORT} (pid {sandbox.pid})")
        conn = {"conn_type": "autoenhance", "host": f"http://127.0.0.1:{PORT}", "password": SANDBOX_KEY}
    env["AIRFLOW_CONN_AUTOENHANCE_DEFAULT"] = json.dumps(conn)
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    airflow = str(VENV_BIN / "airflow")
    try:
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        started = time.monotonic()
        run = subprocess.run(
            [airflow, "dags", "test", "example_autoenhance_pipeline"], env=env, capture_output=True, text=True
        )
        for line in (run.stdout + run.stderr).splitlines():
            if "autoenhance_provider" in line or "DagRun Finished" in line or "[error" in line:
                match = LOG_MESSAGE.search(line)
                print("  " + (match.group(1) if match else line.strip())[:160])
        if run.returncode != 0:
            print(run.stdout[-4000:], run.stderr[-4000:], sep="\n")
            return run.returncode
        # the order this run made: the newest folder (an earlier `make demo` may have left others)
        folders = (
            sorted(OUTPUT.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True) if OUTPUT.exists() else []
        )
        files = sorted(p for p in folders[0].iterdir() if not p.name.startswith(".")) if folders else []
        if not files:
            print("No enhanced photos were written.")
            return 1
        order_id = folders[0].name
        print(f"\nDone in {time.monotonic() - started:.1f}s. {len(files)} enhanced photos in {folders[0]}:")
        for path in files:
            print(f"  {path.name}  ({path.stat().st_size / 1024:.0f} KiB)")
        run_ids = re.findall(r"run_id=([^,\s]+)", run.stdout + run.stderr)
        if run_ids:  # Airflow 3.1+, with the UI of this airflow_home running (`make airflow`)
            tab = run_tab_url("http://127.0.0.1:8080", "example_autoenhance_pipeline", run_ids[-1])
            print(f"\nAutoenhance tab of the run (`make airflow` shows it): {tab}")
        if sandbox is not None:
            print(
                f"\nOrder page (originals, enhanced photos, statuses): http://127.0.0.1:{PORT}/orders/{order_id}"
            )
            if sys.stdin.isatty():
                input("The sandbox keeps serving it; press Enter to stop. ")
        else:
            print(f"\nOrder page: https://app.autoenhance.ai/orders/{order_id}")
        return 0
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
