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
from typing import Any

import requests
from run_celery_stack import REPO, free_port

# The key scripts/airflow_local.py gives the sandbox (scripts/airflow_local.py: SANDBOX_KEY).
SANDBOX_KEY = "local-sandbox-key"


class LocalAirflow:
    """One run of scripts/airflow_local.py under ``home``; ``start()``, use, ``stop()``."""

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
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AUTOENHANCE", "PYTEST"))}
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

    def token(self) -> str:
        if self._token is None:
            response = requests.post(
                f"{self.url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=10,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=30, **kwargs)

    def sandbox_get(self, path: str) -> requests.Response:
        return requests.get(f"{self.sandbox_url}{path}", timeout=5)

    def wait_for(self, what: str, probe: Any, timeout: float, interval: float = 0.5) -> Any:
        """Poll ``probe`` until it returns something truthy; bounded in time; fails if the script died."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"make airflow exited while waiting for {what}:\n{self.text()[-3000:]}")
            with contextlib.suppress(Exception):
                result = probe()
                if result:
                    return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)
