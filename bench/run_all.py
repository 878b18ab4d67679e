"""``make bench``: run every benchmark (each in its own process), print one table, write RESULTS.md.

    python bench/run_all.py            # everything, about 15 minutes; writes bench/RESULTS.md
    python bench/run_all.py --tiny     # seconds; nothing written (what the smoke test runs)
    python bench/run_all.py --only upload,memory

Every figure is measured side by side in one run against the sandbox on 127.0.0.1 (a separate
process). The benchmarks are not tests: a slow machine gives slow numbers, never a failure;
the exit status is non-zero only when a benchmark could not run at all.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

BENCHES = {
    "upload": "bench_upload.py",
    "memory": "bench_memory.py",
    "triggers": "bench_triggers.py",
    "webhooks": "bench_triggers.py --webhooks",
    "requests": "bench_requests.py",
    "limits": "bench_limits.py",
    "import": "bench_import.py",
    "ui": "bench_ui.py",
}
HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as handle:
        cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    mem = ""
    with contextlib.suppress(OSError):
        mem = f", {c.proc_meminfo_gib():.0f} GiB RAM"
    from importlib.metadata import version

    return (
        f"{os.cpu_count()} CPU ({cpu}){mem}, {platform.system()}, "
        f"Python {platform.python_version()}, Airflow {version('apache-airflow')}, "
        f"aiohttp {version('aiohttp')}, requests {version('requests')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated: " + ",".join(BENCHES))
    parser.add_argument("--results", type=Path, default=None, help="where to write the Markdown (full runs)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmarks: {sorted(unknown)}")
    env = {
        **os.environ,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
    }
    env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="autoenhance-bench-airflow-"))
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autoenhance-bench-json-") as tmp:
        for name in chosen:
            out = Path(tmp) / f"{name}.json"
            script, *options = BENCHES[name].split()
            command = [sys.executable, str(HERE / script), *options, "--json", str(out)]
            if args.tiny:
                command.append("--tiny")
            print(f"== {name}", flush=True)
            t0 = time.monotonic()
            done = subprocess.run(command, env=env, check=False)
            print(f"== {name}: {time.monotonic() - t0:.0f} s", flush=True)
            if done.returncode != 0 or not out.exists():
                failed.append(name)
                rows.append(c.row(name, "benchmark did not run", f"exit status {done.returncode}", met=False))
                continue
            rows += json.loads(out.read_text())["rows"]
    table = c.render_rows(rows)
    header = (
        f"Measured {dt.date.today().isoformat()} on {machine()}; "
        f"`make bench` took {(time.monotonic() - started) / 60:.0f} min."
    )
    print()
    print(header)
    print(table)
    if not args.tiny and not failed and set(chosen) == set(BENCHES):
        target = args.results or HERE / "RESULTS.md"
        target.write_text(f"# Benchmark results\n\n{header}\n\n{table}\n\n{NOTES}")
        print(f"\nWritten to {target}")
    return 1 if failed else 0


NOTES = """\
How to read this (see the docstring of each script in `bench/` for the method):

- **Upload**: (a) is `UploadImagesOperator.execute` (file checks, order pre-check, create_image +
  streamed PUT with 8 in flight on reused connections, `wait_for_upload` confirmation); (b) the
  official examples' client (create -> PUT one at a time, `requests.post`/`requests.put`, a new
  connection each); (c) a hand-written `requests.Session` + `ThreadPoolExecutor(8)`. 15
  (loopback) and 7 (+25 ms) interleaved repetitions: times are medians, ratios the median of the
  ratios within each repetition (its runs follow each other within seconds, so a drift of the
  machine during the benchmark cancels out; on loopback single ratios range from about 0.8 to
  1.3). On plain loopback the sandbox and the client share 2 cores and are CPU-bound, so no
  client can be much faster than sequential; the +25 ms rows add that latency to every API and
  storage request in the sandbox (its `slow` fault at rate 1), as a network would.
- **Memory**: peak RSS (`VmHWM`, reset just before the transfer) minus RSS at that moment, in a
  fresh process per measurement; the 1 GiB source is a sparse file, the download is written to disk.
- **Triggers**: one asyncio task per trigger in one loop (like the triggerer), created with the
  kwargs the sensor defers with, default 30 s poll interval, orders finishing 60 s after seeding.
  CPU-seconds and peak RSS of that process; the sandbox's CPU is measured separately.
- **Webhooks vs polling**: the same loop of triggers, in one run: polling every 30 s, or the
  kwargs `OrderProcessedSensor(webhook="default", deferrable=True)` defers with (safety poll
  300 s; one watcher per triggerer reads the receiver's `finished:<minute>` entries every 15 s).
  The webhook is that entry listing the orders from the moment they finish (in memory here). API
  requests per order from the sandbox's counts; CPU is `time.process_time()` of the process
  running the triggers. The reads' other side (the triggerer's supervisor answering each one
  through the Execution API) is measured on its own, on SQLite, with an entry as full as the run's.
- **Request budget**: counts by the sandbox (`GET /_sandbox/stats`); order reads are attributed
  to their caller by wrapping the hooks' `get_order`.
- **Rate limit**: the triggers' loop again (10,000 waits, 30 s polls, orders finishing 60 s after
  seeding) against a sandbox refusing above 300 requests/s per IP (a bucket of one second), with
  the connection's default `max_requests_per_second` and, for contrast, without it. 429s and the
  peak requests in one second are the sandbox's counts; CPU is the triggers' process over the run.
- **Import/parse**: fresh interpreters; parse = `DagBag.process_file` of one example file.
- **UI tab**: Airflow's API server app (uvicorn, its own process) serving a real run's tab with 50
  images; the client gets the page and its 100 thumbnails six at a time, as a browser does, each
  request authenticated and authorised. Cached = served from the tab's photo cache.
"""


if __name__ == "__main__":
    raise SystemExit(main())
