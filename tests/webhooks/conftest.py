"""Webhook receiver tests: the app in-process (unit) or on 127.0.0.1 with uvicorn (integration)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from autoenhance_provider.webhooks import WebhookEvent

SECRET = "wh-secret-7f3a9c1e55d04b2a"


@dataclass
class Recorder:
    """Stands in for the database in unit tests: remembers what would have been recorded."""

    events: list[tuple[str, WebhookEvent]] = field(default_factory=list)
    fail: bool = False

    def __call__(self, webhook: str, event: WebhookEvent) -> int:
        if self.fail:
            from sqlalchemy.exc import OperationalError

            raise OperationalError("INSERT INTO asset_event", {}, Exception("database is locked"))
        self.events.append((webhook, event))
        return 1


@dataclass
class Secrets:
    """Stands in for the connection lookup: counts lookups, can rotate or remove a secret."""

    values: dict[str, str | None] = field(default_factory=lambda: {"default": SECRET})
    lookups: int = 0

    def __call__(self, webhook: str) -> str | None:
        self.lookups += 1
        return self.values.get(webhook)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


def make_app(secrets: Any, recorder: Any, *, names: tuple[str, ...] = (), **options: Any) -> Any:
    """The receiver with fake seams: ``names`` stands in for the webhook connections listed."""
    from autoenhance_provider.webhooks.app import create_app

    return create_app(lookup=secrets, record=recorder, list_names=lambda: names, **options)


@pytest.fixture
def client(recorder: Recorder, secrets: Secrets) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(make_app(secrets, recorder), base_url="http://127.0.0.1") as test_client:
        yield test_client


class UvicornServer:
    """An ASGI app served by uvicorn on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from autoenhance_sandbox.cli import bind_socket

        self._sock = bind_socket("127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="webhook-receiver", daemon=True
        )

    def __enter__(self) -> UvicornServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("webhook receiver did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


DAG_ID = "example_autoenhance_webhook_download"


@pytest.fixture(scope="session")
def synced_dags(airflow_db: None) -> None:
    """The example DAGs in the SQLite metadata DB, written the way ``dag.test()`` writes them.

    So the webhook DAG's asset exists and events on it queue the DAG, as in a deployment.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    bundle = manager.get_bundle("dags-folder")
    bundle.initialize()
    bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
    assert DAG_ID in bag.dag_ids, bag.import_errors
    sync_bag_to_db(bag, bundle.name, bundle.version)


@pytest.fixture
def webhook_dag(synced_dags: None) -> Iterator[str]:
    """The example DAG unpaused, with no asset events, queued runs or runs yet."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    clear_webhook_state()
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == DAG_ID).values(is_paused=False))
    yield DAG_ID
    clear_webhook_state()


def clear_webhook_state() -> None:
    """Forget asset events, queued runs and runs of the example DAG, and per-order test assets."""
    from airflow.models.asset import AssetActive, AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    with create_session() as session:
        session.execute(delete(AssetDagRunQueue))
        for run in session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID)):
            session.delete(run)
        session.execute(delete(AssetEvent))
        try:  # Airflow 3.3+: the receiver keeps finished orders in the asset state store
            from airflow.models.asset_state_store import AssetStateStoreModel
        except ImportError:
            pass
        else:
            session.execute(delete(AssetStateStoreModel))
        order_assets = select(AssetModel.id).where(AssetModel.uri.like("autoenhance://orders/%"))
        session.execute(delete(AssetActive).where(AssetActive.uri.like("autoenhance://orders/%")))
        session.execute(delete(AssetModel).where(AssetModel.id.in_(order_assets)))


def asset_events(uri: str) -> list[Any]:
    """Events recorded on the asset with this URI, oldest first (extras as dicts)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        ).all()
        return [dict(row.extra) for row in rows]


def queued_dag_ids() -> list[str]:
    """DAGs an asset event has queued for a run (AssetDagRunQueue): what the scheduler starts next."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return sorted(session.scalars(select(AssetDagRunQueue.target_dag_id)).all())


def state_entry(key: str) -> dict | None:
    """The account asset's state store entry, read as the Execution API reads it for a trigger."""
    from airflow.models.asset import AssetModel
    from airflow.state import AssetScope, get_state_backend
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from autoenhance_provider.webhooks import order_finished_asset

    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.uri == order_finished_asset().uri))
        value = get_state_backend().get(AssetScope(asset_id=asset_id), key, session=session)
    return None if value is None else json.loads(value)
