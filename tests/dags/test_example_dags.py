"""Each example DAG imports cleanly and runs end to end with dag.test() against the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from .conftest import DAGS, dag_bag, load_dag

pytestmark = pytest.mark.dags

EXAMPLES = {
    "example_autoenhance_create_order",
    "example_autoenhance_pipeline",
    "example_autoenhance_hdr",
    "example_autoenhance_per_shoot",
}


def test_dagbag_imports_every_example(airflow_db):
    bag = dag_bag(DAGS)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= EXAMPLES
    for dag_id in EXAMPLES:
        assert "autoenhance" in bag.get_dag(dag_id).tags


def _valid_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for path in files:
        with Image.open(path) as img:
            img.verify()
    return files


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
    sandbox.config.processing_seconds = 5.0
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
    written = _valid_images(out)
    assert [p.name for p in written] == [p.name for p in photos]
    # the wait really went through the trigger (deferred), not a blocking poke loop
    assert [e["status"] for e in events] == ["success"]
    assert events[0]["progress"]["processed"] == len(photos)


def test_pipeline_dag_rerun_adds_nothing(airflow_db, sandbox, tmp_path):
    """A second run into the same folder creates a new order but buys nothing it already has on disk."""
    out = tmp_path / "enhanced"
    dag = load_dag("example_autoenhance_pipeline")
    assert str(dag.test(run_conf={"output_folder": str(out)}).state) == "success"
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    purchases = sandbox.stats()["purchases"]
    assert str(dag.test(run_conf={"output_folder": str(out)}).state) == "success"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == first
    assert sandbox.stats()["purchases"] == purchases


def test_hdr_dag(airflow_db, sandbox, tmp_path):
    out = tmp_path / "hdr"
    dagrun = load_dag("example_autoenhance_hdr").test(run_conf={"output_folder": str(out)})
    assert str(dagrun.state) == "success", _states(dagrun)
    stats = sandbox.stats()
    assert stats["orders_created"] == 1
    assert stats["brackets_created"] == 6
    assert stats["requests"]["POST /v3/orders/{order_id}/process"] == {"200": 1}
    assert [p.name for p in _valid_images(out)] == ["bedroom_0EV.jpg", "living_0EV.jpg"]


def test_per_shoot_dag(airflow_db, sandbox, tmp_path):
    out = tmp_path / "shoots"
    dagrun = load_dag("example_autoenhance_per_shoot").test(run_conf={"output_folder": str(out)})
    assert str(dagrun.state) == "success", _states(dagrun)
    stats = sandbox.stats()
    assert stats["orders_created"] == 2
    assert stats["images_created"] == 4
    for shoot in ("shoot-a", "shoot-b"):
        assert [p.name for p in _valid_images(out / shoot)] == ["photo-1.jpg", "photo-2.jpg"]
    labels = {
        ti.rendered_map_index for ti in dagrun.get_task_instances() if ti.task_id.endswith("create_order")
    }
    assert labels == {"shoot-a", "shoot-b"}
