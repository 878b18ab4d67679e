"""OrderProcessedSensor and the daily enhancement limit (issue 19), in every mode: a refusal is told
apart from a failure, the task says how to resume, and a later try sends only the refused images."""

from __future__ import annotations

import pickle

import pytest

from autoenhance_provider.exceptions import (
    AutoenhanceDailyLimitError,
    AutoenhanceOrderFailedError,
    refusal_kind,
)
from autoenhance_provider.waiting import WaitEvent, evaluate_order
from support.api import ORDER_ID, done_order, image, order
from support.api import api as api_url
from support.task import FakeTI
from support.waits import MODES, run_sensor

REASON = "Daily enhancement limit reached: this account may enhance 500 images per day."


def refused_order() -> dict:
    return order(
        ORDER_ID,
        [
            image("img-1", "processed", "kitchen.jpg"),
            image("img-2", "error", "garden.jpg", status_reason=REASON),
            image("img-3", "error", "hall.jpg", status_reason="The file is not a decodable image"),
        ],
        status="error",
    )


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (REASON, "daily_limit"),
        ("You have exceeded your daily quota of enhancements", "daily_limit"),
        ("Enhancement limit reached", "daily_limit"),
        ("Account hard limit of 500 per 24h exceeded", "daily_limit"),
        (
            "Too many images named 'a.jpg': at most 30 images with the same file name per hour",
            "duplicate_name",
        ),
        ("Duplicate file name limit reached", "duplicate_name"),
        ("The file is not a decodable image", None),
        ("", None),
        (None, None),
    ],
)
def test_status_reasons_are_matched_loosely(reason, kind):
    assert refusal_kind(reason) == kind


@pytest.mark.parametrize("mode", MODES)
def test_a_refusal_fails_the_task_saying_how_to_resume(api, mode):
    script = api(refused_order())
    ti = FakeTI(task_id="wait_for_order", map_index=3, run_id="manual__day1", dag_id="listings")

    with pytest.raises(AutoenhanceDailyLimitError) as info:
        run_sensor(mode, ti)

    message = str(info.value)
    assert "1 of 3 processed; 1 image(s) were refused by the account's daily enhancement limit" in message
    assert "garden.jpg" in message
    assert REASON in message  # the raw text is kept
    assert "1 other image(s) failed for a reason of their own: hall.jpg" in message
    assert "resets daily" in message
    assert "'wait_for_order' (map index 3)" in message
    assert "DAG run 'manual__day1' of DAG 'listings'" in message
    assert '"task_ids": [["wait_for_order", 3]]' in message
    assert "Do not start a new DAG run" in message
    assert isinstance(info.value, AutoenhanceOrderFailedError)  # AirflowFailException: no retries burnt
    assert {method for method, _, _ in script.requests} == {"GET"}  # the first try resubmits nothing
    rebuilt = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own object
    assert str(rebuilt) == message


@pytest.mark.parametrize("mode", MODES)
def test_a_later_try_sends_only_the_refused_images_again(api, requests_mock, mode):
    api(refused_order(), done_order())
    reprocess = requests_mock.post(
        api_url("/v3/images/img-2/process"),
        json={**image("img-2", "processing", "garden.jpg"), "status_reason": None},
    )
    ti = FakeTI(try_number=2)

    result, _ = run_sensor(mode, ti)

    assert result["processed"] == result["total"] == 2
    assert reprocess.call_count == 1  # the refused one; not the processed one, not the broken one
    posts = [r for r in requests_mock.request_history if r.method == "POST"]
    assert [r.path for r in posts] == ["/v3/images/img-2/process"]


def test_an_old_event_without_the_new_fields_is_still_classified():
    progress = evaluate_order(refused_order())
    event = WaitEvent(WaitEvent.FAILED, ORDER_ID, "", progress.to_dict())
    with pytest.raises(AutoenhanceDailyLimitError, match="Do not start a new DAG run"):
        WaitEvent.from_dict(event.to_dict()).result()
