"""Asset events of downloads: a fixed destination is the outlet asset; a templated one goes through the
``autoenhance-downloads`` alias, resolved at run time — and a DAG scheduled on the alias gets queued.

The DAG test runs the shipped pipeline with ``dag.test()`` against the sandbox (SQLite metadata DB),
then reads what the scheduler would: the alias's resolved asset, the event and the queued consumer.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from airflow.sdk import Asset, AssetAlias, ObjectStoragePath

from autoenhance_provider.operators.download import DOWNLOADS_ALIAS, DownloadImagesOperator
from example_dags_support import DAGS, dag_bag
from support.sandbox import sandbox_fixtures

PRODUCER = "example_autoenhance_pipeline"
CONSUMER = "example_autoenhance_asset_consumer"


def file_list(extra: dict[str, Any]) -> list[str]:
    """The files of an event: a list, or before Airflow 3.2 (alias events) one string, a URI per line."""
    uris = extra["uris"]
    return uris.splitlines() if isinstance(uris, str) else list(uris)


def op(destination: Any, **kwargs: Any) -> DownloadImagesOperator:
    return DownloadImagesOperator(task_id="download", order_id="o-1", destination=destination, **kwargs)


# ------------------------------------------------------------------------------ declared outlets
def test_a_fixed_destination_is_the_outlet_asset(tmp_path):
    assert op(str(tmp_path / "out")).outlets == [Asset(f"file://{tmp_path}/out")]
    assert op("s3://bucket/enhanced/", destination_conn_id="aws_default").outlets == [
        Asset("s3://bucket/enhanced")
    ]


def test_an_object_storage_path_outlet_carries_no_connection_id():
    path = ObjectStoragePath("s3://bucket/enhanced", conn_id="aws_default")
    assert op(path).outlets == [Asset("s3://bucket/enhanced")]


def test_a_templated_destination_declares_the_downloads_alias(tmp_path):
    assert op(str(tmp_path / "{{ ds }}")).outlets == [AssetAlias(DOWNLOADS_ALIAS)]
    assert op("{{ params.out }}", asset_alias="listing-photos").outlets == [AssetAlias("listing-photos")]
    assert op("{{ params.out }}", asset_alias=None).outlets == []
    mine = Asset("s3://bucket/listings")
    assert op("{{ params.out }}", outlets=[mine]).outlets == [mine]


class _FakeHook:
    """Stands in for the API: the operator's own part (where events go) is what is tested here."""

    config = SimpleNamespace(base_url="https://api.autoenhance.test")

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def download_order(self, order_id: str, folder: Any, **kwargs: Any) -> list[str]:
        return [str(folder / name) for name in self.names]

    def order_url(self, order_id: str) -> str:
        return f"https://app.autoenhance.test/orders/{order_id}"


class _TI:
    map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def run(operator: DownloadImagesOperator, names: list[str]) -> Any:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    operator.__dict__["hook"] = _FakeHook(names)
    context = {"ti": _TI(), "outlet_events": OutletEventAccessors()}
    operator.execute(context)  # type: ignore[arg-type]
    return context["outlet_events"]


def test_a_rendered_destination_resolves_the_alias_with_the_order_and_files(tmp_path):
    operator = op(str(tmp_path / "{{ params.folder }}"))
    operator.destination = str(tmp_path / "12 Main St #4")  # as rendered
    names = [f"photo-{i:03d}.jpg" for i in range(150)]

    events = run(operator, names)

    (event,) = events[AssetAlias(DOWNLOADS_ALIAS)].asset_alias_events
    assert event.dest_asset_key.uri == (tmp_path / "12 Main St #4").as_uri()
    assert event.extra["order_id"] == "o-1"
    assert event.extra["count"] == 150
    assert len(file_list(event.extra)) == 100  # the list is capped, the count is not
    assert file_list(event.extra)[0] == f"file://{tmp_path}/12 Main St #4/photo-000.jpg"


def test_a_fixed_destination_describes_its_own_event(tmp_path):
    operator = op(str(tmp_path / "out"))

    events = run(operator, ["a.jpg"])

    assert events[Asset(f"file://{tmp_path}/out")].extra == {
        "order_id": "o-1",
        "count": 1,
        "uris": [f"file://{tmp_path}/out/a.jpg"],
    }
    assert events[AssetAlias(DOWNLOADS_ALIAS)].asset_alias_events == []


# ----------------------------------------------------------------------- the DAGs, in real Airflow
asset_sandbox, sandbox = sandbox_fixtures(
    "asset_sandbox", "module", {"AUTOENHANCE_POLL_INTERVAL": "0.5"}, processing_seconds=0.5, merge_seconds=0.3
)


def _sync_and_unpause(bag: Any, dag_id: str) -> None:
    """Write the parsed DAGs to the metadata DB (what the DAG processor does) and unpause one."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    DagBundlesManager().sync_bundles_to_db()
    try:  # Airflow >= 3.1
        from airflow.dag_processing.dagbag import sync_bag_to_db
    except ImportError:  # Airflow 3.0
        bag.sync_to_db("dags-folder", None)
    else:
        sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))


def test_the_pipeline_download_resolves_the_alias_and_queues_the_consumer(airflow_db, sandbox, tmp_path):
    from airflow.models.asset import AssetAliasModel, AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = dag_bag(DAGS)
    assert not bag.import_errors, bag.import_errors
    _sync_and_unpause(bag, CONSUMER)
    out = tmp_path / "enhanced"

    dagrun = bag.get_dag(PRODUCER).test(run_conf={"output_folder": str(out)})

    assert str(dagrun.state) == "success"
    order_id = dagrun.get_task_instance("create_order").xcom_pull(task_ids="create_order")
    destination = f"file://{out}/{order_id}"
    with create_session() as session:
        alias = session.scalar(select(AssetAliasModel).where(AssetAliasModel.name == DOWNLOADS_ALIAS))
        assert alias is not None
        assert destination in {asset.uri for asset in alias.assets}  # resolved at run time
        asset = session.scalar(select(AssetModel).where(AssetModel.uri == destination))
        events = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id)).all()
        assert len(events) == 1
        (event,) = events
        extra = dict(event.extra)
        assert (event.source_dag_id, event.source_task_id) == (PRODUCER, "download_enhanced")
        assert event.extra["order_id"] == order_id
        written = sorted(p.name for p in (out / order_id).iterdir() if not p.name.startswith("."))
        assert event.extra["count"] == len(written) > 0
        assert sorted(u.rsplit("/", 1)[-1] for u in file_list(extra)) == written
        assert [e.name for e in event.source_aliases] == [DOWNLOADS_ALIAS]
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
        assert CONSUMER in queued  # the scheduler creates its run from this
        _, triggered = DagModel.dags_needing_dagruns(session)
        assert CONSUMER in triggered
        session.rollback()  # release what dags_needing_dagruns locked; nothing was changed

    # What the consumer's task does with those events.
    consumer = bag.get_dag(CONSUMER)
    summaries = consumer.get_task("list_downloaded_files").python_callable(
        # Keyed by the asset in Airflow (not hashable on 3.0); each event names its asset too.
        triggering_asset_events={
            destination: [SimpleNamespace(asset=SimpleNamespace(uri=destination), extra=extra)]
        }
    )
    assert summaries == [
        {
            "destination": destination,
            "order_id": order_id,
            "count": len(written),
            "files": file_list(extra),
        }
    ]
