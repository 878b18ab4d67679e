"""CreateOrderOperator, ProcessOrderOperator and DeleteOrderOperator without an Airflow DB."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest

from autoenhance_provider.exceptions import AutoenhanceAuthError
from autoenhance_provider.operators.order import (
    CreateOrderOperator,
    DeleteOrderOperator,
    ProcessOrderOperator,
    deterministic_order_id,
)
from support.api import APP_URL, ORDER_ID, api, body_of, image, order, path_of
from support.task import FakeTI, task_context

FAST = {"retry_limit": 0, "retry_delay": 0, "retry_max_delay": 0}

#: When the (fake) DAG run started, as the scheduler of one deployment recorded it.
STARTED = dt.datetime(2026, 1, 1, 0, 0, 5, 123456, tzinfo=dt.timezone.utc)


class FakeDagRun:
    def __init__(self, run_id: str, start_date: dt.datetime | None) -> None:
        self.run_id = run_id
        self.start_date = start_date


def context_for(ti: FakeTI, start_date: dt.datetime | None = STARTED) -> dict[str, Any]:
    return {"ti": ti, "task_instance": ti, "run_id": ti.run_id, "dag_run": FakeDagRun(ti.run_id, start_date)}


#: Pinned: a change of the namespace or of the key's recipe changes every derived order id, so a
#: task retried across an upgrade would create a second order. Change these only on purpose.
PINNED_TI = {
    "dag_id": "listing_dag",
    "run_id": "scheduled__2026-01-01T00:00:00+00:00",
    "task_id": "create_order",
}
PINNED_ID = "bda0e615-1ac9-5a59-b61b-c2af8dcb299f"
PINNED_ID_PROD_EU = "26e934f4-d654-5daf-9768-bc5c0122d05a"  # with order_id_namespace "prod-eu"


@pytest.fixture
def no_connection_lookup(monkeypatch):
    """Fail loudly if anything looks a connection up (e.g. during __init__)."""
    from autoenhance_provider.compat import BaseHook  # the provider hooks' base class

    def forbidden(*args, **kwargs):
        raise AssertionError("connection looked up")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(forbidden))


# ------------------------------------------------------------------------------ construction
def test_construction_needs_no_connection_and_no_network(monkeypatch, requests_mock, no_connection_lookup):
    monkeypatch.delenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", raising=False)

    op = CreateOrderOperator(task_id="create_order", name="Listing {{ ds }}")
    ProcessOrderOperator(task_id="process", order_id="o-1", enhance_type="warm")
    DeleteOrderOperator(task_id="delete", order_id="o-1")

    assert requests_mock.call_count == 0
    assert "hook" not in op.__dict__
    assert op.autoenhance_conn_id == "autoenhance_default"
    assert op.hook_params == {}


def test_template_fields():
    assert {"name", "order_id", "autoenhance_conn_id"} <= set(CreateOrderOperator.template_fields)
    assert {"order_id", "autoenhance_conn_id"} <= set(DeleteOrderOperator.template_fields)
    assert {"order_id", "settings", "autoenhance_conn_id"} <= set(ProcessOrderOperator.template_fields)


def test_hook_params_and_conn_id_reach_the_hook(set_connection):
    set_connection("autoenhance_other")
    op = CreateOrderOperator(
        task_id="t", autoenhance_conn_id="autoenhance_other", hook_params={"retry_limit": 2, "timeout": 7}
    )

    assert op.hook.autoenhance_conn_id == "autoenhance_other"
    assert op.hook.retry_policy.max_attempts == 3
    assert op.hook.timeout == (7.0, 7.0)


# ------------------------------------------------------------------------------ deterministic ids
def test_deterministic_id_is_pinned():
    assert deterministic_order_id(context_for(FakeTI(**PINNED_TI))) == PINNED_ID
    assert deterministic_order_id(context_for(FakeTI(**PINNED_TI)), "prod-eu") == PINNED_ID_PROD_EU


def test_the_documented_recipe_reproduces_the_pinned_ids():
    """docs/contract.md tells users how the id is made; this is that recipe, spelt out."""
    namespace = uuid.UUID("6f1c2a3e-7a7b-4f7e-9a55-0c9b8a4e2d11")
    key = (
        '["listing_dag","scheduled__2026-01-01T00:00:00+00:00","create_order",-1,'
        '"2026-01-01T00:00:05.123456+00:00"]'
    )
    assert str(uuid.uuid5(namespace, key)) == PINNED_ID
    key = '["namespace","prod-eu","listing_dag","scheduled__2026-01-01T00:00:00+00:00","create_order",-1]'
    assert str(uuid.uuid5(namespace, key)) == PINNED_ID_PROD_EU


def test_deterministic_id_is_a_stable_uuid_per_task_instance():
    first = deterministic_order_id(context_for(FakeTI(try_number=1)))
    retry = deterministic_order_id(context_for(FakeTI(try_number=2)))

    assert uuid.UUID(first).version == 5
    assert first == retry  # a retry re-finds its order


@pytest.mark.parametrize(
    "changed",
    [
        {"dag_id": "other"},
        {"run_id": "scheduled__x"},
        {"task_id": "other"},
        {"map_index": 0},
        {"map_index": 1},
    ],
)
def test_deterministic_id_differs_per_task_instance(changed):
    assert deterministic_order_id(context_for(FakeTI(**changed))) != deterministic_order_id(
        context_for(FakeTI())
    )


def test_two_deployments_running_the_same_schedule_get_different_ids():
    # Same DAG, same scheduled run id, same task: only the deployments' run start times differ.
    ours = deterministic_order_id(context_for(FakeTI(**PINNED_TI), STARTED))
    theirs = deterministic_order_id(context_for(FakeTI(**PINNED_TI), STARTED + dt.timedelta(microseconds=1)))
    assert ours != theirs


def test_two_deployments_with_their_own_namespace_get_different_ids():
    ti = FakeTI(**PINNED_TI)
    assert deterministic_order_id(context_for(ti), "prod-eu") != deterministic_order_id(
        context_for(ti), "prod-us"
    )


def test_a_namespace_keeps_the_id_when_a_finished_run_is_cleared():
    # Clearing a finished run restarts its clock (a new start_date); the namespace does not move.
    before = deterministic_order_id(context_for(FakeTI(), STARTED), "prod-eu")
    after = deterministic_order_id(context_for(FakeTI(), STARTED + dt.timedelta(hours=2)), "prod-eu")
    assert before == after == deterministic_order_id(context_for(FakeTI(), None), " prod-eu ")


def test_an_empty_namespace_counts_as_unset():
    assert deterministic_order_id(context_for(FakeTI(**PINNED_TI)), "  ") == PINNED_ID


def test_the_start_time_counts_as_an_instant_whatever_its_time_zone():
    cest = dt.timezone(dt.timedelta(hours=2))
    assert deterministic_order_id(context_for(FakeTI(**PINNED_TI), STARTED.astimezone(cest))) == PINNED_ID


def test_without_a_start_date_the_id_rests_on_the_task_instance_and_says_so(log_capture):
    first = deterministic_order_id(context_for(FakeTI(), None))
    assert first == deterministic_order_id({"ti": FakeTI(try_number=2)})  # no dag_run at all
    assert first != deterministic_order_id(context_for(FakeTI()))
    assert "order_id_namespace" in log_capture.text()


def test_deterministic_id_differs_across_map_indexes():
    ids = {deterministic_order_id(context_for(FakeTI(map_index=i))) for i in range(5)}
    assert len(ids) == 5


def test_map_index_none_counts_as_unmapped():
    assert deterministic_order_id(context_for(FakeTI(map_index=None))) == deterministic_order_id(
        context_for(FakeTI(map_index=-1))
    )


# ------------------------------------------------------------------------------ execute
def test_execute_creates_the_order_and_pushes_id_and_url(conn, requests_mock):
    ti = FakeTI(**PINNED_TI)
    expected_id = PINNED_ID
    requests_mock.post(
        api("/v3/orders/"), json=lambda r, c: order(r.json()["order_id"], name=r.json()["name"])
    )

    op = CreateOrderOperator(task_id="create_order", name="Listing 1")
    result = op.execute(context_for(ti))

    assert result == expected_id
    assert ti.xcoms == {
        "order_id": expected_id,
        "order_url": f"https://app.autoenhance.ai/orders/{expected_id}",
    }
    assert body_of(requests_mock.last_request) == {"name": "Listing 1", "order_id": expected_id}
    assert requests_mock.call_count == 1


def test_the_connection_namespace_goes_into_the_id(set_connection, requests_mock):
    set_connection(extra='{"order_id_namespace": "prod-eu"}')
    requests_mock.post(api("/v3/orders/"), json=lambda r, c: order(r.json()["order_id"]))

    result = CreateOrderOperator(task_id="create_order").execute(context_for(FakeTI(**PINNED_TI)))

    assert result == PINNED_ID_PROD_EU


def test_retry_whose_post_conflicts_reuses_the_order(conn, requests_mock):
    created: dict[str, dict] = {}

    def create(request, context):
        body = request.json()
        if body["order_id"] in created:
            context.status_code = 409
            return {"message": "Conflict", "detail": {}}
        created[body["order_id"]] = order(body["order_id"], name=body.get("name"))
        return created[body["order_id"]]

    requests_mock.post(api("/v3/orders/"), json=create)
    requests_mock.get(
        re.compile(api("/v3/orders/") + "[^/]+$"),
        json=lambda r, c: created[path_of(r).rsplit("/", 1)[-1]],
    )
    op = CreateOrderOperator(task_id="create_order", name="Listing 1")

    first = op.execute(context_for(FakeTI(try_number=1)))
    retry_ti = FakeTI(try_number=2)
    second = CreateOrderOperator(task_id="create_order", name="Listing 1").execute(context_for(retry_ti))

    assert first == second
    assert list(created) == [first]  # nothing new was created
    methods = [(r.method, path_of(r)) for r in requests_mock.request_history]
    assert methods == [("POST", "/v3/orders/"), ("POST", "/v3/orders/"), ("GET", f"/v3/orders/{first}")]
    assert retry_ti.xcoms["order_id"] == first


def test_explicit_order_id_is_honoured(conn, requests_mock):
    requests_mock.post(api("/v3/orders/"), json=order("client-chosen-1"))
    ti = FakeTI()

    result = CreateOrderOperator(task_id="t", order_id="client-chosen-1").execute(context_for(ti))

    assert result == "client-chosen-1"
    assert body_of(requests_mock.last_request) == {"order_id": "client-chosen-1"}
    assert ti.xcoms["order_url"] == "https://app.autoenhance.ai/orders/client-chosen-1"


def test_explicit_existing_order_id_is_reused(conn, requests_mock):
    requests_mock.post(api("/v3/orders/"), status_code=409, json={"message": "Conflict"})
    requests_mock.get(api("/v3/orders/existing"), json=order("existing"))

    assert CreateOrderOperator(task_id="t", order_id="existing").execute(context_for(FakeTI())) == "existing"


def test_server_assigned_id_wins_and_is_pushed(conn, requests_mock):
    requests_mock.post(api("/v3/orders/"), json=order("server-id"))
    ti = FakeTI()

    assert CreateOrderOperator(task_id="t").execute(context_for(ti)) == "server-id"
    assert ti.xcoms["order_id"] == "server-id"


def test_permanent_errors_propagate(conn, requests_mock):
    requests_mock.post(api("/v3/orders/"), status_code=401, json={"message": "Unauthorized"})
    ti = FakeTI()

    with pytest.raises(AutoenhanceAuthError):
        CreateOrderOperator(task_id="t").execute(context_for(ti))
    assert ti.pushes == []


def test_map_index_label_is_set(conn, requests_mock):
    requests_mock.post(api("/v3/orders/"), json=lambda r, c: order(r.json()["order_id"]))
    ctx = context_for(FakeTI(map_index=3))

    CreateOrderOperator(task_id="t", name="Listing 3").execute(ctx)

    assert ctx["autoenhance_label"] == "Listing 3"


# ------------------------------------------------------------------------------ delete
def test_delete_order_operator(conn, requests_mock):
    requests_mock.delete(api("/v3/orders/o-1"), status_code=204)

    assert DeleteOrderOperator(task_id="d", order_id="o-1").execute(context_for(FakeTI())) is None
    assert requests_mock.last_request.method == "DELETE"


def test_delete_order_operator_is_idempotent_on_404(conn, requests_mock):
    requests_mock.delete(api("/v3/orders/o-1"), status_code=404, json={"message": "Not Found", "detail": {}})

    assert DeleteOrderOperator(task_id="d", order_id="o-1").execute(context_for(FakeTI())) is None
    assert requests_mock.call_count == 1


def test_delete_order_operator_other_errors_fail(conn, requests_mock):
    requests_mock.delete(api("/v3/orders/o-1"), status_code=403, json={"message": "Forbidden"})

    with pytest.raises(AutoenhanceAuthError):
        DeleteOrderOperator(task_id="d", order_id="o-1").execute(context_for(FakeTI()))


# ------------------------------------------------------------------------------ process
@pytest.mark.parametrize(
    "state",
    [{"is_merging": True}, {"images": [image("i-1", "processing")]}],
    ids=["merging", "has-images"],
)
def test_process_order_operator_skips_an_order_already_started(conn, requests_mock, state):
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1", **state))
    process = requests_mock.post(api("/v3/orders/o-1/process"), json={})
    ti = FakeTI(task_id="process")

    result = ProcessOrderOperator(task_id="process", order_id="o-1", number_of_brackets_per_image=3).execute(
        context_for(ti)
    )

    assert result == "o-1"
    assert process.call_count == 0
    assert ti.xcoms == {"order_id": "o-1", "order_url": "https://app.autoenhance.ai/orders/o-1"}


def test_process_order_operator_starts_a_fresh_order(conn, requests_mock):
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1"))
    requests_mock.post(api("/v3/orders/o-1/process"), json=order("o-1", is_merging=True))

    ProcessOrderOperator(
        task_id="process",
        order_id="o-1",
        number_of_brackets_per_image=3,
        enhance_type="WARM",
        settings={"sky_replacement": True},
    ).execute(context_for(FakeTI()))

    assert body_of(requests_mock.last_request) == {
        "sky_replacement": True,
        "enhance_type": "warm",
        "number_of_brackets_per_image": 3,
    }


def test_process_order_operator_resolves_bracket_names(conn, requests_mock):
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1"))
    requests_mock.get(
        api("/v3/orders/o-1/brackets"),
        json={
            "brackets": [
                {"bracket_id": "b-0", "name": "ev-2.jpg", "is_uploaded": False},  # left by a re-sent create
                {"bracket_id": "b-1", "name": "ev-2.jpg", "is_uploaded": True},
                {"bracket_id": "b-2", "name": "ev0.jpg", "is_uploaded": True},
            ]
        },
    )
    requests_mock.post(api("/v3/orders/o-1/process"), json=order("o-1", is_merging=True))

    ProcessOrderOperator(task_id="p", order_id="o-1", bracket_groups=[["ev-2.jpg", "b-2"]]).execute(
        context_for(FakeTI())
    )

    assert body_of(requests_mock.last_request) == {"images": [{"bracket_ids": ["b-1", "b-2"]}]}


# ------------------------------------------------------------------------------ process / delete
def test_process_resolves_bracket_names_to_ids(conn, requests_mock):
    requests_mock.get(api(f"/v3/orders/{ORDER_ID}"), json=order(ORDER_ID))
    requests_mock.get(
        api(f"/v3/orders/{ORDER_ID}/brackets"),
        json={
            "brackets": [
                {"bracket_id": "br-1", "name": "a-1.jpg", "is_uploaded": True},
                {"bracket_id": "br-2", "name": "a-2.jpg", "is_uploaded": True},
                {"bracket_id": "br-3", "name": "b-1.jpg", "is_uploaded": True},
            ]
        },
    )
    process = requests_mock.post(api(f"/v3/orders/{ORDER_ID}/process"), json=order(ORDER_ID, is_merging=True))
    ti = FakeTI()

    result = ProcessOrderOperator(
        task_id="process",
        order_id=ORDER_ID,
        bracket_groups=[["a-1.jpg", "a-2.jpg"], ["br-3"]],
        enhance_type="neutral",
        hook_params=FAST,
    ).execute(task_context(ti))

    assert result == ORDER_ID
    body = process.last_request.json()
    assert body["images"] == [{"bracket_ids": ["br-1", "br-2"]}, {"bracket_ids": ["br-3"]}]
    assert body["enhance_type"] == "neutral"
    assert "number_of_brackets_per_image" not in body
    assert ti.xcoms["order_url"] == f"{APP_URL}/orders/{ORDER_ID}"


def test_process_with_number_of_brackets_per_image(conn, requests_mock):
    requests_mock.get(api(f"/v3/orders/{ORDER_ID}"), json=order(ORDER_ID))
    process = requests_mock.post(api(f"/v3/orders/{ORDER_ID}/process"), json=order(ORDER_ID, is_merging=True))

    ProcessOrderOperator(
        task_id="process", order_id=ORDER_ID, number_of_brackets_per_image=3, hook_params=FAST
    ).execute(task_context())

    assert process.last_request.json() == {"number_of_brackets_per_image": 3}


@pytest.mark.parametrize(
    "state",
    [{"is_merging": True}, {"images": [image("img-1", "processing")], "is_processing": True}],
    ids=["merging", "images"],
)
def test_process_is_skipped_when_already_started(conn, requests_mock, state):
    requests_mock.get(api(f"/v3/orders/{ORDER_ID}"), json=order(ORDER_ID, **state))

    ProcessOrderOperator(task_id="process", order_id=ORDER_ID, hook_params=FAST).execute(task_context())

    assert [r.method for r in requests_mock.request_history] == ["GET"]


@pytest.mark.parametrize("status", [204, 404])
def test_delete_succeeds_when_gone(conn, requests_mock, status):
    requests_mock.delete(api(f"/v3/orders/{ORDER_ID}"), status_code=status, json={"message": "Not Found"})
    requests_mock.get(api(f"/v3/orders/{ORDER_ID}"), status_code=404, json={"message": "Not Found"})

    DeleteOrderOperator(task_id="delete", order_id=ORDER_ID, hook_params=FAST).execute(task_context())

    assert [path_of(r.url) for r in requests_mock.request_history if r.method == "DELETE"] == [
        f"/v3/orders/{ORDER_ID}"
    ]
