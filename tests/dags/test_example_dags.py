"""Each example DAG imports cleanly and runs end to end with dag.test() against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from autoenhance_provider.files.manifest import MANIFEST_NAME
from support.task import FakeTI

from .conftest import DAGS, dag_bag, load_dag

pytestmark = pytest.mark.dags

EXAMPLES = {
    "example_autoenhance_create_order",
    "example_autoenhance_pipeline",
    "example_autoenhance_hdr",
    "example_autoenhance_per_shoot",
}


def listing(folder):
    """The files a download left in ``folder``, without the manifest that records them."""
    return [p for p in folder.iterdir() if p.name != MANIFEST_NAME]


def test_dagbag_imports_every_example(airflow_db):
    bag = dag_bag(DAGS)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= EXAMPLES
    for dag_id in EXAMPLES:
        assert "autoenhance" in bag.get_dag(dag_id).tags


def _valid_images(folder: Path) -> list[Path]:
    files = sorted(p for p in listing(folder) if p.is_file())
    for path in files:
        with Image.open(path) as img:
            img.verify()
    return files


class _AnyOutlet:
    """outlet_events for a task run by hand: any asset (hashable or not, as on Airflow 3.0) accepted."""

    def __getitem__(self, key):
        return SimpleNamespace(extra={}, add=lambda *a, **k: None)


def sandbox_order_images(sandbox, order_id: str) -> list[dict]:
    import urllib.request

    request = urllib.request.Request(
        f"{sandbox.base_url}/v3/orders/{order_id}", headers={"x-api-key": sandbox.api_key}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["images"]


def _states(dagrun) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()}


def test_create_order_dag(airflow_db, sandbox):
    dagrun = load_dag("example_autoenhance_create_order").test()
    assert str(dagrun.state) == "success", _states(dagrun)
    assert sandbox.stats()["orders_created"] == 1


def test_pipeline_dag(airflow_db, sandbox, tmp_path, monkeypatch):
    from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger

    events = []
    original_run = AutoenhanceOrderTrigger.run

    async def recording_run(self):
        async for event in original_run(self):
            events.append(event.payload)
            yield event

    monkeypatch.setattr(AutoenhanceOrderTrigger, "run", recording_run)
    # Long enough that the sensor's check before deferring still sees the order processing, however
    # slowly tasks start (Airflow 3.0's dag.test() takes about a second per task); the fixture
    # restores the 0.5 s.
    sandbox.config.processing_seconds = 10.0
    out = tmp_path / "enhanced"
    dag = load_dag("example_autoenhance_pipeline")
    dagrun = dag.test(run_conf={"output_folder": str(out)})
    assert str(dagrun.state) == "success", _states(dagrun)

    photos = sorted((DAGS / "sample_photos" / "listing-42").glob("*.jpg"))
    stats = sandbox.stats()
    assert stats["orders_created"] == 1
    assert stats["images_created"] == len(photos)
    assert stats["purchases"] == len(photos)
    assert all(n == 1 for n in stats["purchases_per_image"].values())
    assert stats["downloads"]["enhanced"] == len(photos)
    assert stats["leaked_api_key"] == {"storage": 0, "assets": 0}
    order_id = dagrun.get_task_instance("create_order").xcom_pull(task_ids="create_order")
    assert [p.name for p in out.iterdir()] == [order_id]  # each order in its own folder
    written = _valid_images(out / order_id)
    assert [p.name for p in written] == [p.name for p in photos]
    # the wait really went through the trigger (deferred), not a blocking poke loop
    assert [e["status"] for e in events] == ["success"]
    assert events[0]["progress"]["processed"] == len(photos)


def _order_folders(out: Path) -> dict[str, dict[str, bytes]]:
    return {d.name: {p.name: p.read_bytes() for p in listing(d)} for d in out.iterdir()}


def test_pipeline_dag_second_run_gets_its_own_photos(airflow_db, sandbox, tmp_path):
    """A second run is a new order: its photos land in its own folder; the first run's stay as they were."""
    out = tmp_path / "enhanced"
    dag = load_dag("example_autoenhance_pipeline")
    assert str(dag.test(run_conf={"output_folder": str(out)}).state) == "success"
    first = _order_folders(out)
    assert str(dag.test(run_conf={"output_folder": str(out)}).state) == "success"
    both = _order_folders(out)

    assert len(first) == 1
    assert len(both) == 2
    (first_id,) = first
    (second_id,) = set(both) - set(first)
    assert both[first_id] == first[first_id]
    assert sorted(both[second_id]) == sorted(first[first_id])  # the same photo names…
    second_images = {i["image_id"] for i in sandbox_order_images(sandbox, second_id)}
    manifest = json.loads((out / second_id / MANIFEST_NAME).read_text())
    assert {e["identity"]["image_id"] for e in manifest["files"].values()} == second_images  # …its own images
    assert {e["identity"]["order_id"] for e in manifest["files"].values()} == {second_id}


def test_pipeline_download_retry_buys_nothing_twice(airflow_db, sandbox, tmp_path):
    """The download task run again for the same order (a retry) keeps every verified file."""
    from autoenhance_provider.operators.download import DownloadImagesOperator

    out = tmp_path / "enhanced"
    dagrun = load_dag("example_autoenhance_pipeline").test(run_conf={"output_folder": str(out)})
    assert str(dagrun.state) == "success", _states(dagrun)
    (folder,) = out.iterdir()
    before = {p.name: p.stat().st_mtime_ns for p in listing(folder)}
    purchases = sandbox.stats()["purchases"]

    op = DownloadImagesOperator(  # the DAG's own rendering: the same request, so its files are verified
        task_id="again",
        order_id=folder.name,
        destination=str(folder),
        format="jpeg",
        quality=90,
        preview=False,
    )
    uris = op.execute({"ti": FakeTI(), "outlet_events": _AnyOutlet()})

    assert len(uris) == len(before)
    assert {p.name: p.stat().st_mtime_ns for p in listing(folder)} == before
    assert sandbox.stats()["purchases"] == purchases


def test_hdr_dag(airflow_db, sandbox, tmp_path):
    out = tmp_path / "hdr"
    dagrun = load_dag("example_autoenhance_hdr").test(run_conf={"output_folder": str(out)})
    assert str(dagrun.state) == "success", _states(dagrun)
    stats = sandbox.stats()
    assert stats["orders_created"] == 1
    assert stats["brackets_created"] == 6
    assert stats["requests"]["POST /v3/orders/{order_id}/process"] == {"200": 1}
    (folder,) = out.iterdir()  # the order's own folder
    assert [p.name for p in _valid_images(folder)] == ["bedroom_0EV.jpg", "living_0EV.jpg"]


def test_per_shoot_dag(airflow_db, sandbox, tmp_path):
    out = tmp_path / "shoots"
    dagrun = load_dag("example_autoenhance_per_shoot").test(run_conf={"output_folder": str(out)})
    assert str(dagrun.state) == "success", _states(dagrun)
    stats = sandbox.stats()
    assert stats["orders_created"] == 2
    assert stats["images_created"] == 4
    for shoot in ("shoot-a", "shoot-b"):
        (order_folder,) = (out / shoot).iterdir()  # one folder per order inside the shoot's
        assert [p.name for p in _valid_images(order_folder)] == ["photo-1.jpg", "photo-2.jpg"]
    labels = {
        ti.rendered_map_index for ti in dagrun.get_task_instances() if ti.task_id.endswith("create_order")
    }
    assert labels == {"shoot-a", "shoot-b"}
