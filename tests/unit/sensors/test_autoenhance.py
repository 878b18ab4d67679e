"""OrderProcessedSensor: the same scenarios in poke, reschedule and deferrable mode.

One scripted ``GET /v3/orders/<id>`` serves both the sync hook (requests-mock) and the async
hook of the trigger (answered in process by the same handler), so each mode sees the same sequence of answers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest

try:  # Airflow >= 3.1
    from airflow.sdk import timezone
    from airflow.sdk.exceptions import AirflowRescheduleException, TaskDeferred
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowRescheduleException, TaskDeferred  # type: ignore[no-redef]
    from airflow.utils import timezone  # type: ignore[no-redef]
from autoenhance_provider.compat import AirflowFailException, AirflowSensorTimeout, AirflowSkipException
from autoenhance_provider.exceptions import (
    AutoenhanceNotFoundError,
    AutoenhanceOrderFailedError,
    AutoenhanceTransientError,
)
from autoenhance_provider.links.autoenhance import AutoenhanceOrderLink
from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor
from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger
from support.api import (
    APP_URL,
    CONNECT_ERROR,
    ORDER_ID,
    Status,
    done_order,
    failed_order,
    processing_order,
)
from support.task import FakeTI, task_context
from support.waits import MODES, make_sensor, run_sensor


# ------------------------------------------------------------------------------ same scenarios
@pytest.mark.parametrize("mode", MODES)
def test_success_returns_the_summary_and_pushes_the_order(api, mode):
    script = api(processing_order(), processing_order(), done_order())

    result, ti = run_sensor(mode)

    assert result["order_id"] == ORDER_ID
    assert result["done"] is True
    assert result["total"] == result["processed"] == 2
    assert result["failed"] == []
    assert ti.xcoms["order_id"] == ORDER_ID
    assert ti.xcoms["order_url"] == f"{APP_URL}/orders/{ORDER_ID}"
    assert "failed_images" not in ti.xcoms
    assert script.count == 3
    assert {method for method, _, _ in script.requests} == {"GET"}


@pytest.mark.parametrize("mode", MODES)
def test_images_in_error_fail_the_task_naming_them(api, mode):
    api(processing_order(), failed_order())

    with pytest.raises(AutoenhanceOrderFailedError) as info:
        run_sensor(mode)

    assert isinstance(info.value, AirflowFailException)  # no pointless task retries
    assert "garden.jpg" in str(info.value)
    assert "Duplicate file name limit reached" in str(info.value)
    assert info.value.order_id == ORDER_ID
    assert [img["image_name"] for img in info.value.failed_images] == ["garden.jpg"]


@pytest.mark.parametrize("mode", MODES)
def test_allow_partial_succeeds_and_lists_failed_images(api, mode):
    api(processing_order(), failed_order())

    result, ti = run_sensor(mode, allow_partial=True)

    assert result["total"] == 2
    assert result["processed"] == 1
    assert ti.xcoms["failed_images"] == result["failed"]
    assert ti.xcoms["failed_images"][0]["image_name"] == "garden.jpg"
    assert ti.xcoms["failed_images"][0]["status_reason"] == "Duplicate file name limit reached"


@pytest.mark.parametrize("mode", MODES)
def test_failed_images_with_soft_fail_skip(api, mode):
    api(processing_order(), failed_order())

    with pytest.raises(AirflowSkipException):
        run_sensor(mode, soft_fail=True)


@pytest.mark.parametrize("mode", MODES)
def test_timeout_raises_sensor_timeout(api, mode):
    script = api(processing_order())

    with pytest.raises(AirflowSensorTimeout):
        run_sensor(mode, timeout=0.05)

    assert script.count >= 2


@pytest.mark.parametrize("mode", MODES)
def test_timeout_with_soft_fail_skips(api, mode):
    api(processing_order())

    with pytest.raises(AirflowSkipException):
        run_sensor(mode, timeout=0.05, soft_fail=True)


@pytest.mark.parametrize("mode", MODES)
def test_transient_errors_within_the_budget_are_tolerated(api, mode):
    script = api(processing_order(), Status(503), CONNECT_ERROR, Status(429), done_order())

    result, _ = run_sensor(mode, error_budget=4)

    assert result["processed"] == 2
    assert script.count == 5


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_error_budget_exhausted_fails_with_the_transient_error(api, mode):
    # Reschedule mode builds a new sensor per attempt, so its budget never accumulates; it
    # keeps rescheduling until the timeout (see the next test).
    script = api(processing_order(), Status(503))

    with pytest.raises(AutoenhanceTransientError) as info:
        run_sensor(mode, error_budget=3)

    assert info.value.status_code == 503
    assert not isinstance(info.value, AirflowFailException)  # Airflow may retry the task
    assert script.count == 4


def test_reschedule_mode_keeps_waiting_through_transient_errors_until_timeout(api):
    """Pins today's behaviour: each reschedule is a new process, so only the timeout ends it."""
    api(processing_order(), Status(503))

    with pytest.raises(AirflowSensorTimeout):
        run_sensor("reschedule", error_budget=2, timeout=0.05)


@pytest.mark.parametrize("mode", MODES)
def test_order_deleted_while_waiting_fails_at_once(api, mode):
    script = api(processing_order(), Status(404, {"message": "Not Found", "detail": {}}))

    with pytest.raises(AutoenhanceNotFoundError) as info:
        run_sensor(mode)

    assert info.value.status_code == 404
    assert script.count == 2


# ------------------------------------------------------------------------------ mode specifics
def test_poke_mode_sleeps_poke_interval_between_pokes(api):
    script = api(processing_order(), processing_order(), done_order())

    run_sensor("poke", poke_interval=42, timeout=3600)

    assert script.clock.sleeps == [42, 42]


def test_poke_mode_times_out_on_run_duration(api):
    script = api(processing_order())

    with pytest.raises(AirflowSensorTimeout, match="timed out"):
        run_sensor("poke", poke_interval=30, timeout=100)

    assert script.count == 5  # t = 0, 30, 60, 90, 120 > 100
    assert sum(script.clock.sleeps) >= 100


def test_reschedule_mode_reschedules_while_processing(api):
    api(processing_order())
    sensor = make_sensor("reschedule", poke_interval=60, timeout=3600)
    before = timezone.utcnow()

    with pytest.raises(AirflowRescheduleException) as info:
        sensor.execute(task_context())

    assert (
        before + timedelta(seconds=59)
        <= info.value.reschedule_date
        <= timezone.utcnow() + timedelta(seconds=61)
    )


def test_reschedule_mode_times_out_from_the_first_reschedule_date(api):
    api(processing_order())
    ti = FakeTI()
    ti.first_reschedule_date = timezone.utcnow() - timedelta(hours=2)
    sensor = make_sensor("reschedule", poke_interval=60, timeout=3600)

    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(task_context(ti))

    ti.first_reschedule_date = timezone.utcnow() - timedelta(hours=2)
    with pytest.raises(AirflowSkipException):
        make_sensor("reschedule", poke_interval=60, timeout=3600, soft_fail=True).execute(task_context(ti))


def test_deferrable_defers_with_a_wall_clock_deadline(api):
    script = api(processing_order())
    sensor = make_sensor(
        "deferrable",
        poke_interval=42,
        timeout=timedelta(hours=2),
        error_budget=9,
        autoenhance_conn_id="autoenhance_default",
        hook_params={"retry_limit": 2, "timeout": 20},
    )
    context = task_context()
    before = time.time()

    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context)

    trigger = info.value.trigger
    assert isinstance(trigger, AutoenhanceOrderTrigger)
    assert info.value.method_name == "execute_complete"
    assert trigger.order_id == ORDER_ID
    assert trigger.poll_interval == 42 == sensor.poke_interval
    assert before + 7200 <= trigger.end_time <= time.time() + 7200
    assert trigger.error_budget == 9
    assert trigger.hook_params == {"retry_limit": 2, "timeout": 20}
    assert trigger.autoenhance_conn_id == "autoenhance_default"
    # Airflow's own deferral timeout is only a safety net behind the trigger's deadline
    assert info.value.timeout is None or info.value.timeout > timedelta(hours=2)
    assert script.count == 1  # checked once before deferring
    assert context["ti"].xcoms["order_url"] == f"{APP_URL}/orders/{ORDER_ID}"


def test_deferrable_returns_without_deferring_when_already_done(api):
    script = api(done_order())
    sensor = make_sensor("deferrable")

    with mock.patch.object(OrderProcessedSensor, "defer") as defer:
        result = sensor.execute(task_context())

    defer.assert_not_called()
    assert result["processed"] == 2
    assert script.count == 1


def test_deferrable_fails_without_deferring_when_already_failed(api):
    api(failed_order())

    sensor = make_sensor("deferrable")
    with mock.patch.object(sensor, "defer") as defer, pytest.raises(AutoenhanceOrderFailedError):
        sensor.execute(task_context())

    defer.assert_not_called()


@pytest.mark.parametrize(
    "first", [failed_order(), Status(404, {"message": "Not Found", "detail": {}})], ids=["failed", "404"]
)
def test_deferrable_soft_fail_applies_to_the_check_before_deferring(api, first):
    """soft_fail must mean the same whether the failure is seen before or after deferring."""
    api(first)

    with mock.patch.object(OrderProcessedSensor, "defer") as defer, pytest.raises(AirflowSkipException):
        make_sensor("deferrable", soft_fail=True).execute(task_context())
    defer.assert_not_called()


@pytest.mark.parametrize("mode", MODES)
def test_soft_fail_on_a_missing_order_skips_in_every_mode(api, mode):
    api(Status(404, {"message": "Not Found", "detail": {}}))

    with pytest.raises(AirflowSkipException):
        run_sensor(mode, soft_fail=True)


def test_deferrable_transient_error_at_first_check_still_defers(api):
    api(Status(503), done_order())

    with pytest.raises(TaskDeferred):
        make_sensor("deferrable").execute(task_context())


def test_execute_complete_maps_a_timeout_event_to_sensor_timeout(conn):
    sensor = make_sensor("deferrable")
    event = {"status": "timeout", "order_id": ORDER_ID, "message": "Timed out", "progress": None}

    with pytest.raises(AirflowSensorTimeout, match="Timed out"):
        sensor.execute_complete(task_context(), event)


def test_execute_complete_success_event_returns_the_summary(conn):
    ti = FakeTI()
    progress = {"order_id": ORDER_ID, "done": True, "total": 3, "processed": 3, "pending": 0, "failed": []}

    result = make_sensor("deferrable").execute_complete(
        task_context(ti), {"status": "success", "order_id": ORDER_ID, "message": "", "progress": progress}
    )

    assert result == progress
    assert ti.xcoms["order_id"] == ORDER_ID


def test_trigger_safety_timeout_becomes_a_sensor_timeout_or_skip(conn):
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

    kwargs = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    with pytest.raises(AirflowSensorTimeout):
        make_sensor("deferrable").resume_execution(TRIGGER_FAIL_REPR, kwargs, task_context())
    with pytest.raises(AirflowSkipException):
        make_sensor("deferrable", soft_fail=True).resume_execution(TRIGGER_FAIL_REPR, kwargs, task_context())


def test_the_order_link_is_published_before_waiting(api):
    api(processing_order())
    ti = FakeTI()

    with pytest.raises(AirflowRescheduleException):
        make_sensor("reschedule").execute(task_context(ti))

    assert ti.pushes[:2] == [("order_id", ORDER_ID), ("order_url", f"{APP_URL}/orders/{ORDER_ID}")]


# ------------------------------------------------------------------------------ construction
def test_init_touches_neither_network_nor_connection(monkeypatch, requests_mock):
    from autoenhance_provider.compat import BaseHook  # the provider hooks' base class

    monkeypatch.delenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", raising=False)
    monkeypatch.setattr(BaseHook, "get_connection", mock.Mock(side_effect=AssertionError("lookup")))
    for mode in MODES:
        make_sensor(mode, autoenhance_conn_id="no_such_connection")
    assert requests_mock.call_count == 0


def test_template_fields_and_links():
    assert set(OrderProcessedSensor.template_fields) >= {"order_id", "autoenhance_conn_id"}
    assert any(isinstance(link, AutoenhanceOrderLink) for link in OrderProcessedSensor.operator_extra_links)


def test_timedelta_timeout_and_poke_interval_are_accepted():
    sensor = make_sensor("poke", timeout=timedelta(minutes=5), poke_interval=timedelta(seconds=45))
    assert sensor.timeout == 300
    assert sensor.poke_interval == 45


def test_deferrable_default_is_off_with_default_config():
    from autoenhance_provider.compat import conf

    expected = conf.getboolean("operators", "default_deferrable", fallback=False)
    sensor = OrderProcessedSensor(task_id="s", order_id=ORDER_ID)
    assert sensor.deferrable is expected


@pytest.mark.parametrize("value", ["true", "false"])
def test_deferrable_default_follows_operators_default_deferrable(tmp_path, value):
    code = textwrap.dedent(
        """
        from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor
        print(OrderProcessedSensor(task_id="s", order_id="o").deferrable)
        """
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": value,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(value == "true")


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_soft_fail_does_not_turn_an_outage_into_a_skip(conn, mode, requests_mock):
    """A transient API error is retryable in every mode, soft_fail or not (poke mode's rule)."""
    from autoenhance_provider.exceptions import AutoenhanceConnectionError, AutoenhanceTransientError

    transient = (AutoenhanceTransientError, AutoenhanceConnectionError)
    if mode == "poke":
        requests_mock.get(re.compile(r".*/v3/orders/.*"), status_code=503)
        with pytest.raises(transient):
            make_sensor("poke", soft_fail=True, error_budget=1).execute(task_context())
        return
    event = {"status": "error", "order_id": ORDER_ID, "message": "HTTP 503", "status_code": 503, "path": "/x"}
    with pytest.raises(transient):
        make_sensor("deferrable", soft_fail=True).resume_execution(
            "execute_complete", {"event": event}, task_context()
        )


def test_soft_fail_skips_a_failed_order_in_deferrable_mode_as_in_poke_mode(conn):
    failed = {"order_id": ORDER_ID, "failed": [{"image_name": "a.jpg", "status": "error"}]}
    event = {"status": "failed", "order_id": ORDER_ID, "message": "", "progress": failed}
    with pytest.raises(AirflowSkipException):
        make_sensor("deferrable", soft_fail=True).resume_execution(
            "execute_complete", {"event": event}, task_context()
        )


# ------------------------------------------------------------------------------ webhook
def test_deferrable_with_webhook_defers_a_webhook_wait_with_a_safety_poll(api):
    from autoenhance_provider.triggers.autoenhance import WEBHOOK_SAFETY_POLL_INTERVAL
    from autoenhance_provider.webhooks import order_finished_asset

    script = api(processing_order())
    sensor = OrderProcessedSensor(task_id="wait", order_id=ORDER_ID, deferrable=True, webhook="default")
    before = time.time()

    with pytest.raises(TaskDeferred) as info:
        sensor.execute(task_context())

    trigger = info.value.trigger
    assert (trigger.webhook, trigger.webhook_check_interval) == ("default", 15.0)
    assert trigger.poll_interval == WEBHOOK_SAFETY_POLL_INTERVAL == sensor.poke_interval == 300
    assert before + 300 <= trigger.first_poll_at <= time.time() + 300
    assert trigger.serialize()[1]["webhook"] == "default"
    assert script.count == 1  # checked once before deferring, as without the webhook
    # The account asset is an inlet, so it exists and the receiver keeps notes for it.
    assert order_finished_asset("default") in sensor.inlets


def test_webhook_keeps_an_explicit_poke_interval_and_other_inlets(api):
    from airflow.sdk import Asset

    api(processing_order())
    other = Asset("s3://bucket/listing")
    sensor = OrderProcessedSensor(
        task_id="wait",
        order_id=ORDER_ID,
        deferrable=True,
        webhook="agency_b",
        webhook_check_interval=5,
        poke_interval=120,
        inlets=[other],
    )
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(task_context())
    assert (info.value.trigger.poll_interval, info.value.trigger.webhook_check_interval) == (120, 5.0)
    assert info.value.trigger.webhook == "agency_b"
    assert other in sensor.inlets
    assert len(sensor.inlets) == 2


def test_webhook_outside_deferrable_mode_keeps_the_usual_poke_interval():
    sensor = OrderProcessedSensor(task_id="wait", order_id=ORDER_ID, mode="poke", webhook="default")
    assert sensor.poke_interval == 30
    assert OrderProcessedSensor(task_id="wait2", order_id=ORDER_ID, deferrable=True).poke_interval == 30


def test_webhook_name_is_checked_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="webhook name"):
        OrderProcessedSensor(task_id="wait", order_id=ORDER_ID, deferrable=True, webhook="../other")


def test_webhook_wait_resumes_like_any_other(api, monkeypatch):
    """Deferred with a webhook, the note appears, the trigger polls once and the task succeeds."""
    import airflow.sdk.execution_time.context as context_module

    class Notes:
        def __init__(self, *, name=None, uri=None):
            pass

        async def aget(self, key, default=None):  # every minute's entry notes the order
            return {ORDER_ID: timezone.utcnow().isoformat()}

    monkeypatch.setattr(context_module, "AssetStateStoreAccessor", Notes, raising=False)
    script = api(processing_order(), done_order())
    result, _ = run_sensor("deferrable", webhook="default", webhook_check_interval=0.01, poke_interval=300)
    assert result["order_id"] == ORDER_ID
    assert script.count == 2  # the check before deferring, and the poll the note asked for
