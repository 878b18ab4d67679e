"""A 256 MiB upload and download stream through the sandbox with flat server memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from autoenhance_sandbox.testing import start_sandbox_process
from support.memory import PeakRss, rss_mib

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
SIZE = 256 * MIB


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
