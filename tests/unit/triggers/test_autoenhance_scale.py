"""What keeps waiting cheap at scale: no duplicate first poll, many triggers on one HTTP client.

How hooks share that client: tests/unit/http/test_aio.py; connection lookups shared:
tests/unit/hooks/test_autoenhance_async.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger
from support.aio import Reply
from support.api import ORDER_ID, OrderScript, done_order, processing_order
from support.waits import TRIGGER_FAST as FAST


async def events_of(trigger: AutoenhanceOrderTrigger) -> list[dict]:
    async def collect():
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(collect(), timeout=10)


# ------------------------------------------------------------------------------ first_poll_at
def test_the_sensor_defers_with_the_first_poll_one_interval_after_its_check(conn, requests_mock):
    try:  # Airflow >= 3.2
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow 3.0, 3.1
        from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

    from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

    requests_mock.get(f"https://api.autoenhance.test/v3/orders/{ORDER_ID}", json=processing_order())
    sensor = OrderProcessedSensor(task_id="wait", order_id=ORDER_ID, deferrable=True, poke_interval=30)
    ti = type("TI", (), {"xcom_push": lambda self, key, value: None})()
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({"ti": ti})
    trigger = info.value.trigger
    assert before + 30 <= trigger.first_poll_at <= time.time() + 30
    assert trigger.serialize()[1]["first_poll_at"] == trigger.first_poll_at
    assert requests_mock.call_count == 1  # the sensor's own check


async def test_no_poll_before_first_poll_at(conn, aio_api):
    seen_at: list[float] = []
    script = OrderScript(done_order())

    def handler(request):
        seen_at.append(time.time())
        return script.handler(request)

    aio_api(handler)
    start = time.time()
    trigger = AutoenhanceOrderTrigger(
        order_id=ORDER_ID, poll_interval=30, end_time=start + 60, first_poll_at=start + 0.3, hook_params=FAST
    )
    events = await events_of(trigger)
    assert [e["status"] for e in events] == ["success"]
    assert len(seen_at) == 1
    assert seen_at[0] >= start + 0.3


async def test_first_poll_at_after_the_deadline_polls_at_the_deadline(conn, aio_api):
    seen = aio_api(OrderScript(processing_order()).handler)
    start = time.time()
    trigger = AutoenhanceOrderTrigger(
        order_id=ORDER_ID,
        poll_interval=30,
        end_time=start + 0.2,
        first_poll_at=start + 3600,
        hook_params=FAST,
    )
    events = await events_of(trigger)
    assert [e["status"] for e in events] == ["timeout"]
    assert len(seen) == 1
    assert time.time() - start < 5


async def test_first_poll_at_in_the_past_polls_at_once(conn, aio_api):
    seen = aio_api(OrderScript(done_order()).handler)
    trigger = AutoenhanceOrderTrigger(
        order_id=ORDER_ID, poll_interval=30, first_poll_at=time.time() - 100, hook_params=FAST
    )
    start = time.monotonic()
    assert [e["status"] for e in await events_of(trigger)] == ["success"]
    assert len(seen) == 1
    assert time.monotonic() - start < 2


# ------------------------------------------------------------------------------ shared client
async def test_many_triggers_share_one_client_and_all_finish(conn, aio_api):
    created: list[object] = []
    calls = {"n": 0}

    def handler(request):
        calls["n"] += 1  # every trigger sees "processing" once, so all of them hold the client
        return Reply(200, processing_order() if calls["n"] <= 50 else done_order())

    seen = aio_api(handler)
    # count the sessions the hook builds (the fixture replaced new_async_session already)
    import autoenhance_provider.http.aio as module

    patched = module.new_async_session

    def counting(*args, **kwargs):
        session = patched(*args, **kwargs)
        created.append(session)
        return session

    module.new_async_session = counting
    try:
        triggers = [
            AutoenhanceOrderTrigger(order_id=ORDER_ID, poll_interval=0.01, hook_params=FAST)
            for _ in range(50)
        ]
        results = await asyncio.gather(*(events_of(t) for t in triggers))
    finally:
        module.new_async_session = patched
    assert all([e["status"] for e in events] == ["success"] for events in results)
    assert len(seen) == 100
    assert len(created) == 1
    assert created[0].closed
