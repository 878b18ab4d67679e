"""Child process of test_s3_streaming: a 256 MiB object up from S3 and back down to S3.

Prints one JSON line with the resident memory (MiB) before and at its peak during each transfer.
The connections come from the environment (``AIRFLOW_CONN_AWS_DEFAULT``,
``AIRFLOW_CONN_AUTOENHANCE_DEFAULT``); argv: bucket, key of the big source object.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for support
from support.memory import PeakRss, rss_mib
from support.task import task_context


def transfer(bucket: str, source: str, out: str) -> list[str]:
    """Upload ``source`` into a new order, then download its original into ``out``."""
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
    from autoenhance_provider.operators.download import DownloadImagesOperator
    from autoenhance_provider.operators.upload import UploadImagesOperator

    started = time.monotonic()
    hook = AutoenhanceHook()
    order_id = str(hook.create_order(name="streaming")["order_id"])
    hook.close()
    fast = {"retry_delay": 0.01, "retry_max_delay": 0.05}
    UploadImagesOperator(
        task_id="up",
        order_id=order_id,
        source=f"s3://{bucket}/{source}",
        source_conn_id="aws_default",
        hook_params=fast,
    ).execute(task_context())
    marks["uploaded"] = PEAK.stop()
    marks["upload_seconds"] = time.monotonic() - started
    restart()
    started = time.monotonic()
    marks["download_start"] = rss_mib()
    uris = DownloadImagesOperator(
        task_id="down",
        order_id=order_id,
        kind="original",
        destination=f"s3://{bucket}/{out}",
        destination_conn_id="aws_default",
        hook_params=fast,
    ).execute(task_context())
    marks["download_seconds"] = time.monotonic() - started
    return uris


marks: dict[str, float] = {}
PEAK: PeakRss


def restart() -> None:
    global PEAK
    PEAK = PeakRss()


def main() -> None:
    bucket, big_key = sys.argv[1], sys.argv[2]
    restart()
    transfer(bucket, "warm/small.jpg", "warm-out")  # imports, pools, clients: not what is measured
    gc.collect()
    baseline = rss_mib()
    restart()
    uris = transfer(bucket, big_key, "big-out")
    marks["downloaded"] = PEAK.stop()
    print(json.dumps({"baseline": baseline, **marks, "uris": uris}))


if __name__ == "__main__":
    main()
