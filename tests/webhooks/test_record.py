"""Recording in a real (SQLite) Airflow metadata DB: asset events, queued DAGs, connections."""

from __future__ import annotations

import json
import time

import pytest

from autoenhance_provider.webhooks import WebhookEvent, order_asset, order_finished_asset

from .conftest import DAG_ID, SECRET, asset_events, queued_dag_ids, state_entry

pytestmark = pytest.mark.dags

FINISHED = order_finished_asset()


def finished(order_id: str = "order-1", image_id: str = "img-1") -> WebhookEvent:
    return WebhookEvent("image_processed", order_id, image_id, False, False)


def declare_order_asset(order_id: str) -> None:
    """What a DAG scheduled on ``order_asset(order_id)`` leaves in the DB: an active asset."""
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session

    asset = order_asset(order_id)
    with create_session() as session:
        model = AssetModel(name=asset.name, uri=asset.uri, group=asset.group, extra={})
        session.add(model)
        session.flush()
        session.add(AssetActive.for_asset(model))


def test_finished_order_is_an_asset_event_that_queues_the_dag(webhook_dag):
    from autoenhance_provider.webhooks.app import record_order_finished

    assert queued_dag_ids() == []
    assert record_order_finished("default", finished()) == 1
    assert asset_events(FINISHED.uri) == [finished().as_extra("default")]
    assert queued_dag_ids() == [DAG_ID]


def test_repeats_of_one_finish_are_one_event_and_a_later_finish_is_another(webhook_dag, monkeypatch):
    from datetime import timedelta

    from autoenhance_provider.webhooks import app

    assert app.record_order_finished("default", finished()) == 1
    assert app.record_order_finished("default", finished()) == app.DUPLICATE
    assert app.record_order_finished("default", finished("order-2")) == 1  # another order is not a repeat
    assert [extra["order_id"] for extra in asset_events(FINISHED.uri)] == ["order-1", "order-2"]
    assert queued_dag_ids() == [DAG_ID]
    monkeypatch.setattr(app, "DUPLICATE_WINDOW", timedelta(0))  # the window has passed: a new finish
    assert app.record_order_finished("default", finished()) == 1
    assert [extra["order_id"] for extra in asset_events(FINISHED.uri)] == ["order-1", "order-2", "order-1"]


def test_two_hundred_identical_deliveries_make_one_asset_event(webhook_dag, monkeypatch):
    """Over HTTP, with the real seams, and concurrently (as a sender that retries fast would)."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from autoenhance_provider.webhooks.app import create_app

    monkeypatch.setenv(
        "AIRFLOW_CONN_AUTOENHANCE_WEBHOOK", json.dumps({"conn_type": "generic", "password": SECRET})
    )
    body = json.dumps(finished("order-9").as_extra("ignored") | {"event": "image_processed"})
    headers = {"Authorization": f"Bearer {SECRET}"}
    with TestClient(create_app()) as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/webhook", content=body, headers=headers), range(200)))
    statuses = sorted(answer.json()["status"] for answer in answers)
    assert {answer.status_code for answer in answers} == {200}
    assert statuses == ["duplicate"] * 199 + ["recorded"]
    assert [extra["order_id"] for extra in asset_events(FINISHED.uri)] == ["order-9"]
    assert queued_dag_ids() == [DAG_ID]


def test_a_flood_of_random_names_over_http_never_locks_out_a_named_webhook(airflow_db, monkeypatch):
    """The real connection seams after a restart: agency_b's connection exists (as an environment
    variable) but was never looked up; three clients flood random names from the same address."""
    import threading
    import uuid
    from collections import Counter

    import requests

    from autoenhance_provider.webhooks.app import create_app

    from .conftest import Recorder, UvicornServer

    monkeypatch.setenv(
        "AIRFLOW_CONN_AUTOENHANCE_WEBHOOK_AGENCY_B",
        json.dumps({"conn_type": "generic", "password": "b-secret"}),
    )
    recorder, refused, stop = Recorder(), Counter(), threading.Event()
    with UvicornServer(create_app(record=recorder)) as server:

        def flood() -> None:
            with requests.Session() as session:
                for _ in range(400):
                    if stop.is_set():
                        return
                    name = f"random{uuid.uuid4().hex[:12]}"
                    refused[
                        session.post(f"{server.base_url}/webhook/{name}", data=b"{}", timeout=10).status_code
                    ] += 1

        threads = [threading.Thread(target=flood) for _ in range(3)]
        for thread in threads:
            thread.start()
        while sum(refused.values()) < 60:  # past the budget for unknown names before the first delivery
            time.sleep(0.01)
        statuses = []
        with requests.Session() as session:
            for number in range(20):
                body = finished(f"order-{number}").as_extra("ignored") | {"event": "image_processed"}
                response = session.post(
                    f"{server.base_url}/webhook/agency_b",
                    json=body,
                    headers={"Authorization": "Bearer b-secret"},
                    timeout=10,
                )
                statuses.append(response.status_code)
        stop.set()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 20
    assert refused[404] >= 60
    assert set(refused) == {404}
    assert len(recorder.events) == 20


def test_declared_order_asset_gets_the_event_too(webhook_dag):
    from autoenhance_provider.webhooks.app import record_order_finished

    declare_order_asset("order-7")
    assert record_order_finished("default", finished("order-7")) == 2
    assert [e["order_id"] for e in asset_events(order_asset("order-7").uri)] == ["order-7"]
    assert record_order_finished("default", finished("order-8")) == 1  # undeclared: account asset only
    assert asset_events(order_asset("order-8").uri) == []


def test_undeclared_account_asset_records_nothing(webhook_dag):
    from autoenhance_provider.webhooks.app import record_order_finished

    assert record_order_finished("agency-b", finished()) == 0
    assert asset_events(order_finished_asset("agency-b").uri) == []
    assert queued_dag_ids() == []


def test_http_delivery_reads_the_airflow_connection_and_records(webhook_dag, monkeypatch):
    """The whole app with its real seams: connection from Airflow's secrets, events in the DB."""
    from fastapi.testclient import TestClient

    from autoenhance_provider.webhooks.app import create_app

    monkeypatch.setenv(
        "AIRFLOW_CONN_AUTOENHANCE_WEBHOOK", json.dumps({"conn_type": "generic", "password": SECRET})
    )
    body = json.dumps(finished("order-5").as_extra("ignored") | {"event": "image_processed"})
    with TestClient(create_app()) as client:
        assert client.post("/webhook", content=body, headers={"Authorization": "nope"}).status_code == 401
        response = client.post("/webhook", content=body, headers={"Authorization": f"Bearer {SECRET}"})
        assert response.status_code == 200, response.text
        assert response.json()["asset_events"] == 1
        # agency-b has no connection at all: looked up in env, secrets backends and the DB, then 404.
        assert (
            client.post("/webhook/agency-b", content=body, headers={"Authorization": SECRET}).status_code
            == 404
        )
    assert [e["order_id"] for e in asset_events(FINISHED.uri)] == ["order-5"]


def test_lookup_secret_reads_the_connection_password(airflow_db, monkeypatch):
    from autoenhance_provider.webhooks.app import lookup_secret

    monkeypatch.setenv(
        "AIRFLOW_CONN_AUTOENHANCE_WEBHOOK_AGENCY_B", json.dumps({"conn_type": "generic", "password": "pw"})
    )
    monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_WEBHOOK_EMPTY", json.dumps({"conn_type": "generic"}))
    assert lookup_secret("agency-b") is None  # a dash is not an env-var connection id: agency_b is
    assert lookup_secret("agency_b") == "pw"
    assert lookup_secret("empty") is None
    assert lookup_secret("missing") is None


def test_state_store_failure_does_not_lose_the_asset_event(webhook_dag, monkeypatch, caplog):
    from autoenhance_provider.webhooks import app as app_module

    def broken(*_args, **_kwargs):
        raise RuntimeError("state backend down")

    monkeypatch.setattr(app_module, "remember_finished_order", broken)  # as app.py imported it
    assert app_module.record_order_finished("default", finished("order-3")) == 1
    assert [e["order_id"] for e in asset_events(FINISHED.uri)] == ["order-3"]
    assert queued_dag_ids() == [DAG_ID]
    assert "could not keep order order-3 in the state store" in caplog.text


def test_a_triggerer_can_read_the_finished_order(webhook_dag, clock):
    """The read a deferred wait makes: the triggerer's own Execution API client (in-process, as
    ``TriggerRunnerSupervisor.make_client`` builds it) gets the minute's entry by asset name and key,
    and the trigger's reader finds the order in it."""
    from airflow.jobs.triggerer_job_runner import in_process_api_server
    from airflow.sdk.api.client import Client
    from airflow.sdk.api.datamodels._generated import AssetStateStoreResponse

    from autoenhance_provider.webhooks.app import record_order_finished
    from autoenhance_provider.webhooks.notes import orders_in

    record_order_finished("default", finished("order-4", "img-4"))
    client = Client(base_url=None, token="", dry_run=True, transport=in_process_api_server().transport)
    client.base_url = "http://in-process.invalid./"
    found = client.asset_state_store.get(clock.minute_key, name=FINISHED.name)
    assert isinstance(found, AssetStateStoreResponse), found
    assert list(orders_in(found.value)) == ["order-4"]
    earlier = client.asset_state_store.get(
        clock.minute_key.replace("finished:2", "finished:1"), name=FINISHED.name
    )
    assert not isinstance(earlier, AssetStateStoreResponse)  # no orders then: nothing to wake


class FrozenClock:
    """The notes' clock, stopped (every delivery lands in the same minute) until moved."""

    def __init__(self, monkeypatch) -> None:
        from datetime import datetime, timezone

        from autoenhance_provider.webhooks import notes

        self.now = datetime.now(timezone.utc)
        clock = self

        class Frozen(datetime):
            @classmethod
            def now(cls, tz=None):
                return clock.now if tz is not None else clock.now.replace(tzinfo=None)

        monkeypatch.setattr(notes, "datetime", Frozen)
        monkeypatch.setattr(notes, "_last_prune", {})

    @property
    def minute_key(self) -> str:
        from autoenhance_provider.webhooks.notes import minute_key

        return minute_key(self.now)


@pytest.fixture
def clock(monkeypatch) -> FrozenClock:
    return FrozenClock(monkeypatch)


def test_finished_orders_are_kept_per_minute_for_deferred_waits(webhook_dag, clock, monkeypatch):
    """One entry per minute lists every order finished in it: all waits of a triggerer read it
    (one or two keys per check) instead of one key per waiting order; entries go after an hour."""
    from datetime import datetime, timedelta, timezone

    from airflow.models.asset_state_store import AssetStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    from autoenhance_provider.webhooks import app as app_module
    from autoenhance_provider.webhooks import notes

    app_module.record_order_finished("default", finished("order-a"))
    app_module.record_order_finished("default", finished("order-b"))
    app_module.record_order_finished("default", finished("order-a"))  # a repeat: still one entry
    first_minute = clock.minute_key
    entry = state_entry(first_minute)
    assert sorted(entry) == ["order-a", "order-b"]
    assert datetime.fromisoformat(entry["order-b"]) <= datetime.now(timezone.utc)

    # An entry two hours old, a delivery in a later minute and the hourly prune due: the old
    # minute's entry goes.
    with create_session() as session:
        session.execute(
            update(AssetStateStoreModel)
            .where(AssetStateStoreModel.key == first_minute)
            .values(updated_at=clock.now - timedelta(hours=2))
        )
    clock.now += timedelta(minutes=2)
    monkeypatch.setattr(notes, "_last_prune", {})
    app_module.record_order_finished("default", finished("order-c"))
    assert state_entry(first_minute) is None
    assert sorted(state_entry(clock.minute_key)) == ["order-c"]


def test_a_full_minute_entry_is_left_alone(webhook_dag, clock, monkeypatch):
    from autoenhance_provider.webhooks import app as app_module
    from autoenhance_provider.webhooks import notes

    monkeypatch.setattr(notes, "MAX_ORDERS_PER_MINUTE", 1)
    assert app_module.record_order_finished("default", finished("order-1")) == 1
    assert app_module.record_order_finished("default", finished("order-2")) == 1  # the event still counts
    assert sorted(state_entry(clock.minute_key)) == ["order-1"]


def test_notes_read_back_whatever_form_the_client_hands_over():
    from autoenhance_provider.webhooks.notes import orders_in

    assert orders_in('{"o-1": "2026-12-07T10:00:00+00:00"}') == {"o-1": "2026-12-07T10:00:00+00:00"}
    assert orders_in({"o-1": "t"}) == {"o-1": "t"}
    for damaged in (None, "", "not json", "[1]", 7, {"o-1": 5}):
        assert orders_in(damaged) == {}
