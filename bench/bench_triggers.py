"""Waiting at scale: N AutoenhanceOrderTriggers in one asyncio loop, as a triggerer runs them.

The sandbox (own process) is seeded with N orders that finish 60 s later; a fresh child
process runs one asyncio task per trigger (like the triggerer's TriggerRunner) at the default
poll interval (30 s) until every trigger has fired its event. The triggers get the kwargs
``OrderProcessedSensor`` defers with (first poll one interval after the sensor's own check).
The child reports its own CPU seconds (user + system, all threads) and peak RSS; the parent
reads the sandbox's CPU seconds from /proc, so client and server cost are measured separately.
The connection comes from ``AIRFLOW_CONN_AUTOENHANCE_DEFAULT``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import _common as c

c.isolated_airflow_home()

SIZES = (100, 1000, 10_000)
POLL_INTERVAL = 30.0  # the provider's default (waiting.DEFAULT_POLL_INTERVAL)
FINISH_AFTER = 60.0
CPU_TARGET = 0.05  # of one core, for 1,000 triggers
RSS_TARGET_MIB = 200


def child(order_ids: list[str], poll_interval: float) -> dict[str, Any]:
    import asyncio

    from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger

    async def one(trigger: AutoenhanceOrderTrigger) -> tuple[str, float]:
        async for event in trigger.run():
            return event.payload["status"], time.time()
        return "no event", time.time()

    async def everything() -> list[tuple[str, float]]:
        now = time.time()
        # The kwargs OrderProcessedSensor defers with: it has just checked the order itself, so
        # the trigger's first poll is one interval later.
        triggers = [
            AutoenhanceOrderTrigger(
                order_id=oid,
                poll_interval=poll_interval,
                end_time=now + 30 * poll_interval + 600,
                first_poll_at=now + poll_interval,
            )
            for oid in order_ids
        ]
        tasks = [asyncio.create_task(one(t)) for t in triggers]
        return await asyncio.gather(*tasks)

    rss_before = c.proc_status_kib("VmRSS")
    cpu_before = c.proc_cpu_seconds()
    start = time.time()
    results = asyncio.run(everything())
    wall = time.time() - start
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "triggers": len(order_ids),
        "wall_seconds": wall,
        "cpu_seconds": c.proc_cpu_seconds() - cpu_before,
        "peak_rss_kib": c.proc_status_kib("VmHWM"),
        "rss_before_kib": rss_before,
        "statuses": statuses,
        "last_event_after": max(t for _, t in results) - start,
    }


def raise_fd_limit() -> None:
    """10,000 triggers hold 10,000 sockets (and the sandbox as many): lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv)
    sizes, poll, finish = ((20,), 0.5, 3.0) if args.tiny else (SIZES, POLL_INTERVAL, FINISH_AFTER)
    raise_fd_limit()
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for size in sizes:
        with c.sandbox_process(processing_seconds=finish) as sandbox:
            c.point_connection_at(sandbox.base_url)
            ids = c.admin(
                sandbox.base_url,
                "seed",
                {"orders": size, "images_per_order": 1, "finish_after_seconds": finish},
            )["order_ids"]
            seeded_at = time.time()
            sandbox_cpu = c.proc_cpu_seconds(sandbox.pid)
            before = c.request_counts(c.admin(sandbox.base_url, "stats"))
            done = subprocess.run(
                [c.python(), __file__, "--child", str(poll)],
                input=json.dumps(ids),
                capture_output=True,
                text=True,
                env=dict(os.environ),
                timeout=finish + 40 * poll + 900,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"trigger child failed:\n{done.stderr[-3000:]}")
            data = json.loads(done.stdout.strip().splitlines()[-1])
            data["sandbox_cpu_seconds"] = c.proc_cpu_seconds(sandbox.pid) - sandbox_cpu
            data["seeded_to_child_start"] = time.time() - seeded_at - data["wall_seconds"]
            polls = c.diff_counts(c.request_counts(c.admin(sandbox.base_url, "stats")), before)
            data["order_polls"] = polls.get("GET /v3/orders/{order_id}", 0)
            raw[str(size)] = data
        cpu_share = data["cpu_seconds"] / data["wall_seconds"]
        peak = data["peak_rss_kib"] / 1024
        ok = data["statuses"] == {"success": size}
        print(f"  {size} triggers: {json.dumps(data)}", file=sys.stderr, flush=True)
        section = f"{size:,} triggers, one loop"
        enforce = size == 1000
        cpu_s, wall, polls = data["cpu_seconds"], data["wall_seconds"], data["order_polls"]
        growth = (data["peak_rss_kib"] - data["rss_before_kib"]) / 1024
        server_cpu = data["sandbox_cpu_seconds"]
        rows += [
            c.row(
                section,
                "client CPU",
                f"{cpu_s:.1f} CPU-s in {wall:.0f} s = {cpu_share:.1%} of a core",
                f"<= {CPU_TARGET:.0%}" if enforce else "",
                cpu_share <= CPU_TARGET if enforce else None,
                note=f"{polls:,} polls, {1000 * cpu_s / max(1, polls):.2f} CPU-ms per poll incl. start-up",
            ),
            c.row(
                section,
                "client peak RSS",
                f"{peak:.0f} MiB (+{growth:.0f} MiB over imports)",
                f"<= {RSS_TARGET_MIB} MiB" if enforce else "",
                peak <= RSS_TARGET_MIB if enforce else None,
            ),
            c.row(
                section,
                "sandbox CPU (other process)",
                f"{server_cpu:.1f} CPU-s = {server_cpu / wall:.1%} of a core",
                note="every event success" if ok else f"events {data['statuses']}",
            ),
        ]
        if not ok:
            rows[-1]["met"] = False
    return c.finish(args, rows, raw)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        result = child(json.loads(sys.stdin.read()), float(sys.argv[2]))
        print(json.dumps(result), flush=True)
        raise SystemExit(0)
    raise SystemExit(main())
