"""Fault-injection soak: the pipeline DAG many times with 20 % faults on every endpoint.

Each run uses its own fault seed (reproducible) and injects, on every API, storage and asset
endpoint, 429 with Retry-After, 500/502/503, dropped connections and slow responses, either
before the request is handled or after (the work is done, the response lost). After each run:
the run succeeded, exactly one order, no duplicate image names, every image bought exactly once,
every file written once, and no API key ever reached the storage or asset host.

Then the upload task is killed mid-upload on its first try (some images uploaded, one PUT cut off
half-way, the rest never started) and retried by Airflow: still nothing duplicated or missing.

Bounded in count and time: as many runs as fit in SOAK_SECONDS (at least MIN_RUNS, at most
MAX_RUNS); no run starts after STOP_SECONDS (too few runs by then fail the test). Each test has a
pytest-timeout (``SOAK_TIMEOUT`` / ``KILL_TIMEOUT``): a run that hangs fails its test with the
stacks instead of stalling CI (a regression once hung the soak for more than 16 minutes).
"""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from soak_helpers import load_pipeline

from autoenhance_provider.files.manifest import MANIFEST_NAME
from autoenhance_sandbox.testing import SandboxServer

pytestmark = [pytest.mark.dags, pytest.mark.integration]

IMAGES = 10
FAULT_RATE = 0.2
SOAK_SECONDS = 200.0
MIN_RUNS, MAX_RUNS = 10, 30
STOP_SECONDS = 600.0  # no new run after this, whatever MIN_RUNS says
SOAK_TIMEOUT = 900  # s, per test: STOP_SECONDS plus one slow run
KILL_TIMEOUT = 300  # s, per test: one pipeline run with a crashed and retried upload
KILL_RUNS = ((0, "mid-put"), (2, "mid-put"), (4, "after-create"))


def listing(folder):
    """The files a download left in ``folder``, without the manifest that records them."""
    return [p for p in folder.iterdir() if p.name != MANIFEST_NAME]


def make_photos(folder: Path, count: int = IMAGES) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (96, 64), (40 + 30 * i, 120, 160)).save(buffer, "JPEG", quality=85)
        name = f"room-{i:02d}.jpg"
        (folder / name).write_bytes(buffer.getvalue())
        names.append(name)
    return names


def states(run) -> dict[str, str]:
    return {ti.task_id: f"{ti.state} (try {ti.try_number})" for ti in run.get_task_instances()}


def check_run(sandbox: SandboxServer, run, out: Path, names: list[str]) -> dict[str, Any]:
    """Everything a run must leave behind, whatever faults it met."""
    assert str(run.state) == "success", states(run)
    stats = sandbox.stats()
    assert stats["orders_created"] == 1, stats
    assert stats["live_orders"] == 1, stats
    assert stats["duplicate_image_names"] == {}, stats["duplicate_image_names"]
    with sandbox.state.lock:
        (order,) = [o for o in sandbox.state.orders.values() if not o.deleted]
        order_id = order.order_id
        live = sorted(
            sandbox.state.images[i].image_name for i in order.image_ids if not sandbox.state.images[i].deleted
        )
    assert live == sorted(names), live  # nothing missing, nothing twice
    purchases = stats["purchases_per_image"]
    assert len(purchases) == len(names), purchases
    assert set(purchases.values()) == {1}, purchases
    assert stats["purchases"] == len(names)
    # The pipeline writes each order into its own folder: <output_folder>/<order id>.
    assert [p.name for p in out.iterdir()] == [order_id]
    assert sorted(p.name for p in listing(out / order_id)) == sorted(names)
    assert not [p for p in listing(out / order_id) if p.name.startswith(".")]  # no partial downloads left
    assert stats["leaked_api_key"] == {"storage": 0, "assets": 0}
    return stats


def add_faults(total: dict[str, int], stats: dict[str, Any]) -> None:
    for kind, count in stats["faults_injected"].items():
        total[kind] = total.get(kind, 0) + count


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_pipeline_soak_with_faults_on_every_endpoint(airflow_db, soak_sandbox, tmp_path):
    names = make_photos(tmp_path / "photos")
    dag = load_pipeline()
    faults: dict[str, int] = {}
    requests_seen = 0
    started = time.monotonic()
    runs = 0
    while runs < MAX_RUNS and (
        (runs < MIN_RUNS and time.monotonic() - started < STOP_SECONDS)
        or time.monotonic() - started < SOAK_SECONDS
    ):
        soak_sandbox.reset()
        soak_sandbox.set_faults(FAULT_RATE, seed=1000 + runs, phase="both", slow_seconds=0.2)
        out = tmp_path / f"enhanced-{runs}"
        run = dag.test(run_conf={"input_folder": str(tmp_path / "photos"), "output_folder": str(out)})
        soak_sandbox.clear_faults()
        stats = check_run(soak_sandbox, run, out, names)
        add_faults(faults, stats)
        requests_seen += sum(sum(by_status.values()) for by_status in stats["requests"].values())
        runs += 1
    elapsed = time.monotonic() - started
    print(
        f"\nsoak: {runs} runs in {elapsed:.0f} s, {requests_seen} requests, "
        f"{sum(faults.values())} faults injected {faults}"
    )
    assert runs >= MIN_RUNS, f"only {runs} runs in {elapsed:.0f} s"
    assert sum(faults.values()) >= runs * 5  # the faults really happened
    assert all(faults.get(kind, 0) > 0 for kind in ("429", "500", "502", "503", "drop", "slow")), faults


class CrashOnFirstTry:
    """Make the upload task die part-way through its first try, like a killed worker process.

    ``mid-put``: after ``after`` completed uploads, the next PUT is cut off half-way through its
    body (the storage sees a broken request). ``after-create``: the ``after + 1``-th image gets
    registered and the process "dies" before its PUT. From then on every call of that try
    fails at once, as nothing runs in a dead process; uploads already in flight finish, as they
    would have reached the server. The try ends with an exception, Airflow retries the task.
    """

    def __init__(self, after: int, how: str) -> None:
        self.after, self.how = after, how
        self.lock = threading.Lock()
        self.armed = False
        self.dead = False
        self.completed = 0
        self.creates = 0
        self.tries = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from autoenhance_provider import uploads
        from autoenhance_provider.operators.upload import UploadImagesOperator

        crash = self
        real_execute = UploadImagesOperator.execute
        real_register = uploads.register_image
        real_upload = uploads.upload_file

        def execute(operator, context):
            crash.tries += 1
            crash.armed = crash.tries == 1
            try:
                return real_execute(operator, context)
            finally:
                crash.armed = False

        # Every image registration of an upload goes through ``uploads.register_image``.
        def register_image(hook, image_name, *args, **kwargs):
            with crash.lock:
                if crash.armed and crash.dead:
                    raise SimulatedCrash("the worker process is gone")
                crash.creates += crash.armed
                die_after_create = (
                    crash.armed and crash.how == "after-create" and crash.creates == crash.after + 1
                )
            created = real_register(hook, image_name, *args, **kwargs)
            if die_after_create:
                with crash.lock:
                    crash.dead = True
                raise SimulatedCrash(f"killed after registering {image_name}")
            return created

        def upload_file(hook, upload_url, source, content_type, *, size=None):
            with crash.lock:
                if crash.armed and crash.dead:
                    raise SimulatedCrash("the worker process is gone")
                cut = crash.armed and crash.how == "mid-put" and crash.completed >= crash.after
                if cut:
                    crash.dead = True
            if cut:
                cut_put(upload_url, source, content_type, size)
                raise SimulatedCrash("killed in the middle of a PUT")
            result = real_upload(hook, upload_url, source, content_type, size=size)
            with crash.lock:
                crash.completed += 1
            return result

        monkeypatch.setattr(UploadImagesOperator, "execute", execute)
        monkeypatch.setattr(uploads, "register_image", register_image)
        monkeypatch.setattr(uploads, "upload_file", upload_file)


class SimulatedCrash(RuntimeError):
    pass


def cut_put(url: str, source: Any, content_type: str, size: int | None) -> None:
    """Send the headers and half the body of a PUT, then drop the connection."""
    data = source.read()
    size = size or len(data)

    def half_then_die():
        yield data[: len(data) // 2]
        raise SimulatedCrash("connection dropped mid-body")

    session = requests.Session()
    session.trust_env = False
    try:
        session.put(
            url, data=half_then_die(), headers={"Content-Type": content_type, "Content-Length": str(size)}
        )
    except (SimulatedCrash, requests.RequestException):
        pass
    finally:
        session.close()


@pytest.mark.timeout(KILL_TIMEOUT)
@pytest.mark.parametrize(("after", "how"), KILL_RUNS)
def test_upload_killed_mid_way_and_retried_by_airflow(
    airflow_db, soak_sandbox, tmp_path, monkeypatch, after, how
):
    names = make_photos(tmp_path / "photos")
    crash = CrashOnFirstTry(after, how)
    crash.install(monkeypatch)
    dag = load_pipeline()
    for task in dag.tasks:
        task.retries = 1
        task.retry_delay = timedelta(0)
    soak_sandbox.set_faults(FAULT_RATE, seed=77 + after, phase="both", slow_seconds=0.2)
    out = tmp_path / "enhanced"
    run = dag.test(run_conf={"input_folder": str(tmp_path / "photos"), "output_folder": str(out)})
    soak_sandbox.clear_faults()

    assert crash.tries == 2, states(run)  # the first try died, Airflow retried it
    assert crash.dead
    stats = check_run(soak_sandbox, run, out, names)
    upload_ti = next(ti for ti in run.get_task_instances() if ti.task_id == "upload_photos")
    assert upload_ti.try_number == 2
    # The retry found the half-done image (registered, no bytes) and removed it before uploading
    # that file again, so it is neither missing nor there twice (check_run).
    assert sum(stats["requests"].get("DELETE /v3/images/{image_id}", {}).values()) >= 1, stats["requests"]
    assert stats["images_created"] > len(names)
