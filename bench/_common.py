"""Shared helpers of the benchmark scripts (stdlib + requests only; Airflow is imported late).

Every benchmark script is runnable on its own (``python bench/bench_upload.py [--tiny]``), prints
its own rows, and with ``--json FILE`` writes them for ``bench/run_all.py``, which renders the
combined table. All traffic goes to the sandbox on 127.0.0.1/localhost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_KEY = "bench-sandbox-key"
#: The commit this round of work started from. Where a regression is the question (import cost,
#: the triggerer's CPU per poll), its provider is measured side by side in the same run: figures
#: from another day or machine are not comparable (this one measured 2.7x slower than the one
#: that wrote the baseline's RESULTS.md).
BASELINE_COMMIT = "8ab7327938def93d6007389a5c02097341a08760"


def isolated_airflow_home() -> None:
    """Point Airflow at a throw-away home before it is first imported (no ~/airflow writes)."""
    if "AIRFLOW_HOME" not in os.environ:
        os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="autoenhance-bench-airflow-")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
    os.environ.setdefault(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{os.environ['AIRFLOW_HOME']}/airflow.db"
    )


def point_connection_at(base_url: str, api_key: str = BENCH_KEY, **extra: Any) -> None:
    """``AIRFLOW_CONN_AUTOENHANCE_DEFAULT`` in JSON form, for the hooks, operators and triggers."""
    conn = {"conn_type": "autoenhance", "host": base_url, "password": api_key, "extra": extra}
    os.environ["AIRFLOW_CONN_AUTOENHANCE_DEFAULT"] = json.dumps(conn)


@contextmanager
def sandbox_process(**options: Any) -> Iterator[Any]:
    """The sandbox in its own process (it must not share our GIL), stopped on exit."""
    from autoenhance_sandbox.testing import start_sandbox_process

    process = start_sandbox_process(api_key=BENCH_KEY, **options)
    try:
        yield process
    finally:
        process.stop()


def admin(base_url: str, path: str, body: dict[str, Any] | None = None, timeout: float = 600) -> Any:
    """Call a ``/_sandbox/*`` admin route (never counted, never faulted)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    try:
        if body is None:
            response = session.get(f"{base_url}/_sandbox/{path}", timeout=timeout)
        else:
            response = session.post(f"{base_url}/_sandbox/{path}", json=body, timeout=timeout)
        response.raise_for_status()
        return response.json()
    finally:
        session.close()


def request_counts(stats: dict[str, Any]) -> dict[str, int]:
    """``{"GET /v3/orders/{order_id}": 12, ...}``: requests per endpoint, all statuses summed."""
    return {key: sum(by_status.values()) for key, by_status in stats.get("requests", {}).items()}


def diff_counts(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def proc_status_kib(field: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` field in KiB, e.g. ``VmHWM`` (peak RSS) or ``VmRSS``."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def proc_meminfo_gib() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    raise OSError("no MemTotal in /proc/meminfo")


def proc_cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process (from ``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class FakeTI:
    """Just enough of a TaskInstance for ``execute``: XCom pushes are recorded, nothing else."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}
        self.try_number = 1
        self.map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def fake_context() -> dict[str, Any]:
    from collections import defaultdict
    from types import SimpleNamespace

    return {"ti": FakeTI(), "outlet_events": defaultdict(SimpleNamespace)}


def jpeg_of_size(size: int, seed: int = 0) -> bytes:
    """A valid JPEG (decodable header) padded after its end marker to exactly ``size`` bytes."""
    import io
    import random

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (90 + seed % 50, 110, 130)).save(buffer, "JPEG", quality=80)
    head = buffer.getvalue()
    if size < len(head):
        raise ValueError(f"size must be at least {len(head)} bytes")
    return head + random.Random(seed).randbytes(size - len(head))  # incompressible padding


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def row(
    section: str, metric: str, value: str, target: str = "", met: bool | None = None, note: str = ""
) -> dict[str, Any]:
    return {"section": section, "metric": metric, "value": value, "target": target, "met": met, "note": note}


def render_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (also readable as plain text)."""
    lines = ["| benchmark | metric | measured | target | met |", "|---|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**NO**", None: ""}[r["met"]]
        metric = r["metric"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(f"| {r['section']} | {metric} | {r['value']} | {r['target']} | {met} |")
    return "\n".join(lines)


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="a few seconds on a tiny size (smoke test)")
    parser.add_argument("--json", type=Path, help="also write the rows (and raw data) to this file")
    return parser.parse_args(argv)


def finish(args: argparse.Namespace, rows: list[dict[str, Any]], raw: dict[str, Any] | None = None) -> int:
    print(render_rows(rows), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "raw": raw or {}}, indent=2, default=str))
    return 0


@contextmanager
def baseline_provider() -> Iterator[Path | None]:
    """A directory holding ``autoenhance_provider`` as of ``BASELINE_COMMIT`` (for ``PYTHONPATH``),
    or None when this clone does not have that commit (e.g. a shallow clone)."""
    import shutil
    import subprocess
    import tarfile

    with tempfile.TemporaryDirectory(prefix="autoenhance-bench-baseline-") as tmp:
        archive = Path(tmp) / "baseline.tar"
        done = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "archive",
                "-o",
                str(archive),
                BASELINE_COMMIT,
                "plugins/autoenhance_provider",
            ],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0 or shutil.which("git") is None:
            yield None
            return
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / "plugins"


def with_pythonpath(env: dict[str, str], first: Path | None) -> dict[str, str]:
    """``env`` with ``first`` ahead of everything on the import path (None: unchanged)."""
    if first is None:
        return env
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(first), env.get("PYTHONPATH", "")]))}


def python() -> str:
    return sys.executable
