"""The whole path over real HTTP: sandbox webhooks -> receiver (uvicorn on 127.0.0.1) -> asset
events in the SQLite metadata DB -> the example DAG is due -> it downloads each finished order.

The orders are seeded straight into the sandbox, as orders made in the Autoenhance web app are:
Airflow learns about them only from the webhooks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from PIL import Image

from autoenhance_provider.files.manifest import MANIFEST_NAME
from autoenhance_provider.webhooks import order_finished_asset
from autoenhance_provider.webhooks.plugin import AutoenhanceWebhooksPlugin
from autoenhance_sandbox.testing import run_sandbox
from example_dags_support import load_dag

from .conftest import DAG_ID, SECRET, UvicornServer, asset_events, queued_dag_ids, state_entry

pytestmark = [pytest.mark.integration, pytest.mark.dags]

FINISHED = order_finished_asset()


def api_server_like_app() -> FastAPI:
    """A parent app mounting the plugin's apps at their prefixes, as Airflow's API server does."""
    parent = FastAPI()
    for sub in AutoenhanceWebhooksPlugin.fastapi_apps:
        parent.mount(sub["url_prefix"], sub["app"])
    return parent


def minute_keys() -> list[str]:
    from datetime import datetime, timedelta, timezone

    from autoenhance_provider.webhooks.notes import minute_key

    now = datetime.now(timezone.utc)
    return [minute_key(now - timedelta(minutes=1)), minute_key(now)]


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def attach_queued_asset_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ``dag.test()``'s run consume the queued asset events, as the scheduler's run would.

    ``dag.test()`` always creates a manual run; the scheduler (``_create_dag_runs_asset_triggered``)
    creates an asset-triggered one, adds the events of the DAG's assets to
    ``consumed_asset_events`` and deletes the AssetDagRunQueue rows. This does that one step to the
    run ``dag.test()`` creates; everything else (tasks, triggering_asset_events) is Airflow's own.
    """
    import airflow.models.dagrun as dagrun_module
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, DagScheduleAssetReference
    from sqlalchemy import delete, select

    original = dagrun_module.get_or_create_dagrun

    def get_or_create_dagrun(**kwargs):
        run = original(**kwargs)
        session = kwargs["session"]
        scheduled = select(DagScheduleAssetReference.asset_id).where(
            DagScheduleAssetReference.dag_id == run.dag_id
        )
        events = session.scalars(
            select(AssetEvent).where(AssetEvent.asset_id.in_(scheduled)).order_by(AssetEvent.id)
        ).all()
        run.consumed_asset_events.extend(events)
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == run.dag_id))
        session.commit()
        return run

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", get_or_create_dagrun)


def test_sandbox_webhooks_start_the_download_dag(webhook_dag, monkeypatch, tmp_path: Path):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AUTOENHANCE_WEBHOOK", json.dumps({"conn_type": "generic", "password": SECRET})
    )
    monkeypatch.setenv("AUTOENHANCE_POLL_INTERVAL", "0.5")
    dag = load_dag(DAG_ID)

    with (
        UvicornServer(api_server_like_app()) as receiver,
        run_sandbox(
            processing_seconds=0.5,
            merge_seconds=0.3,
            webhook_url=f"{receiver.base_url}/autoenhance/webhook",
            webhook_token=SECRET,  # the sandbox sends it raw in Authorization
        ) as sandbox,
    ):
        conn = {"conn_type": "autoenhance", "host": sandbox.base_url, "password": sandbox.api_key}
        monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(conn))
        order_ids = sandbox.seed(orders=2, images_per_order=2, finish_after_seconds=0.5)

        wait_for(lambda: len(asset_events(FINISHED.uri)) >= 2, what="two 'order finished' asset events")
        wait_for(lambda: len(sandbox.webhooks()) >= 5, what="five webhook deliveries")
        deliveries = sandbox.webhooks()
        # Every delivery was acknowledged: the start-up webhook_updated and 4 image_processed.
        assert [(r["status_code"], r["error"]) for r in deliveries] == [(200, None)] * 5, deliveries
        # Exactly one "finished" event per order (its last image), none for the others.
        events = asset_events(FINISHED.uri)
        assert sorted(extra["order_id"] for extra in events) == sorted(order_ids)
        assert all(e["order_is_processing"] is False and e["webhook"] == "default" for e in events)
        # And noted where a deferred wait reads (Airflow 3.3+ asset state store, this minute or the last).
        noted = {order for key in minute_keys() for order in (state_entry(key) or {})}
        assert set(order_ids) <= noted
        # The example DAG is due: the scheduler would start an asset-triggered run now.
        assert queued_dag_ids() == [DAG_ID]

        attach_queued_asset_events(monkeypatch)
        run = dag.test(run_conf={"output_folder": str(tmp_path), "full_size": True})

    assert run.state == "success"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(order_ids)  # one folder per order
    for order_id in order_ids:
        files = sorted(p for p in (tmp_path / order_id).iterdir() if p.name != MANIFEST_NAME)
        assert len(files) == 2, files
        for path in files:
            with Image.open(path) as image:
                image.verify()
    assert queued_dag_ids() == []  # the run consumed the queued events
