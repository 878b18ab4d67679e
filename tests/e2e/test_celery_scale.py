"""Production volume on the real engine (issue 19): mapped listings on the Celery stack against a
sandbox with all three account limits on — the request rate per IP, the same file name per hour,
and a daily enhancement limit below the day's photos.

Day 1 ends with the images under the limit enhanced and downloaded and the rest refused, each
refused listing's wait failing with the message that says how to resume. The sandbox moves a day
on; the failed waits are cleared as that message says; only the refused images are processed
again and downloaded. In all: one order per listing, every image registered once and enhanced
once, every file once, and the requests counted against the minimum.

``AUTOENHANCE_E2E_SCALE=LISTINGSxPHOTOS`` (default ``20x30``); the daily limit is five sixths of
the photos (500 of 600), as in the issue.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from run_celery_stack import CeleryStack, log

pytestmark = pytest.mark.e2e

DAG_ID = "autoenhance_scale"
SCALE_DAGS = Path(__file__).resolve().parent / "scale_dags"
LISTINGS, PHOTOS = (int(n) for n in os.environ.get("AUTOENHANCE_E2E_SCALE", "20x30").split("x"))
TOTAL = LISTINGS * PHOTOS
DAILY_LIMIT = TOTAL * 5 // 6
WORKER_CONCURRENCY = 4
#: All processes of the stack share 127.0.0.1, the sandbox's one bucket of 300 requests/s: each
#: Celery task process and the triggerer get an equal share of 200, so that their bursts (1.5x)
#: stay within 300 too (docs/limits.md, "Many workers, hosts, or a NAT").
PER_PROCESS_RATE = 200 // (WORKER_CONCURRENCY + 1)


class ScaleStack(CeleryStack):
    """The e2e Celery stack with the scale DAG, fast polls and the documented per-process rate."""

    def airflow_env(self) -> dict[str, str]:
        env = super().airflow_env()
        conn = json.loads(env["AIRFLOW_CONN_AUTOENHANCE_DEFAULT"])
        conn["extra"] = {"max_requests_per_second": PER_PROCESS_RATE}
        env.update(
            AIRFLOW__CORE__DAGS_FOLDER=str(SCALE_DAGS),
            AIRFLOW__CORE__PARALLELISM="16",
            AIRFLOW_CONN_AUTOENHANCE_DEFAULT=json.dumps(conn),
            AUTOENHANCE_POLL_INTERVAL="2",
        )
        return env


@pytest.fixture(scope="module")
def scale_stack(e2e_timings: dict[str, float]) -> Any:
    from run_celery_stack import ensure_prerequisites

    started = time.monotonic()
    ensure_prerequisites()  # missing and not installable: skipped, or failed under CI (e2e conftest)
    stack = ScaleStack(processing_seconds=2, worker_concurrency=WORKER_CONCURRENCY)
    try:
        with stack.running():
            e2e_timings["scale_stack_start"] = stack.timings["stack_start"]
            yield stack
    finally:
        e2e_timings["scale_module_total"] = time.monotonic() - started


def small_jpeg(listing: int, photo: int) -> bytes:
    img = Image.new("RGB", (48, 32), (40 + listing * 9 % 200, 60 + photo * 7 % 180, 90))
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def run_states(stack: CeleryStack, run_id: str) -> dict[tuple[str, int], str]:
    body = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}).json()
    return {(ti["task_id"], ti["map_index"]): str(ti["state"]) for ti in body["task_instances"]}


def wait_run(stack: CeleryStack, run_id: str, timeout: float) -> str:
    return stack.finished_run(DAG_ID, run_id, timeout=timeout, interval=1)["state"]


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_a_day_over_the_daily_limit_and_the_resume_next_day(scale_stack: ScaleStack, e2e_timings) -> None:
    stack = scale_stack
    root = Path(tempfile.mkdtemp(prefix="scale-", dir=stack.root))
    listings, output = root / "listings", root / "enhanced"
    for i in range(LISTINGS):
        folder = listings / f"listing-{i:02d}"
        folder.mkdir(parents=True)
        for j in range(PHOTOS):  # the same names in every listing: the duplicate-name limit counts them
            (folder / f"photo_{j:02d}.jpg").write_bytes(small_jpeg(i, j))
    limits = {
        "rate_limit_per_second": 300,
        "duplicate_name_limit": 30,
        "daily_enhancement_limit": DAILY_LIMIT,
    }
    assert stack.sandbox_post("/_sandbox/limits", limits).ok

    stack.unpause_when_parsed(DAG_ID, timeout=120)
    started = time.monotonic()
    run_id = stack.trigger(DAG_ID, {"listings_folder": str(listings), "output_folder": str(output)})

    # ---- day 1: the limit is reached; what was enhanced is downloaded, the rest is refused
    assert wait_run(stack, run_id, timeout=420) == "failed"
    e2e_timings["scale_day1"] = day1 = time.monotonic() - started
    states = run_states(stack, run_id)
    failed_waits = sorted(
        k for (task, k), state in states.items() if task == "per_listing.wait" and state == "failed"
    )
    assert failed_waits, states
    for (task, k), state in states.items():
        if k in failed_waits and task in ("per_listing.wait", "per_listing.done"):
            assert state in ("failed", "upstream_failed"), (task, k, state)
        else:  # every other listing is done; the downloads of the refused listings ran too
            assert state == "success", (task, k, state)
    stats = stack.sandbox_get("/_sandbox/stats").json()
    assert stats["enhancements"] == DAILY_LIMIT
    assert stats["limit_refusals"]["daily_limit"] == TOTAL - DAILY_LIMIT
    assert len(files_in(output)) == DAILY_LIMIT  # every enhanced image is downloaded the same day
    log(f"day 1: {day1:.0f}s, {len(failed_waits)} listing(s) with refused images: {failed_waits}")

    # the failed wait says how many, that it resets daily, and exactly how to resume
    k = failed_waits[0]
    logs = stack.api(
        "GET",
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/per_listing.wait/logs/1",
        params={"full_content": "true", "map_index": k},
        headers={"Accept": "application/json"},
    )
    text = json.dumps(logs.json())
    assert "were refused by the account's daily enhancement limit" in text
    assert "resets daily" in text
    assert "clearTaskInstances" in text
    assert "Do not start a new DAG run" in text

    # ---- the next day: clear the failed waits as the message says
    assert stack.sandbox_post("/_sandbox/clock", {"advance_seconds": 86400}).ok
    resumed = time.monotonic()
    body = {
        "dag_run_id": run_id,
        "task_ids": [["per_listing.wait", k] for k in failed_waits],
        "include_downstream": True,
        "only_failed": False,
        "dry_run": False,
    }
    cleared = stack.api("POST", f"/dags/{DAG_ID}/clearTaskInstances", json=body)
    assert cleared.status_code == 200, cleared.text
    log(f"cleared: {sorted((ti['task_id'], ti['map_index']) for ti in cleared.json()['task_instances'])}")
    assert wait_run(stack, run_id, timeout=300) == "success"
    e2e_timings["scale_day2"] = day2 = time.monotonic() - resumed

    # ---- in all: one order per listing, every image registered, enhanced and paid once
    stats = stack.sandbox_get("/_sandbox/stats").json()
    requests_by_route = {route: dict(codes) for route, codes in stats["requests"].items()}
    log(f"day 2: {day2:.0f}s; requests: {json.dumps(requests_by_route, sort_keys=True)}")
    assert stats["orders_created"] == LISTINGS
    assert stats["images_created"] == TOTAL
    assert stats["uploads"] == TOTAL  # nothing uploaded twice
    assert len(stats["enhancements_per_image"]) == TOTAL
    assert set(stats["enhancements_per_image"].values()) == {1}  # nothing enhanced twice
    assert stats["purchases"] == TOTAL
    assert set(stats["purchases_per_image"].values()) == {1}
    assert stats["duplicate_image_names"] == {}
    files = files_in(output)
    assert len(files) == TOTAL
    per_listing = Counter(f.parent.name for f in files)
    assert set(per_listing.values()) == {PHOTOS}

    # ---- requests against the minimum, plus what the limits forced
    def count(route: str, status: str = "200") -> int:
        return requests_by_route.get(route, {}).get(status, 0)

    forced_429 = sum(codes.get("429", 0) for codes in requests_by_route.values())
    refused = TOTAL - DAILY_LIMIT
    assert count("POST /v3/images") == TOTAL
    assert count("PUT /_storage/{object_key}") == TOTAL
    assert count("POST /v3/images/{image_id}/process") == refused  # only the refused, once each
    assert count("GET /v3/images/{image_id}/enhanced", "302") == TOTAL
    order_reads = count("GET /v3/orders/{order_id}")
    total = sum(sum(codes.values()) for codes in requests_by_route.values())
    # The minimum a listing needs, polls aside: its order, its images registered, uploaded and
    # downloaded (the enhanced URL and the asset), the refused ones sent again once.
    minimum = LISTINGS + TOTAL * 4 + refused
    writes_and_transfers = total - order_reads - count("GET /v3/orders")
    log(
        f"requests: {total} in all; {writes_and_transfers} writes and transfers against a minimum of "
        f"{minimum}; {order_reads} order reads (checks, polls); 429s forced by the limits: {forced_429} "
        f"(request rate {stats['limit_refusals']['rate_limit']}, duplicate names "
        f"{stats['limit_refusals']['duplicate_name']})"
    )
    e2e_timings["scale_requests"] = total
    assert stats["limit_refusals"]["rate_limit"] == 0  # the per-process budgets kept the IP under 300/s
    assert writes_and_transfers <= 1.1 * minimum + forced_429
