"""Waiting at scale: N AutoenhanceOrderTriggers in one asyncio loop, as a triggerer runs them.

The sandbox (own process) is seeded with N orders that finish 60 s later; a fresh child
process runs one asyncio task per trigger (like the triggerer's TriggerRunner) at the default
poll interval (30 s) until every trigger has fired its event. The triggers get the kwargs
``OrderProcessedSensor`` defers with (first poll one interval after the sensor's own check).
The child reports its own CPU seconds (user + system, all threads) and peak RSS; the parent
reads the sandbox's CPU seconds from /proc, so client and server cost are measured separately.
The connection comes from ``AIRFLOW_CONN_AUTOENHANCE_DEFAULT``.

``--webhooks``: the same waits ended by webhooks vs by polling, side by side in one run
(1,000 and 10,000 orders). Polling: the default 30 s interval.
Webhooks: the kwargs the sensor defers with ``webhook="default"`` (safety poll 300 s; one watcher
per triggerer and account reads the receiver's ``finished:<minute>`` entries every 15 s). The
webhook is modelled as that entry listing the orders from the moment they finish (an in-memory
``AssetStateStoreAccessor`` in the child); above 5,000 orders (the receiver's limit per minute
entry) the orders are seeded in batches of 5,000 that finish a minute apart. Measured: API
requests per order (sandbox counts), state-store reads, and the CPU seconds
(``time.process_time()``) of the process running the triggers; then, on its own, the CPU a read
costs the triggerer's supervisor (Execution API in process, SQLite), which the in-memory reads
leave out.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

import _common as c

c.isolated_airflow_home()

SIZES = (100, 1000, 10_000)
POLL_INTERVAL = 30.0  # the provider's default (waiting.DEFAULT_POLL_INTERVAL)
FINISH_AFTER = 60.0
CPU_TARGET = 0.05  # of one core, for 1,000 triggers
RSS_TARGET_MIB = 200


# 10,000 waits: about 16 CPU-s of polling for the client and 9 for the sandbox (aiohttp).
WEBHOOK_SIZES = (1000, 10_000)
#: Sizes above the receiver's limit per minute entry (``webhooks.notes.MAX_ORDERS_PER_MINUTE``) are
#: seeded in batches of that many orders that finish ``BATCH_SPACING`` seconds apart.
BATCH_SPACING = 60.0
WEBHOOK_CHECK_INTERVAL = 15.0  # the sensor's default webhook_check_interval
SAFETY_POLL = 300.0  # the sensor's default poke_interval with webhook


def webhook_child(batches: list[list[str]], mode: str, finish_at: float, poll: float, check: float) -> dict:
    """One loop of triggers, as the triggerer runs them, ended by polling or by the webhook's note.

    Batch ``k`` of orders finishes ``BATCH_SPACING * k`` seconds after ``finish_at``.
    """
    import asyncio

    import airflow.sdk.execution_time.context as context_module

    # What a triggerer has imported before it runs these triggers: not part of the waits' cost.
    import autoenhance_provider.compat  # noqa: F401
    from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger
    from autoenhance_provider.webhooks import order_finished_asset

    order_finished_asset()  # the first Asset() imports a good deal of the SDK (0.3 CPU-s), once

    reads = 0
    from datetime import datetime, timezone

    from autoenhance_provider.webhooks.notes import minute_key

    order_ids = [oid for batch in batches for oid in batch]
    # The receiver's minute entries, as it writes them ({order id: finished_at}), one per batch
    # (a batch finishes within one minute); each exists from the moment its orders finish.
    entries: dict[str, tuple[float, dict[str, str]]] = {}
    for k, batch in enumerate(batches):
        when = finish_at + BATCH_SPACING * k
        entries[minute_key(datetime.fromtimestamp(when, timezone.utc))] = (
            when,
            dict.fromkeys(batch, datetime.fromtimestamp(when, timezone.utc).isoformat()),
        )

    class Notes:
        """The receiver's minute entries, read through an in-memory accessor."""

        def __init__(self, *, name: str | None = None, uri: str | None = None) -> None:
            self.name = name

        async def aget(self, key: str, default: Any = None) -> Any:
            nonlocal reads
            reads += 1
            when, entry = entries.get(key, (math.inf, {}))
            return entry if time.time() >= when else default

    context_module.AssetStateStoreAccessor = Notes  # type: ignore[misc]

    async def one(trigger: AutoenhanceOrderTrigger) -> str:
        async for event in trigger.run():
            return str(event.payload["status"])
        return "no event"

    async def everything() -> list[str]:
        now = time.time()
        webhook = mode == "webhook"
        triggers = [
            AutoenhanceOrderTrigger(
                order_id=oid,
                poll_interval=poll,
                end_time=now + 30 * poll + 600,
                first_poll_at=now + poll,
                webhook="default" if webhook else None,
                webhook_check_interval=check,
            )
            for oid in order_ids
        ]
        return await asyncio.gather(*(one(t) for t in triggers))

    cpu_before = time.process_time()
    start = time.time()
    statuses_list = asyncio.run(everything())
    wall = time.time() - start
    statuses: dict[str, int] = {}
    for status in statuses_list:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "mode": mode,
        "triggers": len(order_ids),
        "wall_seconds": wall,
        "cpu_seconds": time.process_time() - cpu_before,
        "state_store_reads": reads,
        "statuses": statuses,
        "peak_rss_kib": c.proc_status_kib("VmHWM"),
        "last_event_after_finish": time.time() - (finish_at + BATCH_SPACING * (len(batches) - 1)),
    }


def state_read_child(reads: int, orders: int) -> dict[str, Any]:
    """CPU per state-store read on the serving side: the Execution API in process, on SQLite.

    What the triggerer's supervisor process does for each ``aget`` of a trigger (the trigger
    runner only sends a small frame and awaits the answer): the same in-process API client
    ``TriggerRunnerSupervisor`` builds, one keyed read of the account asset's state store.
    """
    from airflow.jobs.triggerer_job_runner import in_process_api_server
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.sdk.api.client import Client
    from airflow.state import AssetScope, get_state_backend
    from airflow.utils.session import create_session

    from autoenhance_provider.webhooks import order_finished_asset

    asset = order_finished_asset()
    with create_session() as session:
        model = AssetModel(name=asset.name, uri=asset.uri, group=asset.group, extra={})
        session.add(model)
        session.flush()
        session.add(AssetActive.for_asset(model))
        # A minute entry as the receiver writes it, with ``orders`` finished orders in it.
        entry = {f"order-{i:06d}-{'x' * 24}": "2026-01-01T00:00:00.000000+00:00" for i in range(orders)}
        scope = AssetScope(asset_id=model.id)
        get_state_backend().set(scope, "finished:full", json.dumps(entry), session=session)
    client = Client(base_url=None, token="", dry_run=True, transport=in_process_api_server().transport)
    client.base_url = "http://in-process.invalid./"  # type: ignore[assignment]
    for key in ("finished:full", "finished:empty"):  # warm up both answers
        client.asset_state_store.get(key, name=asset.name)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    for i in range(reads):  # as a watcher reads: this minute (often empty) and the last (full)
        client.asset_state_store.get("finished:empty" if i % 2 else "finished:full", name=asset.name)
    return {
        "reads": reads,
        "cpu_ms_per_read": 1000 * (time.process_time() - cpu_before) / reads,
        "wall_ms_per_read": 1000 * (time.perf_counter() - wall_before) / reads,
    }


def measure_state_reads(reads: int, orders: int) -> dict[str, Any]:
    """Run :func:`state_read_child` in a fresh SQLite Airflow home (``airflow db migrate`` first)."""
    home = tempfile.mkdtemp(prefix="autoenhance-bench-state-")
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    airflow = os.path.join(os.path.dirname(c.python()), "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    done = subprocess.run(
        [c.python(), __file__, "--state-read-child", str(reads), str(orders)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"state read child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def webhooks_main(args: Any) -> int:
    """Webhooks vs polling, side by side: same sandbox settings, same sizes, one run."""
    sizes, poll, safety, check, finish = (
        ((20,), 0.5, 5.0, 0.2, 3.0)
        if args.tiny
        else (WEBHOOK_SIZES, POLL_INTERVAL, SAFETY_POLL, WEBHOOK_CHECK_INTERVAL, FINISH_AFTER)
    )
    from autoenhance_provider.webhooks.notes import MAX_ORDERS_PER_MINUTE as batch_orders

    raise_fd_limit()
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for size in sizes:
        measured: dict[str, dict[str, Any]] = {}
        for mode, interval in (("polling", poll), ("webhook", safety)):
            with c.sandbox_process(processing_seconds=finish) as sandbox:
                c.point_connection_at(sandbox.base_url)
                start = time.time()
                batches = [
                    c.admin(
                        sandbox.base_url,
                        "seed",
                        {
                            "orders": min(batch_orders, size - first),
                            "images_per_order": 1,
                            "finish_after_seconds": finish + BATCH_SPACING * k - (time.time() - start),
                        },
                    )["order_ids"]
                    for k, first in enumerate(range(0, size, batch_orders))
                ]
                finish_at = time.time() + finish  # at or after the first batch's real finish
                before = c.request_counts(c.admin(sandbox.base_url, "stats"))
                sandbox_cpu = c.proc_cpu_seconds(sandbox.pid)
                done = subprocess.run(
                    [
                        c.python(),
                        __file__,
                        "--webhook-child",
                        mode,
                        str(finish_at),
                        str(interval),
                        str(check),
                    ],
                    input=json.dumps(batches),
                    capture_output=True,
                    text=True,
                    env=dict(os.environ),
                    timeout=finish + BATCH_SPACING * len(batches) + 40 * max(poll, check) + 900,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"{mode} child failed:\n{done.stderr[-3000:]}")
                data = json.loads(done.stdout.strip().splitlines()[-1])
                data["sandbox_cpu_seconds"] = c.proc_cpu_seconds(sandbox.pid) - sandbox_cpu
                polls = c.diff_counts(c.request_counts(c.admin(sandbox.base_url, "stats")), before)
                data["order_polls"] = polls.get("GET /v3/orders/{order_id}", 0)
            measured[mode] = data
            print(f"  {size} waits, {mode}: {json.dumps(data)}", file=sys.stderr, flush=True)
        raw[str(size)] = measured
        p, w = measured["polling"], measured["webhook"]
        section = f"{size:,} waits: webhook vs polling"
        ok = p["statuses"] == {"success": size} == w["statuses"]

        requests_w, requests_p = w["order_polls"] / size, p["order_polls"] / size
        cpu_w, cpu_p = w["cpu_seconds"], p["cpu_seconds"]
        share_w, share_p = cpu_w / w["wall_seconds"], cpu_p / p["wall_seconds"]
        late_w, late_p = w["last_event_after_finish"], p["last_event_after_finish"]
        rows += [
            c.row(
                section,
                "API requests per order",
                f"webhook {requests_w:.2f} vs polling {requests_p:.2f} "
                f"(x{requests_w / max(requests_p, 1e-9):.2f})",
                note=f"orders finish {finish:g} s after seeding"
                + (
                    f" (in batches of {batch_orders:,}, {BATCH_SPACING:g} s apart: "
                    "the receiver's limit per minute)"
                    if size > batch_orders
                    else ""
                )
                + f"; polling every {poll:g} s, "
                f"webhook safety poll {safety:g} s",
            ),
            c.row(
                section,
                "triggerer CPU",
                f"webhook {cpu_w:.1f} CPU-s ({share_w:.1%} of a core) vs polling {cpu_p:.1f} CPU-s "
                f"({share_p:.1%}) (x{cpu_w / max(cpu_p, 1e-9):.2f})",
                note=f"{w['state_store_reads']} state-store reads in all (one per minute entry and check, "
                f"every {check:g} s, shared by all waits; in memory here)",
            ),
            c.row(
                section,
                "last event after the orders finished",
                f"webhook {late_w:.0f} s vs polling {late_p:.0f} s",
                note=("every event success" if ok else f"events {p['statuses']} / {w['statuses']}")
                + f"; at most one check ({check:g} s) vs one poll interval ({poll:g} s), plus the poll burst",
            ),
        ]
        if not ok:
            rows[-1]["met"] = False
    entry_orders = min(max(sizes), batch_orders)
    reads = measure_state_reads(100 if args.tiny else 1000, entry_orders)
    raw["state_store_read"] = reads
    per_read = reads["cpu_ms_per_read"]
    share = 2 / check * per_read / 1000  # about two minute entries per check, whatever the waits
    rows.append(
        c.row(
            "webhook waits: the reads' other side",
            "CPU per state-store read in the triggerer's supervisor",
            f"{per_read:.1f} CPU-ms ({reads['wall_ms_per_read']:.1f} ms wall); 2 reads per {check:g} s "
            f"= {share:.2%} of a core per triggerer and account",
            note=f"Execution API in process on SQLite, entries of {entry_orders:,} and 0 orders; "
            "a read per waiting order instead would cost that per wait",
        )
    )
    return c.finish(args, rows, raw)


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
        "provider": sys.modules["autoenhance_provider"].__file__,
    }


def raise_fd_limit() -> None:
    """10,000 triggers hold 10,000 sockets (and the sandbox as many): lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


BASELINE_SIZE = 1000


def per_poll_ms(data: dict[str, Any]) -> float:
    return 1000 * data["cpu_seconds"] / max(1, data["order_polls"])


def run_triggers(size: int, poll: float, finish: float, provider_dir: Any = None) -> dict[str, Any]:
    """``size`` triggers in a fresh child process against a freshly seeded sandbox."""
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
            env=c.with_pythonpath(dict(os.environ), provider_dir),
            timeout=finish + 40 * poll + 900,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"trigger child failed:\n{done.stderr[-3000:]}")
        data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        if provider_dir is not None and not data["provider"].startswith(str(provider_dir)):
            raise RuntimeError(f"the child imported {data['provider']}, not the baseline")
        data["sandbox_cpu_seconds"] = c.proc_cpu_seconds(sandbox.pid) - sandbox_cpu
        data["seeded_to_child_start"] = time.time() - seeded_at - data["wall_seconds"]
        polls = c.diff_counts(c.request_counts(c.admin(sandbox.base_url, "stats")), before)
        data["order_polls"] = polls.get("GET /v3/orders/{order_id}", 0)
    print(f"  {size} triggers: {json.dumps(data)}", file=sys.stderr, flush=True)
    return data


def trigger_rows(size: int, data: dict[str, Any]) -> list[dict[str, Any]]:
    cpu_share = data["cpu_seconds"] / data["wall_seconds"]
    peak = data["peak_rss_kib"] / 1024
    ok = data["statuses"] == {"success": size}
    section = f"{size:,} triggers, one loop"
    enforce = size == 1000
    cpu_s, wall, polls = data["cpu_seconds"], data["wall_seconds"], data["order_polls"]
    growth = (data["peak_rss_kib"] - data["rss_before_kib"]) / 1024
    server_cpu = data["sandbox_cpu_seconds"]
    rows = [
        c.row(
            section,
            "client CPU",
            f"{cpu_s:.1f} CPU-s in {wall:.0f} s = {cpu_share:.1%} of a core",
            f"<= {CPU_TARGET:.0%}" if enforce else "",
            cpu_share <= CPU_TARGET if enforce else None,
            note=f"{polls:,} polls, {per_poll_ms(data):.2f} CPU-ms per poll incl. start-up",
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
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    webhooks = "--webhooks" in argv
    args = c.parse_args(__doc__.splitlines()[0], [a for a in argv if a != "--webhooks"])
    if webhooks:
        return webhooks_main(args)
    sizes, poll, finish = ((20,), 0.5, 3.0) if args.tiny else (SIZES, POLL_INTERVAL, FINISH_AFTER)
    raise_fd_limit()
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    compare = sizes[0] if args.tiny else BASELINE_SIZE
    with c.baseline_provider() as baseline:
        for size in sizes:
            data = run_triggers(size, poll, finish)
            raw[str(size)] = data
            rows += trigger_rows(size, data)
            if size == compare and baseline is not None:
                before = run_triggers(size, poll, finish, provider_dir=baseline)
                raw[f"{size}-baseline"] = before
                now_ms, before_ms = per_poll_ms(data), per_poll_ms(before)
                rows.append(
                    c.row(
                        f"{size:,} triggers, one loop",
                        f"client CPU per poll, vs the provider at {c.BASELINE_COMMIT[:7]} (same run)",
                        f"{now_ms:.2f} vs {before_ms:.2f} CPU-ms (x{now_ms / before_ms:.2f})",
                        "<= x1.00",
                        now_ms <= before_ms,
                        note="incl. start-up; the same sandbox set-up, one after the other",
                    )
                )
    return c.finish(args, rows, raw)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--state-read-child":
        print(json.dumps(state_read_child(int(sys.argv[2]), int(sys.argv[3]))), flush=True)
        raise SystemExit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--webhook-child":
        mode, finish_at, interval, check = sys.argv[2], *map(float, sys.argv[3:6])
        result = webhook_child(json.loads(sys.stdin.read()), mode, finish_at, interval, check)
        print(json.dumps(result), flush=True)
        raise SystemExit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        result = child(json.loads(sys.stdin.read()), float(sys.argv[2]))
        print(json.dumps(result), flush=True)
        raise SystemExit(0)
    raise SystemExit(main())
