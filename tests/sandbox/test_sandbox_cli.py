"""The CLI and the out-of-process helper: start-up time, the banner, key handling."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time

import pytest
import requests

from autoenhance_sandbox.testing import start_sandbox_process

pytestmark = pytest.mark.integration


def health_ok(base_url: str) -> bool:
    conn = http.client.HTTPConnection(base_url.split("://", 1)[1], timeout=1)
    try:
        conn.request("GET", "/_sandbox/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def test_cli_serves_and_hides_the_key() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AUTOENHANCE_SANDBOX_API_KEY", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoenhance_sandbox",
            "--port",
            "0",
            "--api-key",
            "cli-secret-key",
            "--processing-seconds",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        base_url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        for _ in range(1000):  # bounded: the banner is printed before serving starts
            if health_ok(base_url):
                break
            time.sleep(0.01)
        assert health_ok(base_url)
        assert line == f"Autoenhance sandbox listening on {base_url} (API key from --api-key)"
        assert "cli-secret-key" not in line
        assert base_url.startswith("http://127.0.0.1:")
        session = requests.Session()
        session.trust_env = False
        assert (
            session.get(f"{base_url}/v3/orders", headers={"x-api-key": "cli-secret-key"}).status_code == 200
        )
        assert session.get(f"{base_url}/v3/orders", headers={"x-api-key": "sandbox-key"}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_start_sandbox_process_uses_env_key_and_stops() -> None:
    with start_sandbox_process(api_key="proc-key", processing_seconds=0.1, fault_kinds=["500"]) as proc:
        assert proc.pid > 0
        session = requests.Session()
        session.trust_env = False
        assert (
            session.post(proc.url("/v3/orders"), json={}, headers={"x-api-key": "proc-key"}).status_code
            == 200
        )
        stats = session.get(proc.url("/_sandbox/stats")).json()
        assert stats["orders_created"] == 1
        session.close()
    assert proc.popen.poll() is not None
    assert not health_ok(proc.base_url)


def test_cli_rejects_bad_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "autoenhance_sandbox", "--fault-phase", "sometimes"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--fault-phase" in result.stderr
