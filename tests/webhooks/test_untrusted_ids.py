"""A template in an order id from outside renders nothing, leaks nothing and starts no download.

Run in a real (SQLite) Airflow with ``dag.test()``: the example webhook DAG fed an asset event
whose order id is a template (as anyone with Airflow API access could post one, past the
receiver), and a DAG that maps a download over such ids without ``literal()``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoenhance_provider.webhooks import order_finished_asset
from autoenhance_sandbox.testing import run_sandbox
from example_dags_support import dag_bag, load_dag

from .conftest import DAG_ID, SECRET, UvicornServer, asset_events, queued_dag_ids
from .test_sandbox_to_dag import api_server_like_app, attach_queued_asset_events

pytestmark = [pytest.mark.integration, pytest.mark.dags]

KEY = "sk-probe-3c1f9e27b4d84a6f"
INJECTIONS = [
    "{{ conn.autoenhance_default.password }}",
    "{{ conn.autoenhance_default.password|reverse }}",
    "{{ 7*7 }}",
]
LEAKS = (KEY, KEY[::-1])


def rendered_everywhere(dag_id: str) -> str:
    """Everything Airflow kept of the run's tasks: rendered fields, map labels, XComs."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        fields = session.scalars(
            select(RenderedTaskInstanceFields.rendered_fields).where(
                RenderedTaskInstanceFields.dag_id == dag_id
            )
        ).all()
        labels = session.scalars(
            select(TaskInstance.rendered_map_index).where(TaskInstance.dag_id == dag_id)
        ).all()
        xcoms = session.scalars(select(XComModel.value).where(XComModel.dag_id == dag_id)).all()
    return json.dumps([fields, labels, [str(x) for x in xcoms]], default=str)


def test_a_template_id_is_refused_by_the_receiver_and_ignored_by_the_webhook_dag(
    webhook_dag, monkeypatch, tmp_path: Path, capfd
):
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    monkeypatch.setenv(
        "AIRFLOW_CONN_AUTOENHANCE_WEBHOOK", json.dumps({"conn_type": "generic", "password": SECRET})
    )
    with run_sandbox() as sandbox:
        conn = {"conn_type": "autoenhance", "host": sandbox.base_url, "password": KEY}
        monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(conn))
        with UvicornServer(api_server_like_app()), TestClient(api_server_like_app()) as client:
            for order_id in INJECTIONS:
                body = {"event": "image_processed", "order_id": order_id, "order_is_processing": False}
                response = client.post(
                    "/autoenhance/webhook", json=body, headers={"Authorization": f"Bearer {SECRET}"}
                )
                assert response.status_code == 422, response.text
        assert asset_events(order_finished_asset().uri) == []

        # Past the receiver (Airflow's own asset-event API, or an event from before this rule):
        with create_session() as session:
            model = session.scalar(select(AssetModel).where(AssetModel.uri == order_finished_asset().uri))
            for order_id in INJECTIONS:
                extra = {"source": "autoenhance_webhook", "order_id": order_id, "order_is_processing": False}
                asset_manager.register_asset_change(asset=model, extra=extra, session=session)
        assert queued_dag_ids() == [DAG_ID]
        attach_queued_asset_events(monkeypatch)
        run = load_dag(DAG_ID).test(run_conf={"output_folder": str(tmp_path), "full_size": True})
        requests_made = sandbox.stats()["requests"]

    out, err = capfd.readouterr()
    assert run.state == "success"  # nothing to download: the mapped download has no instances
    assert requests_made == {}  # not one call to the API
    assert list(tmp_path.iterdir()) == []  # no folder, not even "49"
    seen = out + err + rendered_everywhere(DAG_ID)
    assert not [leak for leak in LEAKS if leak in seen]
    assert "49" not in rendered_everywhere(DAG_ID)


MAPPED_DAG = """
import pendulum
from airflow.sdk import DAG, literal, task

from autoenhance_provider.operators.download import DownloadImagesOperator

with DAG("untrusted_ids", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), schedule=None):
    @task
    def from_outside():
        return [{{"order_id": order_id, "destination": "{folder}/" + order_id}} for order_id in {ids!r}]

    @task
    def valid_from_outside():
        return ["{{{{ 6*7 }}}}"]

    DownloadImagesOperator.partial(task_id="download", format="{{{{ 'jp' ~ 'eg' }}}}").expand_kwargs(
        from_outside()
    )
    DownloadImagesOperator.partial(task_id="literal", destination="{folder}/x").expand(
        order_id=valid_from_outside().map(literal)
    )
"""


def test_the_operators_render_only_what_the_dag_author_wrote(synced_dags, monkeypatch, tmp_path: Path, capfd):
    """No literal() here: Airflow would render these ``expand_kwargs`` strings, the operator does not.
    The partial()'s own template (format) is still rendered."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    folder = tmp_path / "out"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "untrusted_ids.py").write_text(MAPPED_DAG.format(folder=folder, ids=INJECTIONS))
    bag = dag_bag(dags)
    assert not bag.import_errors, bag.import_errors
    from airflow.dag_processing.dagbag import sync_bag_to_db

    sync_bag_to_db(bag, "dags-folder", None)  # dag.test() runs only serialised DAGs
    with run_sandbox() as sandbox:
        conn = {"conn_type": "autoenhance", "host": sandbox.base_url, "password": KEY}
        monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(conn))
        run = bag.get_dag("untrusted_ids").test()
        requests_made = sandbox.stats()["requests"]
    out, err = capfd.readouterr()

    assert run.state == "failed"
    with create_session() as session:
        states = dict(
            session.execute(
                select(TaskInstance.map_index, TaskInstance.state).where(
                    TaskInstance.dag_id == "untrusted_ids", TaskInstance.task_id == "download"
                )
            ).all()
        )
    assert states == {0: "failed", 1: "failed", 2: "failed"}
    for order_id in INJECTIONS:  # refused by the id rule, as written
        assert f"order_id {order_id!r} is not a valid id" in out + err
    assert "format 'jpeg'" not in out + err  # (format was rendered, so no complaint about it)
    assert requests_made == {}
    assert not folder.exists()
    seen = out + err + rendered_everywhere("untrusted_ids")
    assert not [leak for leak in LEAKS if leak in seen]
    # literal() around a mapped value: taken off, the value used as written, and refused as an id.
    assert "order_id '{{ 6*7 }}' is not a valid id" in out + err
    assert "order_id '42'" not in out + err
