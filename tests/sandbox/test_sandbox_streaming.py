"""A 256 MiB upload and download stream through the sandbox with flat server memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from autoenhance_sandbox.testing import start_sandbox_process

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
SIZE = 256 * MIB


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Sample a process's resident memory in the background."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def chunks() -> Iterator[bytes]:
    block = bytes(range(256)) * 4096  # 1 MiB, not an image
    for _ in range(SIZE // MIB):
        yield block


def test_large_upload_and_download_are_streamed() -> None:
    with start_sandbox_process(processing_seconds=0.05) as proc:
        session = requests.Session()
        session.trust_env = False
        key = {"x-api-key": proc.api_key}
        image = session.post(proc.url("/v3/images"), json={"image_name": "huge.raw"}, headers=key).json()
        baseline = rss_mib(proc.pid)
        sampler = PeakRss(proc.pid)
        response = session.put(image["upload_url"], data=chunks())
        assert response.status_code == 200
        redirect = session.get(proc.url(f"/v3/images/{image['image_id']}/original"), allow_redirects=False)
        received = 0
        with session.get(redirect.headers["Location"], stream=True) as download:
            for block in download.iter_content(MIB):
                received += len(block)
        peak = sampler.stop()
        session.close()
        print(f"\nserver RSS baseline {baseline:.0f} MiB, peak {peak:.0f} MiB during 2 x 256 MiB")
        assert received == SIZE
        assert peak - baseline < 64
