"""A 256 MiB photo streams from S3 to the API and from the API back to S3 with flat memory.

Measured in a child process (``s3_stream_child.py``), with the sandbox in another one, so the
resident memory counted is the provider's alone: its growth must stay far below the object size.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_helpers import S3

from autoenhance_provider.files.manifest import MANIFEST_NAME
from autoenhance_sandbox.testing import start_sandbox_process
from support.images import jpeg_bytes

MIB = 1024 * 1024
SIZE = 256 * MIB
#: Growth allowed for a 256 MiB transfer: buffers of a few MiB (s3fs parts are 5 MiB), not the file.
MAX_GROWTH_MIB = 64
CHILD = Path(__file__).with_name("s3_stream_child.py")
#: A bound, not a speed requirement: the sandbox takes 256 MiB at ~8 MB/s on a shared 2-core machine.
CHILD_TIMEOUT = 400


class BigJpeg:
    """A 256 MiB file-like body: JPEG magic, then a pattern, generated as it is read."""

    def __init__(self) -> None:
        self.sent = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        size = MIB if size is None or size < 0 else size
        count = min(size, SIZE - self.sent)
        if count <= 0:
            return b""
        start = self.sent % 256
        data = (bytes(range(256)) * (count // 256 + 2))[start : start + count]
        if self.sent == 0:
            data = b"\xff\xd8\xff\xe0" + data[4:]
        self.sent += count
        self.digest.update(data)
        return data


@pytest.fixture
def sandbox_process(s3: S3) -> Iterator[object]:
    with start_sandbox_process(processing_seconds=0.05) as proc:
        yield proc


def test_a_256_mib_photo_streams_both_ways_with_flat_memory(s3, sandbox_process, moto_endpoint):
    body = BigJpeg()
    s3.client.upload_fileobj(body, s3.bucket, "big/huge.jpg")
    assert body.sent == SIZE
    s3.put("warm/small.jpg", jpeg_bytes(level=1))
    conn = {"conn_type": "autoenhance", "host": sandbox_process.base_url, "password": sandbox_process.api_key}
    env = {**os.environ, "AIRFLOW_CONN_AUTOENHANCE_DEFAULT": json.dumps(conn)}

    result = subprocess.run(
        [sys.executable, str(CHILD), s3.bucket, "big/huge.jpg"],
        capture_output=True,
        text=True,
        env=env,
        timeout=CHILD_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    up = report["uploaded"] - report["baseline"]
    down = report["downloaded"] - report["baseline"]
    print(
        f"\nRSS baseline {report['baseline']:.0f} MiB; growth: upload {up:.1f} MiB, download {down:.1f} MiB"
    )
    print(json.dumps({k: v for k, v in report.items() if k != "uris"}))
    assert up < MAX_GROWTH_MIB
    assert down < MAX_GROWTH_MIB
    objects = s3.objects("big-out/")
    assert objects["big-out/huge.jpg"]["size"] == SIZE
    manifest = json.loads(s3.get(f"big-out/{MANIFEST_NAME}"))
    assert manifest["files"]["huge.jpg"]["sha256"] == body.digest.hexdigest()  # the same bytes came back
    assert [k for k in s3.objects() if k.endswith(".part")] == []
    assert s3.pending_multipart_uploads() == []
