"""A real multi-process Airflow (CeleryExecutor) on 127.0.0.1, for the end-to-end test.

Starts, each as its own process group with its pid saved under ``<root>/pids``:

- a throwaway PostgreSQL cluster (Debian's ``initdb`` + ``postgres``, run as the ``postgres`` user
  when we are root) on a free port,
- Redis (Debian's ``redis-server``) on a free port, without persistence,
- the Autoenhance sandbox (``autoenhance-sandbox``),
- ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and ``celery worker``,

all with their own ``AIRFLOW_HOME`` inside ``<root>``. Whatever is missing is installed first
(``apt-get install redis-server chromium chromium-driver``, as root or through passwordless
sudo; ``pip install`` of the Python packages of the ``test`` extra); when a system package is
missing and cannot be installed, :class:`MissingPrerequisite` says which and how to get it.
:meth:`CeleryStack.stop` stops everything it started, by pid (process group), newest first; it
is idempotent and also runs from ``atexit`` and on SIGTERM/SIGINT.

As a script it starts the stack, prints the URLs and the login, and waits for Ctrl-C::

    .venv/bin/python tests/e2e/run_celery_stack.py
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, also when run as a script
from airflow_client import AirflowClient, clean_env

from free_ports import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DAG_ID = "example_autoenhance_pipeline"
WEBHOOK_DAG_ID = "example_autoenhance_webhook_download"
# Recognisable, so that a leak is easy to grep for; the sandbox accepts it as its API key.
FAKE_API_KEY = "ae-e2e-FAKE-KEY-0ddba11-c0ffee"

SAMPLE_PHOTOS = REPO / "dags" / "sample_photos" / "listing-42"
# Debian's Chromium as root in a container: no sandbox, no GPU, no network of its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1200",
]

APT_PACKAGES = {"redis-server": "redis-server", "chromium": "chromium", "chromedriver": "chromium-driver"}
# import name -> pip requirement: the same as in the `test` extra of pyproject.toml
PIP_PACKAGES = {
    "airflow.providers.celery": "apache-airflow-providers-celery>=3.10",
    # celery 5.7.0 removed celery.backends.database.retry, which providers-celery 3.26.0 imports
    "celery": "celery[redis]>=5.5,<5.7",
    "psycopg2": "psycopg2-binary>=2.9",
    "asyncpg": "asyncpg>=0.29",
    "redis": "redis>=5.0",
    "selenium": "selenium>=4.20",
}


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    return None


class MissingPrerequisite(RuntimeError):
    """A system package the stack needs is missing and cannot be installed here (not root, no
    passwordless sudo, or no apt-get). The message is one line: what is missing and how to get it.
    The e2e fixtures turn it into a skip, except under ``CI=true``, where it fails."""


def _apt_prefix() -> list[str] | None:
    """How to run apt-get here: as root, through passwordless sudo, or not at all (``None``)."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    return None


def ensure_prerequisites() -> dict[str, float]:
    """Install what the stack needs and is missing; returns the seconds each install step took."""
    missing_apt = [pkg for binary, pkg in APT_PACKAGES.items() if shutil.which(binary) is None]
    if _pg_bin() is None:
        missing_apt.append("postgresql")
    missing_pip = any(not _importable(module) for module in PIP_PACKAGES)
    # All of them, so that pip resolves the celery pin together with the provider.
    return _install(missing_apt, list(PIP_PACKAGES.values()) if missing_pip else [])


def ensure_browser() -> dict[str, float]:
    """Install only what the browser tests of the `make airflow` stack need: Chromium and selenium."""
    browser_apt = {"chromium": "chromium", "chromedriver": "chromium-driver"}
    missing_apt = [pkg for binary, pkg in browser_apt.items() if shutil.which(binary) is None]
    return _install(missing_apt, [] if _importable("selenium") else [PIP_PACKAGES["selenium"]])


def _install(missing_apt: list[str], missing_pip: list[str]) -> dict[str, float]:
    timings: dict[str, float] = {}
    if missing_apt:
        apt = _apt_prefix()
        if apt is None:
            raise MissingPrerequisite(
                f"missing system packages {', '.join(missing_apt)} and no root or passwordless sudo "
                f"to install them: run `sudo apt-get install {' '.join(missing_apt)}` (Debian/Ubuntu; "
                "PostgreSQL is looked for under /usr/lib/postgresql/*/bin), or let CI run these tests"
            )
        started = time.monotonic()
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        log(f"apt-get install {' '.join(missing_apt)}")
        subprocess.run([*apt, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            [*apt, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing_apt],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        timings["apt"] = time.monotonic() - started
    if missing_pip:
        started = time.monotonic()
        log(f"pip install {' '.join(missing_pip)}")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *missing_pip],
            check=True,
        )
        importlib.invalidate_caches()
        timings["pip"] = time.monotonic() - started
    return timings


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class CeleryStack(AirflowClient):
    """The whole stack under one temporary root. ``start()``, use, ``stop()``."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        api_key: str = FAKE_API_KEY,
        processing_seconds: float = 12.0,
        worker_concurrency: int = 2,
    ) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="autoenhance-e2e-"))
        self.root.mkdir(parents=True, exist_ok=True)
        # The postgres user must be able to traverse into its data directory.
        self.root.chmod(0o711)
        self.home = self.root / "airflow_home"
        self.pid_dir = self.root / "pids"
        self.log_dir = self.root / "logs"
        for folder in (self.home, self.pid_dir, self.log_dir):
            folder.mkdir(exist_ok=True)
        self.api_key = api_key
        self.processing_seconds = processing_seconds
        self.worker_concurrency = worker_concurrency
        self.ports = {
            name: free_port()
            for name in ("postgres", "redis", "sandbox", "api", "worker_logs", "trigger_logs")
        }
        self.username = "admin"
        self.password = secrets.token_urlsafe(12)
        self.api_url = f"http://127.0.0.1:{self.ports['api']}"
        self.sandbox_url = f"http://127.0.0.1:{self.ports['sandbox']}"
        # The sandbox sends its webhooks to the receiver on the API server, with this token.
        self.webhook_url = f"{self.api_url}/autoenhance/webhook"
        self.webhook_token = self._secret("webhook")
        self.webhook_output = self.root / "webhook-orders"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.timings: dict[str, float] = {}
        self._token: str | None = None
        self._stopped = False
        self._previous_handlers: dict[int, Any] = {}

    # -- environment ----------------------------------------------------------------------------

    def airflow_env(self) -> dict[str, str]:
        """The environment of every Airflow component: nothing inherited from the test process."""
        base = clean_env("_AIRFLOW")
        db = f"postgresql+psycopg2://airflow@127.0.0.1:{self.ports['postgres']}/airflow"
        conn = {"conn_type": "autoenhance", "host": self.sandbox_url, "password": self.api_key}
        webhook_conn = {"conn_type": "generic", "password": self.webhook_token}
        base.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
            # As in docker-compose.yaml: the repository's plugins/ is Airflow's plugins folder.
            AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__FERNET_KEY=self._secret("fernet"),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.api_url}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{self.username}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.home / "passwords.json"),
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",  # the Test button of Admin -> Connections
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db,
            AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{self.ports['redis']}/0",
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+postgresql+psycopg2://airflow@127.0.0.1:{self.ports['postgres']}/airflow",
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(self.worker_concurrency),
            AIRFLOW__CELERY__SYNC_PARALLELISM="1",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.ports["api"]),
            AIRFLOW__API__BASE_URL=self.api_url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API__SECRET_KEY=self._secret("api"),
            AIRFLOW__API_AUTH__JWT_SECRET=self._secret("jwt"),
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(self.ports["worker_logs"]),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(self.ports["trigger_logs"]),
            AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
            AIRFLOW_CONN_AUTOENHANCE_DEFAULT=json.dumps(conn),
            # The webhook receiver's secret (read by the API server), and where the example webhook
            # DAG downloads finished orders (its output_folder default).
            AIRFLOW_CONN_AUTOENHANCE_WEBHOOK=json.dumps(webhook_conn),
            AUTOENHANCE_WEBHOOK_OUTPUT=str(self.webhook_output),
            AUTOENHANCE_POLL_INTERVAL="2",
            PYTHONUNBUFFERED="1",
        )
        return base

    def _secret(self, name: str) -> str:
        path = self.root / f".{name}.secret"
        if not path.exists():
            if name == "fernet":
                from cryptography.fernet import Fernet

                value = Fernet.generate_key().decode()
            else:
                value = secrets.token_urlsafe(32)
            path.write_text(value)
            path.chmod(0o600)
        return path.read_text()

    # -- processes ------------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], env: dict[str, str], **kwargs: Any) -> None:
        log_file = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() signals the group by this pid
            preexec_fn=_die_with_parent,
            **kwargs,
        )
        log_file.close()
        self.processes[name] = process
        (self.pid_dir / f"{name}.pid").write_text(str(process.pid))
        log(f"started {name} (pid {process.pid})")

    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _check_alive(self, what: str = "") -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log_text(name)[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}; its log ends with:\n{tail}")

    # -- start -----------------------------------------------------------------------------------

    def start(self) -> CeleryStack:
        atexit.register(self.stop)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError):  # not in the main thread
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
        started = time.monotonic()
        self._start_postgres()
        self._start_redis()
        self._start_sandbox()
        self._migrate()
        self._start_airflow()
        self.timings["stack_start"] = time.monotonic() - started
        log(f"stack ready in {self.timings['stack_start']:.1f}s: {self.api_url}")
        return self

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop()
        raise SystemExit(128 + signum)

    def _as_postgres(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        user = pwd.getpwnam("postgres")
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _start_postgres(self) -> None:
        pg_bin = _pg_bin()
        if pg_bin is None:
            raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
        pg_dir = self.root / "postgres"
        data = pg_dir / "data"
        pg_dir.mkdir(exist_ok=True)
        as_user = self._as_postgres()
        if as_user:
            os.chown(pg_dir, as_user["user"], as_user["group"])
        started = time.monotonic()
        subprocess.run(
            [
                str(pg_bin / "initdb"),
                "-D",
                str(data),
                "-U",
                "airflow",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            cwd=pg_dir,
            **as_user,
        )
        self._spawn(
            "postgres",
            [
                str(pg_bin / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.ports["postgres"]),
                "-k",
                str(pg_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"},
            cwd=pg_dir,
            **as_user,
        )

        def create_db() -> bool:
            subprocess.run(
                [
                    str(pg_bin / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.ports["postgres"]),
                    "-U",
                    "airflow",
                    "airflow",
                ],
                check=True,
                capture_output=True,
            )
            return True

        self.wait_for("PostgreSQL", create_db, timeout=30)
        self.timings["postgres"] = time.monotonic() - started

    def _start_redis(self) -> None:
        redis_dir = self.root / "redis"
        redis_dir.mkdir(exist_ok=True)
        self._spawn(
            "redis",
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.ports["redis"]),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(redis_dir),
            ],
            env={"PATH": os.environ.get("PATH", "")},
        )

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", self.ports["redis"]), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        self.wait_for("Redis", ping, timeout=15)

    def _sandbox_options(self) -> list[str]:
        """The sandbox's options besides its address, speed and log level: where its webhooks go."""
        # The webhook token is an argument of the sandbox's CLI (its only way in); the sandbox is a
        # test double, and the token a throwaway one of this stack.
        return [
            "--webhook-url",
            self.webhook_url,
            # One argument with "=": a token_urlsafe() secret may start with "-", which argparse
            # would take for an option ("--webhook-token: expected one argument").
            f"--webhook-token={self.webhook_token}",
        ]

    def _start_sandbox(self) -> None:
        env = clean_env()
        env["AUTOENHANCE_SANDBOX_API_KEY"] = self.api_key  # not on the command line
        self._spawn(
            "sandbox",
            [
                str(VENV_BIN / "autoenhance-sandbox"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports["sandbox"]),
                "--processing-seconds",
                str(self.processing_seconds),
                *self._sandbox_options(),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        self.wait_for("the sandbox", lambda: self.sandbox_get("/_sandbox/health").ok, timeout=20)

    def _airflow(self, *args: str) -> list[str]:
        return [str(VENV_BIN / "airflow"), *args]

    def _spawn_worker(self, env: dict[str, str]) -> None:
        self._spawn(
            "celery-worker",
            self._airflow(
                "celery",
                "worker",
                "--celery-hostname",
                "e2e-worker@%h",
                "--without-gossip",
                "--without-mingle",
            ),
            env,
        )

    def _migrate(self) -> None:
        (self.home / "passwords.json").write_text(json.dumps({self.username: self.password}))
        started = time.monotonic()
        result = subprocess.run(
            self._airflow("db", "migrate"), env=self.airflow_env(), capture_output=True, text=True
        )
        (self.log_dir / "db-migrate.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{(result.stdout + result.stderr)[-3000:]}")
        self.timings["db_migrate"] = time.monotonic() - started

    def _start_airflow(self) -> None:
        env = self.airflow_env()
        self._spawn("api-server", self._airflow("api-server", "--workers", "1"), env)
        self._spawn("scheduler", self._airflow("scheduler"), env)
        self._spawn("dag-processor", self._airflow("dag-processor"), env)
        self._spawn("triggerer", self._airflow("triggerer"), env)
        self._spawn_worker(env)

        def healthy() -> bool:
            health = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
            return all(
                health.get(part, {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        self.wait_for("the Airflow components to report healthy", healthy, timeout=180, interval=1)
        self.wait_for("the Celery worker", lambda: " ready." in self.log_text("celery-worker"), timeout=120)

    # -- stop -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything this stack started, newest first, by process group (= saved pid)."""
        if self._stopped:
            return
        self._stopped = True
        for sig, handler in self._previous_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            sig = signal.SIGINT if name == "postgres" else signal.SIGTERM  # postgres: fast shutdown
            _signal_group(process.pid, sig)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {process.pid}) did not stop in 20s: SIGKILL")
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Children of the component (celery pool, task supervisors, parser processes).
            deadline = time.monotonic() + 10
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(process.pid):
                _signal_group(process.pid, signal.SIGKILL)
            (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)
            log(f"stopped {name} (pid {process.pid}, exit {process.returncode})")

    def diagnostics(self, lines: int = 40) -> str:
        """The last lines of every component's output, for assertion messages."""
        parts = []
        for name in self.processes:
            tail = self.log_text(name).splitlines()[-lines:]
            parts.append(f"--- {name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def assert_in_no_log_file(self, secret: str) -> int:
        """Fail, naming the file, if ``secret`` is in any file of the log folder (task, trigger and
        dag-processor logs) or in any component's output; the number of files read."""
        scanned = 0
        for folder in (self.home / "logs", self.log_dir):
            for path in folder.rglob("*"):
                if path.is_file():
                    scanned += 1
                    assert secret not in path.read_text(errors="replace"), f"API key in {path}"
        return scanned

    def leftovers(self) -> list[str]:
        """Processes of any group this stack started that are still alive (should be none)."""
        return [name for name, process in self.processes.items() if _group_alive(process.pid)]

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[CeleryStack]:
        """Start the stack; on the way out stop it, remove its files (kept with
        ``AUTOENHANCE_E2E_KEEP=1``) and fail if any process it started outlived ``stop()``."""
        try:
            self.start()
            yield self
        finally:
            self.stop()
            leftovers = self.leftovers()
            if os.environ.get("AUTOENHANCE_E2E_KEEP"):
                print(f"e2e stack files kept in {self.root}")
            else:
                shutil.rmtree(self.root, ignore_errors=True)
            assert not leftovers, f"processes still running after stop(): {leftovers}"


def _die_with_parent() -> None:
    """In the child: SIGTERM when the process that started it dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish_screenshot(path: Path) -> None:
    """Copy a screenshot to docs/ when AUTOENHANCE_UPDATE_SCREENSHOTS=1 (never by default)."""
    print(f"screenshot: {path}")
    if os.environ.get("AUTOENHANCE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, REPO / "docs" / path.name)


def main() -> int:
    timings = ensure_prerequisites()
    stack = CeleryStack()
    try:
        stack.start()
        print(
            f"\nAirflow (CeleryExecutor) UI: {stack.api_url}  login {stack.username} / {stack.password}\n"
            f"Sandbox: {stack.sandbox_url}   logs: {stack.log_dir}   pids: {stack.pid_dir}\n"
            f"installs: {timings}  start: {stack.timings}\nCtrl-C stops everything.",
            flush=True,
        )
        while True:
            time.sleep(1)
            stack._check_alive()
    except KeyboardInterrupt:
        return 0
    finally:
        stack.cleanup()


if __name__ == "__main__":
    sys.exit(main())
