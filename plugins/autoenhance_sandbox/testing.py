"""Helpers to run the sandbox from tests and benchmarks.

- :func:`run_sandbox`: in-process server (uvicorn in a background thread) with direct access to
  the live state; ideal for tests.
- :func:`start_sandbox_process`: the CLI as a subprocess; for benchmarks that must not share the
  GIL with the server.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from autoenhance_sandbox.config import SandboxConfig
from autoenhance_sandbox.state import SandboxState

STARTUP_TIMEOUT = 15.0
_LISTEN_RE = re.compile(r"listening on (http://\S+)")


def wait_healthy(base_url: str, timeout: float = STARTUP_TIMEOUT, alive: Any = None) -> None:
    """Poll ``GET /_sandbox/health`` until it answers 200 (stdlib only, no proxies)."""
    host_port = base_url.split("://", 1)[1]
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"sandbox at {base_url} exited during start-up")
        conn = http.client.HTTPConnection(host_port, timeout=2)
        try:
            conn.request("GET", "/_sandbox/health")
            if conn.getresponse().status == 200:
                return
        except OSError as exc:
            last_error = exc
        finally:
            conn.close()
        time.sleep(0.02)
    raise RuntimeError(f"sandbox at {base_url} not healthy after {timeout}s: {last_error}")


class SandboxServer:
    """An in-process sandbox on ``127.0.0.1`` and a free port."""

    def __init__(self, config: SandboxConfig) -> None:
        from autoenhance_sandbox.app import create_app

        self.config = config
        self._initial_config = dataclasses.replace(config)
        self.app = create_app(config)
        self.state: SandboxState = self.app.state.sandbox
        self.base_url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def api_key(self) -> str:
        return self.config.api_key

    def url(self, path: str) -> str:
        """``url("/v3/orders")`` -> ``"http://127.0.0.1:P/v3/orders"``."""
        return self.base_url + ("" if path.startswith("/") else "/") + path

    def start(self) -> None:
        import uvicorn

        from autoenhance_sandbox.cli import bind_socket

        sock = bind_socket("127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="autoenhance-sandbox", daemon=True
        )
        self._thread.start()
        wait_healthy(self.base_url, alive=self._thread.is_alive)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._server = self._thread = None

    def restore_config(self) -> None:
        """Undo in-place changes a test made to the live ``config`` (e.g. ``credits``)."""
        for field in dataclasses.fields(self._initial_config):
            setattr(self.config, field.name, getattr(self._initial_config, field.name))

    def stats(self) -> dict[str, Any]:
        """Same document as ``GET /_sandbox/stats``."""
        return self.state.stats()

    def reset(self) -> None:
        """Same as ``POST /_sandbox/reset``: clear state and stats, keep config and faults."""
        self.state.reset()

    def set_faults(
        self,
        rate: float,
        kinds: Any = None,
        endpoints: dict[str, float] | None = None,
        seed: int | None = None,
        phase: str | None = None,
        slow_seconds: float | None = None,
    ) -> None:
        """Like ``POST /_sandbox/faults``; arguments left as ``None`` keep their current value."""
        from autoenhance_sandbox.admin import configure_faults

        changes: dict[str, Any] = {"rate": rate}
        extra = {
            "kinds": kinds,
            "endpoints": endpoints,
            "seed": seed,
            "phase": phase,
            "slow_seconds": slow_seconds,
        }
        changes.update({k: v for k, v in extra.items() if v is not None})
        configure_faults(self.state, changes)

    def clear_faults(self) -> None:
        """Back to the configured fault plan without any rate (no faults at all)."""
        defaults = self.state.config_fault_settings()
        self.state.faults.configure(
            rate=0.0,
            kinds=defaults.kinds,
            endpoints={},
            seed=defaults.seed,
            phase=defaults.phase,
            slow_seconds=defaults.slow_seconds,
            replace_seed=True,
        )

    def set_options(self, **options: Any) -> dict[str, Any]:
        """Like ``POST /_sandbox/options``: pick contract readings (undone by ``restore_config``)."""
        return self.config.set_options(**options)

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        """Like ``POST /_sandbox/limits``: e.g. ``daily_enhancement_limit=500`` (``None`` = off);
        undone by ``restore_config``."""
        self.config.set_limits(**limits)
        return self.state.limits_status()

    def reset_limits(self) -> dict[str, Any]:
        """Like ``POST /_sandbox/limits/reset``: "capacity upgraded", every limit window restarts."""
        self.state.reset_limits()
        return self.state.limits_status()

    def advance_clock(self, seconds: float) -> float:
        """Like ``POST /_sandbox/clock``: jump the sandbox clock forward (processing, merging,
        webhooks and URL expiry all follow it); ``reset`` puts it back."""
        return self.state.advance_clock(seconds)

    def rejections(self) -> list[dict[str, Any]]:
        """Like ``GET /_sandbox/rejections``: the last refused requests with their bodies."""
        with self.state.lock:
            return [dict(record) for record in self.state.rejections]

    def seed(
        self,
        orders: int,
        images_per_order: int = 1,
        finish_after_seconds: float | None = None,
        error_fraction: float = 0.0,
    ) -> list[str]:
        """Like ``POST /_sandbox/seed``."""
        return self.state.seed(
            orders, images_per_order, finish_after_seconds, error_fraction, self.state.now()
        )

    def webhooks(self) -> list[dict[str, Any]]:
        """Like ``GET /_sandbox/webhooks`` (``events``)."""
        with self.state.lock:
            return [dict(record) for record in self.state.webhook_log]


@contextmanager
def run_sandbox(**config_kwargs: Any) -> Iterator[SandboxServer]:
    """Start an in-process sandbox (``SandboxConfig(**config_kwargs)``), yield it, stop it."""
    server = SandboxServer(SandboxConfig(**config_kwargs))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class SandboxProcess:
    """A sandbox running as ``python -m autoenhance_sandbox`` in a child process."""

    def __init__(self, popen: subprocess.Popen[str], base_url: str, api_key: str, log_path: Path) -> None:
        self.popen = popen
        self.base_url = base_url
        self.api_key = api_key
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def url(self, path: str) -> str:
        return self.base_url + ("" if path.startswith("/") else "/") + path

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful: state saved, temp dir removed), then SIGKILL if it hangs."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _cli_args(options: dict[str, Any]) -> list[str]:
    known = {f.name for f in dataclasses.fields(SandboxConfig)} | {"host", "log_level", "fault_kinds"}
    args: list[str] = []
    for name, value in options.items():
        if name not in known or name == "api_key":
            raise TypeError(f"unknown sandbox option {name!r}")
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def start_sandbox_process(
    port: int | None = None, api_key: str = "sandbox-key", **cli_options: Any
) -> SandboxProcess:
    """Run the CLI in a subprocess (key passed via the environment, not argv) and wait until healthy.

    ``cli_options`` are SandboxConfig-style keyword names, e.g. ``processing_seconds=0.5``.
    """
    env = {**os.environ, "AUTOENHANCE_SANDBOX_API_KEY": api_key, "PYTHONUNBUFFERED": "1"}
    handle, log_name = tempfile.mkstemp(prefix="autoenhance-sandbox-", suffix=".log")
    log_path = Path(log_name)
    command = [sys.executable, "-m", "autoenhance_sandbox", "--port", str(port or 0), *_cli_args(cli_options)]
    with os.fdopen(handle, "w") as log_file:
        popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env
        )
    line = _read_line(popen, STARTUP_TIMEOUT)
    match = _LISTEN_RE.search(line or "")
    if match is None:
        popen.kill()
        popen.wait()
        raise RuntimeError(f"sandbox did not start: {line!r}; log: {log_path.read_text()[-2000:]}")
    process = SandboxProcess(popen, match.group(1), api_key, log_path)
    threading.Thread(target=_drain, args=(popen,), daemon=True).start()
    try:
        wait_healthy(process.base_url, alive=lambda: popen.poll() is None)
    except RuntimeError:
        process.stop()
        raise
    return process


def _read_line(popen: subprocess.Popen[str], timeout: float) -> str | None:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(popen.stdout.readline() if popen.stdout else ""))
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    return result[0] if result else None


def _drain(popen: subprocess.Popen[str]) -> None:
    """Keep reading stdout so a chatty child can never block on a full pipe."""
    try:
        if popen.stdout is not None:
            for _ in popen.stdout:
                pass
    except (OSError, ValueError):
        pass
