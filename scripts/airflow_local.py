"""`make airflow`: a local Airflow with the UI, the example DAGs and the sandbox, until Ctrl-C.

Starts the Autoenhance sandbox (unless AUTOENHANCE_API_KEY is set: then the connection points at
the real API in development mode), creates the `autoenhance_default` connection in the metadata DB
with `airflow connections add` (so it shows under Admin -> Connections), starts `airflow api-server`,
`scheduler`, `dag-processor` and `triggerer` (LocalExecutor, SQLite in airflow_home/), prints the UI
URL and the login, and stops everything it started, by pid, on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SANDBOX_KEY = "local-sandbox-key"
USERNAME = "admin"
COMPONENTS = ["api-server", "scheduler", "dag-processor", "triggerer"]


class Stop(Exception):
    """Raised by the signal handler: Ctrl-C or SIGTERM."""


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback only
        return json.load(response)


class LocalAirflow:
    def __init__(self, home: Path, port: int, sandbox_port: int) -> None:
        self.home = home
        self.port = port
        self.sandbox_port = sandbox_port
        self.url = f"http://127.0.0.1:{port}"
        self.pid_dir = home / "pids"
        self.log_dir = home / "local-logs"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.api_key = os.environ.get("AUTOENHANCE_API_KEY", "")

    # -- set-up ------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        # Airflow settings of the calling shell do not apply here, except webhook connections
        # (AIRFLOW_CONN_AUTOENHANCE_WEBHOOK*), which the API server's receiver reads.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") or _is_webhook_conn(k)}
        env.pop("AUTOENHANCE_API_KEY", None)  # tasks get the key through the connection only
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USERNAME}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.password_file),
            # The Test button of Admin -> Connections (Airflow's default: disabled).
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="10",
            AUTOENHANCE_POLL_INTERVAL=os.environ.get("AUTOENHANCE_POLL_INTERVAL", "2"),
            PYTHONUNBUFFERED="1",
        )
        return env

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def password(self) -> str:
        """The UI password of `admin`: made once, kept in airflow_home/ (Airflow's own file format)."""
        try:
            return json.loads(self.password_file.read_text())[USERNAME]
        except (OSError, ValueError, KeyError):
            password = secrets.token_urlsafe(12)
            self.password_file.write_text(json.dumps({USERNAME: password}) + "\n")
            self.password_file.chmod(0o600)
            return password

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(VENV_BIN / "airflow"), *args], env=self.env(), capture_output=True, text=True
        )
        if check and result.returncode != 0:
            raise SystemExit(
                f"airflow {' '.join(args[:2])} failed:\n{(result.stdout + result.stderr)[-3000:]}"
            )
        return result

    def connection(self) -> dict[str, Any]:
        if self.api_key:
            return {"conn_type": "autoenhance", "password": self.api_key, "extra": {"dev_mode": True}}
        return {
            "conn_type": "autoenhance",
            "host": f"http://127.0.0.1:{self.sandbox_port}",
            "password": SANDBOX_KEY,
            "description": "The local Autoenhance sandbox started by `make airflow`",
        }

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with (self.log_dir / f"{name}.log").open("ab") as log_file:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches only this script, which stops the group
            )
        self.processes[name] = process
        (self.pid_dir / f"{name}.pid").write_text(str(process.pid))

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"{name} exited with {process.returncode}; its log ends with:\n{tail}")

    def wait_for(self, what: str, probe: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if probe():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"timed out waiting for {what}; logs in {self.log_dir}")

    # -- run ---------------------------------------------------------------------------------------

    def start(self) -> None:
        for port, hint in ((self.port, "AIRFLOW_PORT"), (self.sandbox_port, "SANDBOX_PORT")):
            if not port_free(port) and not (port == self.sandbox_port and self.api_key):
                raise SystemExit(
                    f"Port {port} on 127.0.0.1 is in use: try `make airflow {hint}=<another port>`."
                )
        for folder in (self.home, self.pid_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        password = self.password()
        print(f"Airflow home: {self.home} (SQLite); preparing the metadata DB ...", flush=True)
        self.airflow("db", "migrate")
        if not self.api_key:
            sandbox_env = {
                k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AUTOENHANCE"))
            }
            sandbox_env["AUTOENHANCE_SANDBOX_API_KEY"] = SANDBOX_KEY
            self.spawn(
                "sandbox",
                [
                    str(VENV_BIN / "autoenhance-sandbox"),
                    "--port",
                    str(self.sandbox_port),
                    "--log-level",
                    "warning",
                ],
                sandbox_env,
            )
            health = f"http://127.0.0.1:{self.sandbox_port}/_sandbox/health"
            self.wait_for("the sandbox", lambda: get_json(health), timeout=20)
        # Re-created on every start so that it matches this run (sandbox port, or your key).
        self.airflow("connections", "delete", "autoenhance_default", check=False)
        self.airflow(
            "connections", "add", "autoenhance_default", "--conn-json", json.dumps(self.connection())
        )
        env = self.env()
        for name in COMPONENTS:
            self.spawn(name, [str(VENV_BIN / "airflow"), name], env)

        def healthy() -> bool:
            health = get_json(f"{self.url}/api/v2/monitor/health")
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all(health.get(part, {}).get("status") == "healthy" for part in parts)

        self.wait_for("Airflow to report healthy", healthy, timeout=180)
        self.unpause_examples(password)
        target = "the real Autoenhance API (development mode)" if self.api_key else "the sandbox"
        sandbox = f"http://127.0.0.1:{self.sandbox_port} (stats: /_sandbox/stats)"
        print(
            f"""
Airflow is up in {time.monotonic() - started:.0f}s: {self.url}
  log in as: {USERNAME} / {password}   (kept in {self.password_file})
  connection autoenhance_default -> {target} (Admin -> Connections)
  sandbox: {"not started" if self.api_key else sandbox}
  try it: Dags -> example_autoenhance_pipeline -> Trigger; enhanced photos land in output/enhanced/
  component logs: {self.log_dir}   pids: {self.pid_dir}
Press Ctrl-C to stop everything.""",
            flush=True,
        )

    def unpause_examples(self, password: str) -> None:
        """New DAGs start unpaused here; this also unpauses examples an earlier `make demo` registered."""
        login = json.dumps({"username": USERNAME, "password": password}).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback only
            f"{self.url}/auth/token", data=login, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            token = json.load(response)["access_token"]
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}/api/v2/dags?dag_id_pattern=example_autoenhance%25",
            data=json.dumps({"is_paused": False}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="PATCH",
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            deadline = time.monotonic() + 10
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent
            (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)
            print(f"stopped {name} (pid {process.pid})", flush=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _raise_stop(signum: int, _frame: Any) -> None:
    raise Stop(signum)


def _is_webhook_conn(name: str) -> bool:
    return name.startswith("AIRFLOW_CONN_AUTOENHANCE_WEBHOOK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8765")))
    parser.add_argument("--home", type=Path, default=REPO / "airflow_home")
    args = parser.parse_args(argv)
    if os.environ.get("AIRFLOW_CONN_AUTOENHANCE_DEFAULT"):
        print("Note: AIRFLOW_CONN_AUTOENHANCE_DEFAULT is ignored here; the connection lives in the DB.")
    for name in sorted(filter(_is_webhook_conn, os.environ)):
        print(f"Webhook connection {name} is passed to the API server.")
    local = LocalAirflow(args.home.resolve(), args.port, args.sandbox_port)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        local.start()
        while True:
            time.sleep(1)
            local.check_alive()
    except Stop:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        local.stop()


if __name__ == "__main__":
    sys.exit(main())
