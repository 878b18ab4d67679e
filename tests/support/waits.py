"""Running an OrderProcessedSensor or an AutoenhanceOrderTrigger to its end, without a DB or a triggerer.

The scripted ``GET /v3/orders/<id>`` they poll is the ``api`` fixture of tests/unit/conftest.py.
"""

from __future__ import annotations

import asyncio
import time

try:  # Airflow >= 3.1
    from airflow.sdk import timezone
    from airflow.sdk.exceptions import AirflowRescheduleException, TaskDeferred
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowRescheduleException, TaskDeferred  # type: ignore[no-redef]
    from airflow.utils import timezone  # type: ignore[no-redef]
from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor
from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger
from support.api import ORDER_ID
from support.task import FakeTI, task_context

MODES = ["poke", "reschedule", "deferrable"]
SENSOR_FAST = {"retry_limit": 0, "retry_delay": 0, "retry_max_delay": 0}
TRIGGER_FAST = {"retry_delay": 0, "retry_max_delay": 0}


def make_sensor(mode: str, **kwargs) -> OrderProcessedSensor:
    kwargs.setdefault("task_id", "wait_for_order")
    kwargs.setdefault("order_id", ORDER_ID)
    kwargs.setdefault("poke_interval", 0.01)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("hook_params", dict(SENSOR_FAST))
    if mode == "deferrable":
        return OrderProcessedSensor(deferrable=True, **kwargs)
    return OrderProcessedSensor(mode=mode, deferrable=False, **kwargs)


async def _first_event(trigger: AutoenhanceOrderTrigger):
    async def first():
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(first(), timeout=10)


def run_sensor(mode: str, ti: FakeTI | None = None, *, max_rounds: int = 200, **kwargs):
    """Run a sensor to its end the way Airflow would, without a DB or a triggerer.

    reschedule: a fresh sensor object per attempt (a new worker process), with time moved on
    by the reschedule interval; deferrable: the trigger runs to its event and the task resumes
    through ``resume_execution`` (where Airflow applies soft_fail).
    """
    ti = ti or FakeTI()
    for _ in range(max_rounds):
        sensor = make_sensor(mode, **kwargs)
        context = task_context(ti)
        try:
            return sensor.execute(context), ti
        except AirflowRescheduleException as exc:
            now = timezone.utcnow()
            ti.first_reschedule_date = (ti.first_reschedule_date or now) - (exc.reschedule_date - now)
        except TaskDeferred as deferred:
            event = asyncio.run(_first_event(deferred.trigger))
            resumed = make_sensor(mode, **kwargs)
            next_kwargs = {**(deferred.kwargs or {}), "event": event.payload}
            return resumed.resume_execution(deferred.method_name, next_kwargs, task_context(ti)), ti
    raise AssertionError("the sensor never finished")


def make_trigger(**kwargs) -> AutoenhanceOrderTrigger:
    kwargs.setdefault("order_id", ORDER_ID)
    kwargs.setdefault("poll_interval", 0.01)
    kwargs.setdefault("end_time", time.time() + 60)
    kwargs.setdefault("hook_params", dict(TRIGGER_FAST))
    return AutoenhanceOrderTrigger(**kwargs)


async def all_events(trigger: AutoenhanceOrderTrigger, limit: float = 10.0) -> list:
    async def collect():
        return [event async for event in trigger.run()]

    return await asyncio.wait_for(collect(), timeout=limit)
