"""Request budget: the pipeline DAG with N images, requests per endpoint as the sandbox counts them.

Runs ``example_autoenhance_pipeline`` with ``dag.test()`` (SQLite Airflow, the wait deferred to
the trigger) against the sandbox in its own process, then compares the sandbox's counters with
the minimum a client needs: 1 create order, N create image, N PUT, ceil(wait / poll) order
polls, N downloads + N asset GETs. Our operators add a few order reads of their own; each one is
attributed to its caller (the hooks' ``get_order`` are wrapped) and explained. Then the download
task runs again into the same folder, like a retry: it must download and buy nothing.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

c.isolated_airflow_home()

IMAGES, PROCESSING_SECONDS, POLL_SECONDS = 20, 6.0, 2.0

#: Who reads the order besides the trigger, and why (function name in the call stack -> label).
ORDER_READERS = {
    "_confirm_registered": "upload: wait_for_upload confirmation",
    "execute_upload": "upload: idempotency pre-check",
    "poke": "sensor: check before deferring",
    "execute_download": "download: plan (which images, which names)",
    "run": "trigger: polls",
}
WHY = {
    "upload: idempotency pre-check": "needed: a retried upload skips finished images, removes half-done ones",
    "upload: wait_for_upload confirmation": "avoidable with wait_for_upload=False when a sensor follows "
    "(the sensor also waits for 'waiting' images); kept for operators used alone",
    "sensor: check before deferring": "needed: an order already done (or failed) ends without a deferral",
    "download: plan (which images, which names)": "needed: the image list and states come from the order",
}


def migrate_db() -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=dict(os.environ))


class OrderReadCounter:
    """Wrap both hooks' ``get_order`` and attribute each call to the operator step that made it."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def _label(self) -> str:
        frame = sys._getframe(2)
        while frame is not None:
            name, owner = frame.f_code.co_name, frame.f_locals.get("self")
            kind = type(owner).__name__ if owner is not None else ""
            if name == "execute" and kind in ("UploadImagesOperator", "DownloadImagesOperator"):
                name = "execute_upload" if kind.startswith("Upload") else "execute_download"
            if name in ORDER_READERS and (name != "run" or kind == "AutoenhanceOrderTrigger"):
                return ORDER_READERS[name]
            frame = frame.f_back
        return "other"

    def install(self) -> None:
        from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
        from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook

        sync_get, async_get = AutoenhanceHook.get_order, AutoenhanceAsyncHook.get_order
        counter = self

        def get_order(hook: Any, order_id: str) -> Any:
            label = counter._label()
            counter.counts[label] = counter.counts.get(label, 0) + 1
            return sync_get(hook, order_id)

        async def aget_order(hook: Any, order_id: str) -> Any:
            label = counter._label()
            counter.counts[label] = counter.counts.get(label, 0) + 1
            return await async_get(hook, order_id)

        AutoenhanceHook.get_order = get_order  # type: ignore[method-assign]
        AutoenhanceAsyncHook.get_order = aget_order  # type: ignore[method-assign]


def make_photos(folder: Path, count: int) -> None:
    import io

    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (320, 240), (60 + 7 * i % 120, 90, 120)).save(buffer, "JPEG", quality=85)
        (folder / f"room-{i:03d}.jpg").write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv)
    n, processing, poll = (3, 1.0, 0.5) if args.tiny else (IMAGES, PROCESSING_SECONDS, POLL_SECONDS)
    os.environ["AUTOENHANCE_POLL_INTERVAL"] = str(poll)
    migrate_db()
    counter = OrderReadCounter()
    with (
        tempfile.TemporaryDirectory(prefix="autoenhance-bench-requests-") as tmp,
        c.sandbox_process(processing_seconds=processing) as sandbox,
    ):
        c.point_connection_at(sandbox.base_url)
        photos, out = Path(tmp) / "photos", Path(tmp) / "enhanced"
        make_photos(photos, n)
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(str(c.REPO / "dags")).get_dag("example_autoenhance_pipeline")
        counter.install()
        start = time.monotonic()
        run = dag.test(run_conf={"input_folder": str(photos), "output_folder": str(out)})
        seconds = time.monotonic() - start
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        if str(run.state) != "success":
            raise RuntimeError(f"the pipeline failed: {states}")
        stats = c.admin(sandbox.base_url, "stats")
        measured = c.request_counts(stats)
        reads = dict(counter.counts)

        # A retry of the download task into the same folder: nothing to fetch, nothing to pay.
        from autoenhance_provider.operators.download import DownloadImagesOperator

        run_order = _order_of_run(sandbox.base_url)
        before_retry = c.request_counts(c.admin(sandbox.base_url, "stats"))
        retry = DownloadImagesOperator(
            task_id="download_retry",
            order_id=run_order,
            destination=str(out / run_order),  # the example DAG writes each order into its own folder
            format="jpeg",
            quality=90,
            preview=False,
        )
        retry.execute(c.fake_context())
        retry.hook.close()
        after_retry = c.admin(sandbox.base_url, "stats")
        retry_diff = c.diff_counts(c.request_counts(after_retry), before_retry)

    rows = budget_rows(n, processing, poll, measured, stats, reads, retry_diff, after_retry)
    rows.append(c.row("request budget", "pipeline run (dag.test)", f"{seconds:.1f} s, task states: {states}"))
    return c.finish(args, rows, {"measured": measured, "order_reads": reads, "retry": retry_diff})


def _order_of_run(base_url: str) -> str:
    import requests

    response = requests.get(f"{base_url}/v3/orders/", headers={"x-api-key": c.BENCH_KEY}, timeout=30)
    response.raise_for_status()
    (order,) = response.json()["orders"]
    return order["order_id"]


def budget_rows(
    n: int,
    processing: float,
    poll: float,
    measured: dict[str, int],
    stats: dict[str, Any],
    reads: dict[str, int],
    retry_diff: dict[str, int],
    after_retry: dict[str, Any],
) -> list[dict[str, Any]]:
    section = f"request budget, pipeline with {n} images"
    polls_max = math.ceil(processing / poll) + 1  # the order finishes between two polls
    trigger_polls = reads.get("trigger: polls", 0)
    extras = {k: v for k, v in reads.items() if k != "trigger: polls"}
    expected = {
        "POST /v3/orders": (1, "1 create order"),
        "POST /v3/images": (n, "N create image"),
        "PUT /_storage/{object_key}": (n, "N presigned PUT"),
        "GET /v3/images/{image_id}/enhanced": (n, "N downloads"),
        "GET /_assets/{token}": (n, "N asset GETs"),
    }
    rows = []
    for endpoint, (want, what) in expected.items():
        got = measured.get(endpoint, 0)
        rows.append(c.row(section, f"`{endpoint}` ({what})", str(got), f"= {want}", got == want))
    order_gets = measured.get("GET /v3/orders/{order_id}", 0)
    rows.append(
        c.row(
            section,
            f"`GET /v3/orders/{{order_id}}`: trigger polls (wait <= {processing:g} s, poll {poll:g} s)",
            str(trigger_polls),
            f"<= ceil(wait/poll) + 1 = {polls_max}",
            0 < trigger_polls <= polls_max,
        )
    )
    for label, count in sorted(extras.items()):
        rows.append(
            c.row(
                section, f"`GET /v3/orders/{{order_id}}`: {label}", str(count), "", None, WHY.get(label, "")
            )
        )
    rows.append(
        c.row(
            section,
            "`GET /v3/orders/{order_id}` total (sandbox) = polls + the reads above",
            str(order_gets),
            f"= {trigger_polls + sum(extras.values())}",
            order_gets == trigger_polls + sum(extras.values()),
        )
    )
    known = {*expected, "GET /v3/orders/{order_id}"}
    other = {k: v for k, v in measured.items() if k not in known}
    rows.append(c.row(section, "any other endpoint", str(other or 0), "= 0", not other))
    per_image = stats.get("purchases_per_image", {})
    rows.append(
        c.row(
            section,
            "purchases per image (none bought twice)",
            f"{len(per_image)} images, max {max(per_image.values(), default=0)}",
            f"{n} images, max 1",
            len(per_image) == n and set(per_image.values()) == {1},
        )
    )
    rows.append(
        c.row(
            section,
            "download task retried into the same folder",
            ", ".join(f"{k}: {v}" for k, v in sorted(retry_diff.items())) or "no requests",
            "1 order read, 0 downloads, 0 purchases",
            retry_diff == {"GET /v3/orders/{order_id}": 1} and after_retry["purchases"] == n,
        )
    )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
