"""S3 for real: moto's standalone S3 server on 127.0.0.1, an ``aws`` connection, the sandbox.

The provider reaches S3 only through ``ObjectStoragePath`` (s3fs, from apache-airflow-providers-amazon)
and the ``aws_default`` connection, whose ``endpoint_url`` points at the moto server. Nothing leaves
the machine: dummy keys, instance metadata lookups disabled, every server on the loopback address.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_helpers import AWS_ENV, S3, aws_connection

from free_ports import free_port
from support.sandbox import sandbox_fixtures

STARTUP_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``moto_server`` as a child process on a free loopback port (stopped at the end)."""
    port = free_port()
    server = Path(sys.executable).parent / "moto_server"
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed below, after the process ends
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=log,
        env={**os.environ, **AWS_ENV},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection(moto_endpoint))
    # Airflow keeps one file system per (scheme, connection) for the process: one attached by an
    # earlier test (another aws_default, without the moto endpoint) must not be reused here.
    from airflow.sdk.io import store

    monkeypatch.setattr(store, "_STORE_CACHE", {})
    return S3(moto_endpoint)


#: The sandbox, reset, and ``autoenhance_default`` pointing at it.
s3_sandbox_session, sandbox = sandbox_fixtures(
    "s3_sandbox_session", "session", processing_seconds=0.2, merge_seconds=0.1
)
