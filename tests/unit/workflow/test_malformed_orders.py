"""Malformed order answers raise AutoenhanceAPIError at the boundary, saying what was wrong:
in the hook, in the sensor's poke, in the trigger, and before any download request."""

from __future__ import annotations

import pytest

from autoenhance_provider.exceptions import AutoenhanceAPIError
from autoenhance_provider.records import Order
from autoenhance_provider.waiting import evaluate_order
from support.api import ORDER_ID, done_order, image, order
from support.waits import MODES, run_sensor

STRINGS = order(ORDER_ID, ["img-1", "img-2"], status="processed")
NO_ID = order(
    ORDER_ID, [{**image("img-1", "processed", "kitchen.jpg"), "image_id": None}], status="processed"
)
IMAGES_NOT_A_LIST = {**done_order(), "images": {"img-1": "processed"}}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (STRINGS, "the order's images must be objects; image 0 is a JSON string"),
        (NO_ID, "image 0 ('kitchen.jpg') of the order has no image_id"),
        (IMAGES_NOT_A_LIST, "the order's 'images' is a JSON object, not a list of images"),
        ([done_order()], "the answer is a JSON array, not an order"),
    ],
)
def test_the_order_record_says_what_is_wrong(answer, reason):
    with pytest.raises(AutoenhanceAPIError) as info:
        Order.parse(answer, f"/v3/orders/{ORDER_ID}")
    assert reason in str(info.value)
    assert f"/v3/orders/{ORDER_ID}" in str(info.value)


def test_evaluate_order_refuses_images_that_are_not_objects():
    with pytest.raises(AutoenhanceAPIError, match="image 0 is a JSON string"):
        evaluate_order(STRINGS)
    assert evaluate_order(done_order()).done


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("answer", "reason"),
    [(STRINGS, "image 0 is a JSON string"), (NO_ID, "has no image_id")],
    ids=["strings", "no-image-id"],
)
def test_sensor_fails_at_once_on_malformed_images_instead_of_waiting(api, mode, answer, reason):
    script = api(answer)

    with pytest.raises(AutoenhanceAPIError, match=reason):
        run_sensor(mode)

    assert script.count == 1  # not polled again until the timeout


@pytest.mark.parametrize("mode", ["poke", "deferrable"])  # reschedule: the budget needs the task state store
def test_a_sensor_that_gives_up_on_malformed_answers_keeps_the_reason(api, mode):
    api([1, 2, 3])  # a JSON array where the order should be, every time

    with pytest.raises(AutoenhanceAPIError) as info:
        run_sensor(mode)

    message = str(info.value)
    assert "returned HTTP 200: " in message, message
    assert "array" in message or "list" in message, message


@pytest.mark.parametrize("answer", [STRINGS, NO_ID], ids=["strings", "no-image-id"])
def test_download_refuses_a_malformed_order_before_any_image_request(conn, requests_mock, tmp_path, answer):
    from support.api import api as api_url
    from support.downloads import download_op
    from support.task import task_context

    requests_mock.get(api_url(f"/v3/orders/{ORDER_ID}"), json=answer)

    with pytest.raises(AutoenhanceAPIError, match="image 0"):
        download_op(str(tmp_path)).execute(task_context())

    assert [r.path for r in requests_mock.request_history if "/v3/images/" in r.path] == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [(STRINGS, "image 0 is a JSON string"), (NO_ID, "has no image_id")],
    ids=["strings", "no-image-id"],
)
def test_trigger_ends_at_once_with_the_reason_on_malformed_images(api, answer, reason):
    """The async hook's boundary: the trigger's first poll ends the wait with an error event."""
    import asyncio

    from support.waits import all_events, make_trigger

    script = api(answer)

    events = asyncio.run(all_events(make_trigger()))

    assert [e.payload["status"] for e in events] == ["error"]
    assert reason in events[0].payload["message"]
    assert script.count == 1
