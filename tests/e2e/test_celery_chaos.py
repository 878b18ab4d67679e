"""Chaos on the multi-process Celery stack: the worker SIGKILLed mid-upload and mid-download, the
triggerer killed while the sensor is deferred, the sandbox stopped for a few seconds.

The sandbox hands out upload and asset URLs on a throttling proxy in this process
(``--asset-base-url``), so every file moves slowly enough for a kill to land in the middle of it,
and the proxy records each transfer (bytes moved, complete or not, the image it belongs to). A
kill is only made once the proxy shows a transfer half done (and, for the download, a partial
``.autoenhance-…part`` file in the destination); the test asserts afterwards that the transfer
was indeed cut. Then: the run succeeds; one order; each photo registered once and each image
bought once; no image downloaded completely twice; every file whole (it opens and equals the
bytes the asset host served); no temporary file left; the API key in no log.

A small upload body may already sit in the kernel's socket buffers when its client is killed: the
proxy then still receives it whole and the sandbox stores it, an ambiguous outcome (the client
never saw the answer) that the retry must resolve without uploading the photo again.

The killed worker's whole process tree goes (Airflow 3 runs each task in its own process group
under the Celery pool), as an OOM kill or a lost node would take it; the scheduler notices the
missing heartbeats (``task_instance_heartbeat_timeout``, shortened here) and retries the task.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import signal
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image
from run_celery_stack import FAKE_API_KEY, SAMPLE_PHOTOS, CeleryStack, ensure_prerequisites, log

pytestmark = pytest.mark.e2e

DAG_ID = "autoenhance_chaos"
PHOTOS = sorted(p.name for p in SAMPLE_PHOTOS.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
#: Bytes per second through the proxy, each way: a sample photo (~9 KB) takes ~3 s.
RATE = 3000
CHUNK = 500
RUN_TIMEOUT = 420

CHAOS_DAG = textwrap.dedent(
    '''
    """The pipeline, one file at a time (so a kill lands between landed files and one in flight)."""
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG, Param

    from autoenhance_provider.operators.download import DownloadImagesOperator
    from autoenhance_provider.operators.order import CreateOrderOperator
    from autoenhance_provider.operators.upload import UploadImagesOperator
    from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

    with DAG(
        dag_id="autoenhance_chaos",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        default_args={"retries": 4, "retry_delay": timedelta(seconds=1)},
        params={"input_folder": Param("", type="string"), "output_folder": Param("", type="string")},
    ):
        order = CreateOrderOperator(task_id="create_order", name="Chaos listing {{ run_id }}")
        upload = UploadImagesOperator(
            task_id="upload_photos",
            order_id=order.output,
            source="{{ params.input_folder }}",
            max_concurrency=1,
        )
        wait = OrderProcessedSensor(
            task_id="wait_for_enhancement",
            order_id=order.output,
            deferrable=True,
            poke_interval=2,
            timeout=600,
        )
        download = DownloadImagesOperator(
            task_id="download_enhanced",
            order_id=order.output,
            destination="{{ params.output_folder }}/{{ ti.xcom_pull(task_ids='create_order') }}",
            preview=False,
            max_concurrency=1,
        )
        order >> upload >> wait >> download
    '''
)


# ------------------------------------------------------------------------------ throttling proxy
class Transfer:
    """One body moving through the proxy."""

    def __init__(self, kind: str, path: str, total: int | None) -> None:
        self.kind = kind  # "upload" or "download"
        self.path = path
        self.total = total
        self.moved = 0
        self.done = False
        self.digest = hashlib.sha256()
        self.image_id = _image_of(path) if kind == "download" else None

    def describe(self) -> str:
        what = self.image_id or self.path.split("?")[0].rsplit("/", 1)[-1]
        return f"{self.kind} of {what}: {self.moved} of {self.total} bytes"


def _image_of(path: str) -> str | None:
    """The image id inside a sandbox asset token (``/_assets/<base64 json>.<signature>``)."""
    raw = path.split("?")[0].rsplit("/", 1)[-1].split(".")[0]
    with contextlib.suppress(ValueError):
        return str(json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["i"])
    return None


class ThrottlingProxy:
    """The storage and asset host of the sandbox, ``RATE`` bytes/s each way, every transfer recorded."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.transfers: list[Transfer] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_PUT(self) -> None:
                total = int(self.headers.get("Content-Length") or 0)
                transfer = proxy.start("upload", self.path, total)
                body = bytearray()
                while len(body) < total:
                    chunk = self.rfile.read(min(CHUNK, total - len(body)))
                    if not chunk:
                        return  # the client went away mid-body: nothing reaches the sandbox
                    body += chunk
                    transfer.moved = len(body)
                    time.sleep(len(chunk) / RATE)
                status, headers, answer = proxy.forward("PUT", self.path, self.headers, bytes(body))
                transfer.done = 200 <= status < 300
                self.reply(status, headers, answer)

            def do_GET(self) -> None:
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                    connection.request("GET", self.path, headers={"Host": self.headers.get("Host", "")})
                    response = connection.getresponse()
                except OSError:
                    self.reply(
                        502, {"Content-Type": "application/xml"}, b"<Error><Code>BadGateway</Code></Error>"
                    )
                    return
                length = response.getheader("Content-Length")
                transfer = proxy.start("download", self.path, int(length) if length else None)
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "date", "server"):
                        self.send_header(name, value)
                self.end_headers()
                try:
                    while chunk := response.read(CHUNK):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        transfer.digest.update(chunk)
                        transfer.moved += len(chunk)
                        time.sleep(len(chunk) / RATE)
                    transfer.done = response.status == 200 and transfer.moved == transfer.total
                except OSError:
                    pass  # the client went away mid-body
                finally:
                    connection.close()

            def reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self, kind: str, path: str, total: int | None) -> Transfer:
        transfer = Transfer(kind, path, total)
        with self.lock:
            self.transfers.append(transfer)
        return transfer

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
            sent = {k: v for k, v in headers.items() if k.lower() not in ("connection", "content-length")}
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            answer = response.read()
            kept = {
                k: v
                for k, v in response.getheaders()
                if k.lower() in ("content-type", "etag", "x-amz-request-id", "retry-after")
            }
            connection.close()
            return response.status, kept, answer
        except OSError:  # the sandbox is down: what S3 answers when it is unwell
            return 502, {"Content-Type": "application/xml"}, b"<Error><Code>BadGateway</Code></Error>"

    def of(self, kind: str) -> list[Transfer]:
        with self.lock:
            return [t for t in self.transfers if t.kind == kind]

    def half_done(self, kind: str) -> Transfer | None:
        """A transfer under way, at least one other of its kind finished: the moment to kill."""
        transfers = self.of(kind)
        if not any(t.done for t in transfers):
            return None
        return next((t for t in transfers if not t.done and t.total and 0 < t.moved <= t.total // 2), None)

    def __enter__(self) -> ThrottlingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------ the stack
class ChaosStack(CeleryStack):
    """The Celery stack with the chaos DAG, fast failure detection, and a restartable sandbox
    (state on disk) whose storage/asset URLs point at the throttling proxy."""

    proxy_port = 0

    def airflow_env(self) -> dict[str, str]:
        env = super().airflow_env()
        env.update(
            AIRFLOW__CORE__DAGS_FOLDER=str(self.root / "dags"),
            # A killed task stops heartbeating: fail its try after 20 s instead of 5 minutes.
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2",
            # A killed triggerer's triggers go to the next one after 10 s instead of 30.
            AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD="10",
        )
        return env

    def _sandbox_options(self) -> list[str]:
        """State on disk (it survives a restart), assets through the proxy; no webhooks."""
        return [
            "--data-dir",
            str(self.root / "sandbox-data"),
            "--asset-base-url",
            f"http://localhost:{self.proxy_port}",
        ]

    # -- chaos -------------------------------------------------------------------------------------
    def kill_tree(self, name: str) -> list[int]:
        """SIGKILL a component and every process below it (task process groups included)."""
        process = self.processes[name]
        root = psutil.Process(process.pid)
        victims = [root, *root.children(recursive=True)]
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.send_signal(signal.SIGKILL)
        psutil.wait_procs(victims, timeout=10)
        process.wait(timeout=10)
        log(f"SIGKILLed {name}: {len(victims)} process(es)")
        return [v.pid for v in victims]

    def restart_worker(self) -> None:
        self._spawn_worker(self.airflow_env())

    def restart_triggerer(self) -> None:
        self._spawn("triggerer", self._airflow("triggerer"), self.airflow_env())

    def stop_sandbox(self) -> None:
        process = self.processes["sandbox"]
        process.send_signal(signal.SIGTERM)  # its state is saved on the way down
        process.wait(timeout=20)
        log("stopped the sandbox")


@pytest.fixture(scope="module")
def chaos() -> Iterator[tuple[ChaosStack, ThrottlingProxy]]:
    ensure_prerequisites()
    stack = ChaosStack(processing_seconds=20)
    (stack.root / "dags").mkdir()
    (stack.root / "dags" / "autoenhance_chaos.py").write_text(CHAOS_DAG)
    with ThrottlingProxy(stack.ports["sandbox"]) as proxy:
        stack.proxy_port = proxy.port
        with stack.running():
            yield stack, proxy


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".autoenhance-*.part")] if folder.exists() else []


def test_chaos_run_succeeds_without_duplicates_or_litter(chaos: tuple[ChaosStack, ThrottlingProxy]) -> None:
    stack, proxy = chaos
    output = Path(tempfile.mkdtemp(prefix="chaos-out-", dir=stack.root))
    stack.unpause_when_parsed(DAG_ID, timeout=180)
    run_id = stack.trigger(DAG_ID, {"input_folder": str(SAMPLE_PHOTOS), "output_folder": str(output)})
    started = time.monotonic()

    def ti_state(task_id: str) -> str:
        ti = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}").json()
        return str(ti.get("state"))

    # 1. The worker's process tree, SIGKILLed in the middle of an upload.
    cut_upload = stack.wait_for(
        "an upload half done", lambda: proxy.half_done("upload"), timeout=180, interval=0.05
    )
    stack.kill_tree("celery-worker")
    upload_at_kill = (cut_upload.moved, cut_upload.total, cut_upload.done, cut_upload.describe())
    stack.restart_worker()
    log(f"killed mid-upload: {upload_at_kill[3]}")

    # 2. The triggerer killed while the sensor is deferred; the sandbox down for a few seconds.
    stack.wait_for("the sensor to defer", lambda: ti_state("wait_for_enhancement") == "deferred", timeout=240)
    stack.kill_tree("triggerer")
    stack.restart_triggerer()
    stack.stop_sandbox()
    time.sleep(4)
    stack._start_sandbox()

    # 3. The worker's process tree, SIGKILLed in the middle of a download: the asset host has sent
    #    part of the body and the file's temporary .part is open in the destination. (The client
    #    reads the body in blocks of 1 MiB, so a small file's .part stays empty until it is whole.)
    def mid_download() -> tuple[Transfer, list[tuple[str, int]]] | None:
        transfer = proxy.half_done("download")
        parts = [(p.name, p.stat().st_size) for p in _temp_files(output)]
        return (transfer, parts) if transfer and parts else None

    cut_download, parts_at_kill = stack.wait_for(
        "a download half done", mid_download, timeout=300, interval=0.05
    )
    landed_before_kill = sorted(t.image_id for t in proxy.of("download") if t.done)
    stack.kill_tree("celery-worker")
    download_at_kill = (cut_download.moved, cut_download.total, cut_download.done, cut_download.describe())
    left_by_kill = [p.name for p in _temp_files(output)]
    stack.restart_worker()
    log(f"killed mid-download: {download_at_kill[3]}; temp files {parts_at_kill}")

    run = stack.finished_run(DAG_ID, run_id, timeout=RUN_TIMEOUT, interval=1)
    elapsed = time.monotonic() - started
    instances = stack.task_instances(DAG_ID, run_id)
    summary = {k: (v["state"], v["try_number"]) for k, v in instances.items()}
    assert run["state"] == "success", (summary, stack.diagnostics())

    # The kills landed mid-file, and the killed tries were retried.
    for moved, total, done, described in (upload_at_kill, download_at_kill):
        assert not done, described
        assert 0 < moved < (total or 0), described
    assert not cut_download.done, cut_download.describe()  # the body never reached its end
    assert parts_at_kill, "no temporary file at the kill"
    assert left_by_kill, "the kill left no temporary file (so the sweep was not exercised)"
    assert instances["upload_photos"]["try_number"] >= 2, summary
    assert instances["download_enhanced"]["try_number"] >= 2, summary
    assert landed_before_kill, "no file had landed before the download kill"

    # One order; each photo registered once in it, each image bought once.
    stats = stack.sandbox_get("/_sandbox/stats").json()
    assert stats["orders_created"] == 1, stats
    assert stats["duplicate_image_names"] == {}, stats
    # At most the photo in flight at the kill registered a second time (its half-done image removed).
    assert stats["images_created"] <= len(PHOTOS) + 1, stats
    (folder,) = [p for p in output.iterdir() if p.is_dir()]  # the order's own folder
    images = {f.name for f in folder.iterdir() if not f.name.startswith(".")}
    assert sorted(images) == PHOTOS, images
    purchases = stats["purchases_per_image"]
    assert len(purchases) == len(PHOTOS), purchases
    assert set(purchases.values()) == {1}, purchases

    # No image downloaded completely twice; only the file in flight at the kill was fetched again.
    complete = [t.image_id for t in proxy.of("download") if t.done]
    assert sorted(complete) == sorted(set(complete)), complete
    assert len(complete) == len(PHOTOS), complete
    started_twice = {i for i in complete if [t.image_id for t in proxy.of("download")].count(i) > 1}
    assert started_twice <= {cut_download.image_id}, (started_twice, cut_download.describe())
    started = [t.image_id for t in proxy.of("download")]
    for image_id in landed_before_kill:  # landed before the kill: never fetched again
        assert started.count(image_id) == 1, (image_id, started)
    # Every upload completed once per photo (the cut one never reached the sandbox).
    assert stats["uploads"] == len(PHOTOS), stats

    # Every file whole: it opens, and it is byte for byte what the asset host served.
    served = {t.image_id: t.digest.hexdigest() for t in proxy.of("download") if t.done}
    manifest = json.loads((folder / ".autoenhance-manifest.json").read_text())["files"]
    for name in PHOTOS:
        data = (folder / name).read_bytes()
        with Image.open(folder / name) as image:
            image.verify()
        entry = manifest[name]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() == served[entry["identity"]["image_id"]]

    # No temporary file left anywhere in the destination.
    assert _temp_files(output) == [], _temp_files(output)

    # The API key in no log: task logs, triggerer, scheduler, worker, sandbox.
    assert stack.assert_in_no_log_file(FAKE_API_KEY) > len(instances)
    log(
        f"chaos run: {elapsed:.0f}s, tries {summary}; upload cut at {upload_at_kill[3]}; download cut at "
        f"{download_at_kill[3]} with {parts_at_kill}; complete downloads {len(complete)} for {len(PHOTOS)} "
        f"images, {len(landed_before_kill)} landed before the kill, "
        f"transfers started {len(proxy.of('download'))}; "
        f"sandbox: {stats['images_created']} images created, uploads {stats['uploads']}"
    )
