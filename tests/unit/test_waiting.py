"""Status vocabulary, the "is the order done" rule, OrderWait, and the hook's blocking wait."""

from __future__ import annotations

import json
import time

import pytest

from autoenhance_provider.compat import AirflowFailException
from autoenhance_provider.exceptions import (
    AutoenhanceConnectionError,
    AutoenhanceNotFoundError,
    AutoenhanceOrderFailedError,
    AutoenhanceTimeoutError,
    AutoenhanceTransientError,
)
from autoenhance_provider.waiting import ImageStatus, OrderWait, WaitEvent, evaluate_order
from support.api import api, image, order
from support.timing import FakeClock

SUCCESS, FAILED, TIMEOUT, ERROR = WaitEvent.SUCCESS, WaitEvent.FAILED, WaitEvent.TIMEOUT, WaitEvent.ERROR


def result_from_event(event, **kwargs):
    """Events cross the triggerer boundary as dicts: rebuild them as the sensor does."""
    return WaitEvent.from_dict(json.loads(json.dumps(event))).result(**kwargs)


# ------------------------------------------------------------------------------ status words
@pytest.mark.parametrize(
    ("word", "member"),
    [
        ("processed", ImageStatus.PROCESSED),
        (" Processed ", ImageStatus.PROCESSED),
        ("complete", ImageStatus.PROCESSED),
        ("completed", ImageStatus.PROCESSED),
        ("enhanced", ImageStatus.PROCESSED),
        ("failed", ImageStatus.ERROR),
        ("error", ImageStatus.ERROR),
        ("expired", ImageStatus.EXPIRED),
        ("waiting", ImageStatus.WAITING),
        ("processing", ImageStatus.PROCESSING),
        ("queued", ImageStatus.UNKNOWN),
        (None, ImageStatus.UNKNOWN),
        ("", ImageStatus.UNKNOWN),
    ],
)
def test_image_status_parse(word, member):
    assert ImageStatus.parse(word) is member


def test_terminal_and_failure_sets():
    assert {s for s in ImageStatus if s.is_terminal} == {
        ImageStatus.PROCESSED,
        ImageStatus.ERROR,
        ImageStatus.EXPIRED,
    }
    assert {s for s in ImageStatus if s.is_failure} == {ImageStatus.ERROR, ImageStatus.EXPIRED}
    assert not ImageStatus.UNKNOWN.is_terminal


# ------------------------------------------------------------------------------ evaluate_order
@pytest.mark.parametrize(
    ("data", "done"),
    [
        (order(images=[image("a"), image("b")]), True),
        (order(images=[image("a"), image("b", "error")]), True),
        (order(images=[image("a"), image("b", "processing")]), False),
        (order(images=[image("a"), image("b", "waiting")]), False),
        (order(images=[image("a"), image("b", "queued")]), False),  # unknown words never end a wait
        (order(images=[]), False),  # nothing to wait for yet (e.g. before grouping)
        (order(images=[image("a")], is_merging=True), False),
        (order(images=[image("a")], is_processing=True), False),
        (order(images=[image("a")], is_processing="false", is_merging="False"), True),
        (order(images=[image("a")], is_processing="true"), False),
        ({"order_id": "x", "images": None}, False),
    ],
)
def test_evaluate_order_done(data, done):
    assert evaluate_order(data).done is done


def test_evaluate_order_counts_and_failures():
    progress = evaluate_order(
        order(
            "o-9",
            [
                image("a"),
                image("b", "error", "b.jpg", status_reason="Duplicate file name limit"),
                image("c", "expired"),
                image("d", "processing"),
            ],
            is_processing=True,
        )
    )

    assert (progress.total, progress.processed, progress.pending) == (4, 1, 1)
    assert [f["image_id"] for f in progress.failed] == ["b", "c"]
    assert progress.failed[0] == {
        "image_id": "b",
        "image_name": "b.jpg",
        "status": "error",
        "status_reason": "Duplicate file name limit",
    }
    assert progress.state() == "1/4 processed, 1 error, 1 expired, 1 processing"
    assert progress.describe() == "order o-9: 1/4 processed, 2 failed, 1 pending"
    assert json.loads(json.dumps(progress.to_dict()))["order_id"] == "o-9"


def test_progress_descriptions():
    assert evaluate_order(order("o", is_merging=True)).describe() == "order o: grouping HDR brackets"
    assert evaluate_order(order("o")).describe() == "order o: no images yet"


# ------------------------------------------------------------------------------ OrderWait
def test_order_wait_success_and_failure_events():
    wait = OrderWait("o-1", deadline=None)

    assert wait.check(order("o-1", [image("a", "processing")])) is None
    success = wait.check(order("o-1", [image("a")]))
    assert success.status == SUCCESS
    assert success.progress["processed"] == 1

    failed = OrderWait("o-1", deadline=None).check(order("o-1", [image("a", "error")]))
    assert failed.status == FAILED
    assert WaitEvent.from_dict(json.loads(json.dumps(failed.to_dict()))) == failed  # crosses as JSON


def test_order_wait_tolerates_transient_errors_within_budget():
    wait = OrderWait("o-1", deadline=None, error_budget=3)
    transient = AutoenhanceTransientError(503, "GET", "/v3/orders/o-1")

    assert wait.on_error(transient) is None
    assert wait.on_error(AutoenhanceConnectionError("reset")) is None
    assert wait.check(order("o-1", [image("a", "processing")])) is None  # a success resets the count
    assert wait.on_error(transient) is None
    assert wait.on_error(transient) is None
    event = wait.on_error(transient)
    assert event.status == ERROR
    assert event.status_code == 503


def test_order_wait_permanent_error_ends_at_once():
    event = OrderWait("o-1", deadline=None).on_error(
        AutoenhanceNotFoundError(404, "GET", "/v3/orders/o-1", message="Not Found")
    )

    assert event.status == ERROR
    assert (event.status_code, event.path, event.api_message) == (404, "/v3/orders/o-1", "Not Found")
    with pytest.raises(AutoenhanceNotFoundError, match="Not Found"):
        result_from_event(event.to_dict())


def test_order_wait_deadline_and_sleep():
    clock = FakeClock()
    wait = OrderWait("o-1", deadline=clock.now + 50, clock=clock)

    assert wait.timeout_event() is None
    assert wait.sleep_for(30) == 30
    clock.now += 40
    assert wait.sleep_for(30) == 10  # cut short so the deadline is checked on time
    clock.now += 10
    timeout = wait.timeout_event()
    assert timeout.status == TIMEOUT
    assert timeout.message == (
        "Timed out after 50 s waiting for Autoenhance order o-1: never read successfully"
    )
    assert wait.sleep_for(30) == 0
    assert OrderWait("o", deadline=None).sleep_for(30) == 30


def test_result_from_event():
    progress = {
        "order_id": "o",
        "failed": [{"image_name": "a.jpg", "status": "error", "status_reason": "bad"}],
    }
    assert result_from_event({"status": SUCCESS, "order_id": "o", "progress": {"done": True}}) == {
        "done": True
    }
    assert (
        result_from_event({"status": FAILED, "order_id": "o", "progress": progress}, allow_partial=True)
        == progress
    )
    with pytest.raises(AutoenhanceOrderFailedError, match=r"a\.jpg: error \(bad\)"):
        result_from_event({"status": FAILED, "order_id": "o", "progress": progress})
    with pytest.raises(AutoenhanceTimeoutError, match="too slow"):
        result_from_event({"status": TIMEOUT, "order_id": "o", "message": "too slow"})
    with pytest.raises(AutoenhanceConnectionError, match="reset"):
        result_from_event({"status": ERROR, "order_id": "o", "message": "reset", "status_code": None})


# ------------------------------------------------------------------------------ hook.wait_for_order
def test_wait_for_order_success(hook, requests_mock, sleeps):
    requests_mock.get(
        api("/v3/orders/o-1"),
        [
            {"json": order("o-1", is_merging=True)},
            {"json": order("o-1", [image("a", "processing"), image("b", "waiting")], is_processing=True)},
            {"json": order("o-1", [image("a"), image("b")])},
        ],
    )

    result = hook.wait_for_order("o-1", poll_interval=15, timeout=3600)

    assert result["done"] is True
    assert (result["total"], result["processed"], result["failed"]) == (2, 2, [])
    assert requests_mock.call_count == 3
    assert sleeps == [15, 15]


def test_wait_for_order_images_in_error_fail_with_names_and_reasons(hook, requests_mock, sleeps):
    requests_mock.get(
        api("/v3/orders/o-1"),
        json=order(
            "o-1",
            [
                image("a", name="living.jpg"),
                image("b", "error", "kitchen.jpg", status_reason="Duplicate file name limit reached"),
            ],
        ),
    )

    with pytest.raises(AutoenhanceOrderFailedError) as info:
        hook.wait_for_order("o-1", poll_interval=1)

    err = info.value
    assert isinstance(err, AirflowFailException)
    assert "kitchen.jpg" in str(err)
    assert "Duplicate file name limit reached" in str(err)
    assert "living.jpg" not in str(err)
    assert err.order_id == "o-1"
    assert [f["image_id"] for f in err.failed_images] == ["b"]


def test_wait_for_order_allow_partial_returns_the_failures(hook, requests_mock, sleeps):
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1", [image("a"), image("b", "expired")]))

    result = hook.wait_for_order("o-1", allow_partial=True)

    assert result["processed"] == 1
    assert [f["image_id"] for f in result["failed"]] == ["b"]


def test_wait_for_order_timeout(hook, requests_mock, monkeypatch):
    requests_mock.get(
        api("/v3/orders/o-1"), json=order("o-1", [image("a", "processing")], is_processing=True)
    )
    asked: list[float] = []
    real_sleep = time.sleep

    def short_sleep(seconds: float) -> None:
        asked.append(seconds)
        real_sleep(min(seconds, 0.05))

    monkeypatch.setattr(time, "sleep", short_sleep)

    started = time.monotonic()
    with pytest.raises(AutoenhanceTimeoutError, match="o-1"):
        hook.wait_for_order("o-1", poll_interval=30, timeout=0.15)

    assert time.monotonic() - started < 5
    assert asked, "the wait never slept"
    assert all(s <= 0.15 for s in asked)  # never sleeps past the deadline
    assert requests_mock.call_count >= 2


def test_wait_for_order_zero_timeout_polls_once(hook, requests_mock, sleeps):
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1", [image("a", "waiting")]))

    with pytest.raises(AutoenhanceTimeoutError):
        hook.wait_for_order("o-1", timeout=0)
    assert requests_mock.call_count == 1
    assert sleeps == []


def test_wait_for_order_done_at_the_deadline_is_a_success(hook, requests_mock, sleeps):
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1", [image("a")]))

    assert hook.wait_for_order("o-1", timeout=0)["done"] is True


def test_wait_for_order_rides_out_transient_errors(make_hook, requests_mock, sleeps):
    hook = make_hook(retry_limit=0)
    requests_mock.get(
        api("/v3/orders/o-1"),
        [{"status_code": 503}, {"status_code": 502}, {"json": order("o-1", [image("a")])}],
    )

    assert hook.wait_for_order("o-1", poll_interval=5)["done"] is True
    assert requests_mock.call_count == 3


def test_wait_for_order_gives_up_after_the_error_budget(make_hook, requests_mock, sleeps):
    hook = make_hook(retry_limit=0)
    requests_mock.get(api("/v3/orders/o-1"), status_code=503, json={"message": "Service Unavailable"})

    with pytest.raises(AutoenhanceTransientError) as info:
        hook.wait_for_order("o-1", poll_interval=5)

    assert not isinstance(info.value, AirflowFailException)
    assert info.value.status_code == 503
    assert requests_mock.call_count == 5


def test_wait_for_unknown_order_fails_at_once(hook, requests_mock, sleeps):
    requests_mock.get(api("/v3/orders/o-1"), status_code=404, json={"message": "Not Found", "detail": {}})

    with pytest.raises(AutoenhanceNotFoundError):
        hook.wait_for_order("o-1")
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    ("data", "state"),
    [
        (order("o-1"), "0 images — was anything uploaded into it?"),
        (
            order("o-1", [image("a"), image("b"), image("c"), image("d", "processing")]),
            "3/4 processed, 1 processing",
        ),
        (order("o-1", is_merging=True), "still grouping HDR brackets"),
    ],
)
def test_timeout_message_says_what_the_order_looked_like(data, state):
    clock = FakeClock()
    wait = OrderWait("o-1", deadline=clock.now + 60, clock=clock)
    assert wait.check(data) is None
    clock.now += 60
    assert wait.timeout_event().message == f"Timed out after 60 s waiting for Autoenhance order o-1: {state}"
