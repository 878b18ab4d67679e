"""AutoenhanceOrderTrigger: serialization, ``run()`` over HTTP answered in process (the ``aio_api`` fixture),
the webhook-driven wait. Its hook: tests/unit/hooks/test_autoenhance_async.py."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from unittest import mock

import pytest

from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook
from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger
from support.aio import Reply
from support.api import (
    BASE_URL,
    CONNECT_ERROR,
    FAKE_KEY,
    ORDER_ID,
    READ_TIMEOUT,
    OrderScript,
    Status,
    done_order,
    failed_order,
    processing_order,
)
from support.waits import TRIGGER_FAST as FAST
from support.waits import all_events, make_trigger

CLASSPATH = "autoenhance_provider.triggers.autoenhance.AutoenhanceOrderTrigger"


# ------------------------------------------------------------------------------ serialization
def test_serialize_round_trip_is_plain_json():
    trigger = AutoenhanceOrderTrigger(
        order_id=ORDER_ID,
        autoenhance_conn_id="ae_conn",
        poll_interval=12.5,
        end_time=1_900_000_000.25,
        error_budget=7,
        hook_params={"retry_limit": 2, "timeout": [3, 30]},
        errors_in_a_row=2,
    )
    classpath, kwargs = trigger.serialize()

    assert classpath == CLASSPATH
    assert kwargs == {
        "order_id": ORDER_ID,
        "autoenhance_conn_id": "ae_conn",
        "poll_interval": 12.5,
        "end_time": 1_900_000_000.25,
        "error_budget": 7,
        "hook_params": {"retry_limit": 2, "timeout": [3, 30]},
        "first_poll_at": None,
        "errors_in_a_row": 2,
        "webhook": None,
        "webhook_check_interval": 15.0,
    }
    # What the triggerer stores is plain JSON, and it rebuilds an equal trigger.
    restored = json.loads(json.dumps(kwargs))
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**restored)
    assert isinstance(rebuilt, AutoenhanceOrderTrigger)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_serialize_without_deadline():
    _, kwargs = AutoenhanceOrderTrigger(order_id=ORDER_ID).serialize()
    assert kwargs["end_time"] is None
    assert json.loads(json.dumps(kwargs)) == kwargs


def test_creating_a_trigger_touches_neither_network_nor_connection(monkeypatch):
    from autoenhance_provider.compat import BaseHook  # the provider hooks' base class

    monkeypatch.setattr(BaseHook, "get_connection", mock.Mock(side_effect=AssertionError("lookup")))
    if hasattr(BaseHook, "aget_connection"):  # Airflow >= 3.1 (3.0 has only get_connection)
        monkeypatch.setattr(BaseHook, "aget_connection", mock.AsyncMock(side_effect=AssertionError("lookup")))
    trigger = AutoenhanceOrderTrigger(order_id=ORDER_ID)
    trigger.serialize()


# ------------------------------------------------------------------------------ run(), over HTTP
async def test_success_event(conn, aio_api):
    script = OrderScript(processing_order(), done_order())
    seen = aio_api(script.handler)

    events = await all_events(make_trigger())

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert payload["order_id"] == ORDER_ID
    assert payload["progress"]["total"] == 2
    assert payload["progress"]["processed"] == 2
    assert payload["progress"]["failed"] == []
    assert len(seen) == 2
    json.dumps(payload)  # small and JSON-able


async def test_images_in_error_give_a_failed_event(conn, aio_api):
    aio_api(OrderScript(failed_order()).handler)

    (event,) = await all_events(make_trigger())

    assert event.payload["status"] == "failed"
    (failure,) = event.payload["progress"]["failed"]
    assert failure["image_name"] == "garden.jpg"
    assert failure["image_id"] == "img-2"
    assert failure["status"] == "error"
    assert failure["status_reason"] == "Duplicate file name limit reached"


@pytest.mark.parametrize(
    "transient", [Status(503), CONNECT_ERROR, READ_TIMEOUT], ids=["503", "connect-error", "read-timeout"]
)
async def test_transient_errors_within_budget_then_success(conn, aio_api, transient):
    script = OrderScript(processing_order(), transient, transient, done_order())
    aio_api(script.handler)
    trigger = make_trigger(error_budget=3, hook_params={**FAST, "retry_limit": 0})

    (event,) = await all_events(trigger)

    assert event.payload["status"] == "success"
    assert script.count == 4


async def test_client_retries_hide_a_blip_from_the_budget(conn, aio_api):
    script = OrderScript(Status(502), Status(503), done_order())
    aio_api(script.handler)

    (event,) = await all_events(make_trigger(error_budget=1, hook_params={**FAST, "retry_limit": 2}))

    assert event.payload["status"] == "success"
    assert script.count == 3


async def test_error_budget_exhausted_gives_an_error_event(conn, aio_api):
    script = OrderScript(processing_order(), Status(503))
    aio_api(script.handler)
    trigger = make_trigger(error_budget=3, hook_params={**FAST, "retry_limit": 1})

    (event,) = await all_events(trigger)

    assert event.payload["status"] == "error"
    assert event.payload["status_code"] == 503
    assert event.payload["order_id"] == ORDER_ID
    # one good poll, then 3 failed polls of 2 attempts each
    assert script.count == 1 + 3 * 2
    json.dumps(event.payload)


async def test_connection_errors_exhaust_the_budget_too(conn, aio_api):
    aio_api(OrderScript(CONNECT_ERROR).handler)

    (event,) = await all_events(make_trigger(error_budget=2, hook_params={**FAST, "retry_limit": 0}))

    assert event.payload["status"] == "error"
    assert event.payload["status_code"] is None
    assert "ClientConnectorError" in event.payload["message"]


async def test_unknown_order_gives_an_error_event_with_404(conn, aio_api):
    script = OrderScript(Status(404, {"message": "Not Found", "detail": {}}))
    aio_api(script.handler)

    (event,) = await all_events(make_trigger())

    assert event.payload["status"] == "error"
    assert event.payload["status_code"] == 404
    assert event.payload["path"] == f"/v3/orders/{ORDER_ID}"
    assert script.count == 1  # a 404 is not retried


async def test_end_time_in_the_past_gives_a_timeout_event(conn, aio_api):
    aio_api(OrderScript(processing_order()).handler)

    (event,) = await all_events(make_trigger(end_time=time.time() - 5))

    assert event.payload["status"] == "timeout"
    assert ORDER_ID in event.payload["message"]


async def test_order_done_at_the_deadline_still_counts_as_success(conn, aio_api):
    aio_api(OrderScript(done_order()).handler)

    (event,) = await all_events(make_trigger(end_time=time.time() - 5))

    assert event.payload["status"] == "success"


async def test_deadline_reached_while_polling(conn, aio_api):
    script = OrderScript(processing_order())
    aio_api(script.handler)
    started = time.monotonic()

    (event,) = await all_events(make_trigger(end_time=time.time() + 0.2, poll_interval=0.02))

    assert event.payload["status"] == "timeout"
    assert script.count > 2
    assert 0.15 < time.monotonic() - started < 5


async def test_sleep_is_cut_short_to_honour_the_deadline(conn, aio_api):
    """A long poll interval must not overshoot the deadline by a whole interval."""
    aio_api(OrderScript(processing_order()).handler)
    started = time.monotonic()

    (event,) = await all_events(make_trigger(end_time=time.time() + 0.2, poll_interval=3600))

    assert event.payload["status"] == "timeout"
    assert time.monotonic() - started < 5


async def test_exactly_one_event_then_the_generator_stops(conn, aio_api):
    aio_api(OrderScript(done_order()).handler)
    generator = make_trigger().run()

    first = await generator.__anext__()
    assert first.payload["status"] == "success"
    with pytest.raises(StopAsyncIteration):
        await generator.__anext__()


async def test_not_done_while_the_order_is_processing(conn, aio_api):
    script = OrderScript(processing_order())
    aio_api(script.handler)

    task = asyncio.create_task(make_trigger().run().__anext__())
    await asyncio.sleep(0.3)

    assert not task.done()
    assert script.count >= 2  # it keeps polling
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_merging_or_empty_orders_are_not_done(conn, aio_api):
    script = OrderScript(
        processing_order() | {"is_merging": True, "images": []},
        processing_order() | {"images": [], "is_processing": False},
        done_order(),
    )
    aio_api(script.handler)

    (event,) = await all_events(make_trigger())

    assert event.payload["status"] == "success"
    assert script.count == 3


async def test_trigger_is_read_only(conn, aio_api):
    script = OrderScript(processing_order(), Status(503), processing_order(), failed_order())
    seen = aio_api(script.handler)

    (event,) = await all_events(make_trigger(hook_params={**FAST, "retry_limit": 0}))

    assert event.payload["status"] == "failed"
    assert {request.method for request in seen} == {"GET"}
    assert {request.url.path for request in seen} == {f"/v3/orders/{ORDER_ID}"}


async def test_unexpected_exception_still_ends_in_one_error_event(conn, monkeypatch):
    monkeypatch.setattr(AutoenhanceAsyncHook, "get_order", mock.AsyncMock(side_effect=RuntimeError("boom")))

    (event,) = await all_events(make_trigger())

    assert event.payload["status"] == "error"
    assert "RuntimeError: boom" in event.payload["message"]


async def test_trigger_with_patched_hook_passes_hook_params(monkeypatch):
    import autoenhance_provider.triggers.autoenhance as trigger_module

    hook = mock.AsyncMock()
    hook.get_order.side_effect = [processing_order(), done_order()]
    hook_class = mock.Mock(return_value=hook)
    monkeypatch.setattr(trigger_module, "AutoenhanceAsyncHook", hook_class)

    trigger = make_trigger(autoenhance_conn_id="other_conn", hook_params={"retry_limit": 1, "timeout": 5})
    (event,) = await all_events(trigger)

    assert event.payload["status"] == "success"
    hook_class.assert_called_once_with("other_conn", retry_limit=1, timeout=5)
    assert hook.get_order.await_args_list == [mock.call(ORDER_ID), mock.call(ORDER_ID)]
    hook.aclose.assert_awaited_once()


async def test_the_client_is_closed_when_the_trigger_ends(conn, aio_api, monkeypatch):
    aio_api(OrderScript(done_order()).handler)
    closed = mock.AsyncMock()
    real_close = AutoenhanceAsyncHook.aclose

    async def aclose(self):
        await closed()
        await real_close(self)

    monkeypatch.setattr(AutoenhanceAsyncHook, "aclose", aclose)

    await all_events(make_trigger())

    closed.assert_awaited_once()


# ------------------------------------------------------------------------------ webhook-driven wait
def minute_key(when=None) -> str:
    from datetime import datetime, timezone

    return "finished:" + (when or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M")


def iso(age: float = 0.0) -> str:
    from datetime import datetime, timedelta, timezone

    return (datetime.now(timezone.utc) - timedelta(seconds=age)).isoformat()


class FakeStateStore:
    """Stands in for ``AssetStateStoreAccessor``: the receiver's minute entries, every read counted.

    ``finish(order_id, at_check=n)``: the order is noted in the current minute's entry once the
    watcher has made ``n`` checks (a check reads the current minute's key last).
    """

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, str]] = {}
        self.reads: list[tuple[str | None, str]] = []
        self.checks = 0
        self.fail: Exception | None = None
        self.scheduled: dict[str, tuple[int, str]] = {}

    def finish(self, order_id: str = ORDER_ID, *, at_check: int = 0, age: float = 0.0) -> None:
        self.scheduled[order_id] = (at_check, iso(age))
        self._apply()

    def _apply(self) -> None:
        for order_id, (at_check, finished_at) in list(self.scheduled.items()):
            if self.checks >= at_check:
                self.entries.setdefault(minute_key(), {})[order_id] = finished_at
                del self.scheduled[order_id]

    def accessor_class(self):
        store = self

        class Accessor:
            def __init__(self, *, name: str | None = None, uri: str | None = None) -> None:
                self.name = name

            async def aget(self, key: str, default=None):
                store.reads.append((self.name, key))
                if store.fail is not None:
                    raise store.fail
                value = store.entries.get(key, default)
                if key == minute_key():
                    store.checks += 1
                    store._apply()
                return value

        return Accessor


@pytest.fixture
def state_store(monkeypatch) -> FakeStateStore:
    import airflow.sdk.execution_time.context as context_module

    store = FakeStateStore()
    monkeypatch.setattr(context_module, "AssetStateStoreAccessor", store.accessor_class(), raising=False)
    return store


def webhook_trigger(**kwargs) -> AutoenhanceOrderTrigger:
    """As the sensor defers with ``webhook``: it has just polled, the safety poll is far away."""
    kwargs.setdefault("webhook", "default")
    kwargs.setdefault("webhook_check_interval", 0.01)
    kwargs.setdefault("poll_interval", 30.0)
    kwargs.setdefault("first_poll_at", time.time() + kwargs["poll_interval"])
    return make_trigger(**kwargs)


def test_serialize_keeps_the_webhook():
    trigger = AutoenhanceOrderTrigger(order_id=ORDER_ID, webhook="agency_b", webhook_check_interval=5)
    classpath, kwargs = trigger.serialize()
    assert (kwargs["webhook"], kwargs["webhook_check_interval"]) == ("agency_b", 5.0)
    rebuilt = AutoenhanceOrderTrigger(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)


async def test_webhook_note_ends_the_wait_with_one_poll(conn, aio_api, state_store):
    state_store.finish(at_check=3)
    seen = aio_api(OrderScript(done_order()).handler)

    events = await all_events(webhook_trigger())  # the safety poll is 30 s away: not waited for

    assert [e.payload["status"] for e in events] == ["success"]
    assert len(seen) == 1  # polled once, as soon as the note appeared: the poll decided
    assert state_store.checks >= 4
    assert {name for name, _ in state_store.reads} == {"autoenhance/default/order_finished"}
    assert all(key.startswith("finished:") for _, key in state_store.reads)


async def test_named_webhook_reads_its_own_account_asset(conn, aio_api, state_store):
    state_store.finish()
    aio_api(OrderScript(done_order()).handler)
    events = await all_events(webhook_trigger(webhook="agency_b"))
    assert events[0].payload["status"] == "success"
    assert {name for name, _ in state_store.reads} == {"autoenhance/agency_b/order_finished"}


async def test_many_waits_share_the_reads(conn, aio_api, state_store, monkeypatch):
    """One read per minute entry and check for all waits: not one read per waiting order."""
    # Without the request-rate pacing (tests/unit/test_ratelimit.py): its few ms per poll would
    # let the 10 ms checks run more often than the polls this test counts them against.
    conn = {
        "conn_type": "autoenhance",
        "password": FAKE_KEY,
        "host": BASE_URL,
        "extra": {"max_requests_per_second": 0},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(conn))
    ids = [f"order-{i}" for i in range(40)]
    for order_id in ids:
        state_store.finish(order_id, at_check=2)
    seen = aio_api(
        lambda request: Reply(200, json={**done_order(), "order_id": str(request.url).rsplit("/", 1)[1]})
    )

    async def everything():
        return await asyncio.gather(*(all_events(webhook_trigger(order_id=oid)) for oid in ids))

    results = await everything()

    assert [events[0].payload["status"] for events in results] == ["success"] * len(ids)
    assert len(seen) == len(ids)  # one poll per order, the one its note asked for
    assert len(state_store.reads) < len(ids)


async def test_no_note_means_only_safety_polls(conn, aio_api, state_store):
    script = OrderScript(processing_order(), processing_order(), done_order())
    seen = aio_api(script.handler)

    events = await all_events(webhook_trigger(poll_interval=0.1, first_poll_at=None))

    assert events[0].payload["status"] == "success"
    assert len(seen) == 3  # at start, then one per safety interval
    assert state_store.checks >= 3  # read between polls, never a reason to poll


async def test_other_orders_notes_do_not_hurry_this_wait(conn, aio_api, state_store):
    state_store.finish("another-order")
    seen = aio_api(OrderScript(processing_order()).handler)
    events = await all_events(webhook_trigger(end_time=time.time() + 0.3))
    assert events[0].payload["status"] == "timeout"
    assert len(seen) == 1  # only the poll at the deadline
    assert state_store.checks > 1


async def test_note_before_the_api_agrees_gets_bounded_follow_ups(conn, aio_api, state_store):
    """A note for an order still processing: poll now and twice more, then only safety polls."""
    from autoenhance_provider.triggers.autoenhance import WEBHOOK_FOLLOW_UPS

    state_store.finish()
    seen = aio_api(OrderScript(processing_order()).handler)

    events = await all_events(webhook_trigger(end_time=time.time() + 0.6))

    assert events[0].payload["status"] == "timeout"
    # at once + follow-ups + the poll at the deadline; the same note never counts twice
    assert len(seen) == 1 + WEBHOOK_FOLLOW_UPS + 1
    assert state_store.checks > len(seen)


async def test_follow_up_poll_finds_the_order_done(conn, aio_api, state_store):
    state_store.finish()
    seen = aio_api(OrderScript(processing_order(), done_order()).handler)
    events = await all_events(webhook_trigger())
    assert events[0].payload["status"] == "success"
    assert len(seen) == 2


async def test_note_of_an_earlier_finish_is_ignored(conn, aio_api, state_store):
    """Images added to a finished order: its old note must not end (or hurry) the new wait."""
    state_store.finish(age=3600)
    seen = aio_api(OrderScript(processing_order()).handler)

    events = await all_events(webhook_trigger(end_time=time.time() + 0.3))

    assert events[0].payload["status"] == "timeout"
    assert len(seen) == 1  # only the poll at the deadline
    assert state_store.checks > 1


async def test_unreadable_store_falls_back_to_plain_polling(conn, aio_api, state_store, monkeypatch):
    import autoenhance_provider.triggers.autoenhance as trigger_module

    monkeypatch.setattr(trigger_module, "DEFAULT_POLL_INTERVAL", 0.05)  # the plain pace, shortened
    state_store.fail = RuntimeError("execution API unavailable")
    seen = aio_api(OrderScript(processing_order(), processing_order(), done_order()).handler)

    events = await all_events(webhook_trigger(poll_interval=300.0))  # safety poll: 5 minutes

    assert [e.payload["status"] for e in events] == ["success"]
    assert len(seen) == 3  # polled at the plain pace, not every 5 minutes
    assert len(state_store.reads) == 1  # one failed read turns the watch off


async def test_airflow_without_a_state_store_polls(conn, aio_api, monkeypatch):
    """Airflow 3.0 to 3.2: no AssetStateStoreAccessor to import."""
    import airflow.sdk.execution_time.context as context_module

    import autoenhance_provider.triggers.autoenhance as trigger_module

    monkeypatch.delattr(context_module, "AssetStateStoreAccessor", raising=False)
    monkeypatch.setattr(trigger_module, "DEFAULT_POLL_INTERVAL", 0.05)
    seen = aio_api(OrderScript(processing_order(), done_order()).handler)

    events = await all_events(webhook_trigger(poll_interval=300.0))

    assert [e.payload["status"] for e in events] == ["success"]
    assert len(seen) == 2


async def test_outside_a_triggerer_the_real_accessor_fails_and_the_wait_polls(conn, aio_api, monkeypatch):
    """The real accessor with no supervisor to talk to: any error means plain polling."""
    import autoenhance_provider.triggers.autoenhance as trigger_module

    monkeypatch.setattr(trigger_module, "DEFAULT_POLL_INTERVAL", 0.05)
    seen = aio_api(OrderScript(processing_order(), done_order()).handler)
    events = await all_events(webhook_trigger(poll_interval=300.0))
    assert [e.payload["status"] for e in events] == ["success"]
    assert len(seen) == 2


async def test_webhook_wait_stays_read_only_and_emits_one_event(conn, aio_api, state_store):
    state_store.finish(at_check=2)
    seen = aio_api(OrderScript(failed_order()).handler)
    events = await all_events(webhook_trigger())
    assert [e.payload["status"] for e in events] == ["failed"]
    assert {request.method for request in seen} == {"GET"}


async def test_a_finished_wait_leaves_the_watcher(conn, aio_api, state_store):
    from autoenhance_provider.triggers.autoenhance import _AccountWatcher

    state_store.finish()
    aio_api(OrderScript(done_order()).handler)
    await all_events(webhook_trigger())
    watchers = _AccountWatcher._by_loop.get(asyncio.get_running_loop(), {})
    assert all(not watcher.waiters for watcher in watchers.values())
