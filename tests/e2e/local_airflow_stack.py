"""`make airflow` (scripts/airflow_local.py) as a test fixture: start it, use it over REST, Ctrl-C it.

The lighter stack (LocalExecutor, SQLite, the sandbox), run exactly as a user runs it: the script in
its own process group, stopped by SIGINT to that group, the way Ctrl-C in a terminal stops it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from airflow_client import AirflowClient, clean_env
from run_celery_stack import REPO, free_port

# The key scripts/airflow_local.py gives the sandbox (scripts/airflow_local.py: SANDBOX_KEY).
SANDBOX_KEY = "local-sandbox-key"


class LocalAirflow(AirflowClient):
    """One run of scripts/airflow_local.py under ``home``; ``start()``, use, ``stop()``."""

    wait_interval = 0.5

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port, self.sandbox_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = self.url
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.username = "admin"
        self.password = ""
        self.output: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._token: str | None = None

    def start(self, timeout: float = 300) -> LocalAirflow:
        env = clean_env()
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "airflow_local.py"), "--home", str(self.home),
             "--port", str(self.port), "--sandbox-port", str(self.sandbox_port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=lambda: self.output.extend(self.process.stdout), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while "Press Ctrl-C" not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"make airflow did not come up:\n{self.text()}")
            time.sleep(0.5)
        found = re.search(r"log in as: admin / (\S+)", self.text())
        assert found, self.text()
        self.password = found.group(1)
        return self

    def text(self) -> str:
        return "".join(self.output)

    def stop(self) -> int | None:
        """SIGINT to the script's process group (Ctrl-C); it stops every component it started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.process.returncode

    def component_log(self, name: str) -> str:
        path = self.home / "local-logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _check_alive(self, what: str = "") -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"make airflow exited while waiting for {what}:\n{self.text()[-3000:]}")
