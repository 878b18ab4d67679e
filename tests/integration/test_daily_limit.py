"""The daily enhancement limit and the duplicate-name limit against the sandbox (issue 19):
refused images are told apart from failed ones, and resuming the same order next day sends only
the refused images again — in both readings of the undocumented reprocess rule."""

from __future__ import annotations

import io
import uuid

import pytest

from autoenhance_provider.exceptions import (
    AutoenhanceDailyLimitError,
    AutoenhanceDuplicateNameError,
    AutoenhanceOrderFailedError,
)
from autoenhance_provider.files.storage import SourceFile, find_source_files
from autoenhance_sandbox.limits import DAY

pytestmark = pytest.mark.integration


def _files(photo, names: list[str]) -> list[SourceFile]:
    files, problems = find_source_files([photo(name) for name in names])
    assert not problems
    return files


def _upload(hook, photo, order_id: str, count: int, prefix: str = "p") -> None:
    names = [f"{prefix}{i:02d}.jpg" for i in range(count)]
    hook.upload_images(order_id, _files(photo, names), create_missing_order=True)


@pytest.mark.parametrize("reading", ["allowed", "reregister"])
def test_refused_images_are_resumed_next_day_without_redoing_anything(hook, photo, sandbox, reading):
    sandbox.set_options(refused_image_reprocess=reading)
    sandbox.set_limits(daily_enhancement_limit=3)
    order_id = str(uuid.uuid4())
    _upload(hook, photo, order_id, 5)
    with pytest.raises(AutoenhanceDailyLimitError) as info:
        hook.wait_for_order(order_id, poll_interval=0.05, timeout=30)
    message = str(info.value)
    assert "3 of 5 processed; 2 image(s) were refused by the account's daily enhancement limit" in message
    assert "Daily enhancement limit reached" in message  # the API's own words are kept
    assert "resets daily" in message
    assert "Do not start a new DAG run" in message
    assert isinstance(info.value, AutoenhanceOrderFailedError)  # fails the task, not retried

    # the same day, resuming changes nothing but asks again
    again = hook.resubmit_refused(order_id)
    if reading == "allowed":
        assert len(again["refused_again"]) == 2  # refused again: no credit, no upload
    else:
        assert len(again["reregistered"]) == 2  # registered again from their originals, refused again

    sandbox.advance_clock(DAY)
    outcome = hook.resubmit_refused(order_id)
    resumed = outcome["reprocessed"] if reading == "allowed" else outcome["reregistered"]
    assert len(resumed) == 2
    result = hook.wait_for_order(order_id, poll_interval=0.05, timeout=30)
    assert (result["processed"], result["total"]) == (5, 5)

    stats = sandbox.stats()
    enhanced = stats["enhancements_per_image"]
    assert sorted(enhanced.values()) == [1] * 5  # every image paid once, none twice
    order = hook.get_order(order_id)
    assert sorted(img["image_name"] for img in order["images"]) == [f"p{i:02d}.jpg" for i in range(5)]
    if reading == "allowed":
        assert stats["images_created"] == 5
        assert stats["uploads"] == 5  # nothing uploaded again
    else:
        # the API wants the refused files registered again: only those, from their originals
        assert stats["uploads"] == 5 + 2 + 2


def test_an_image_failed_for_its_own_reason_is_not_a_refusal(hook, photo, sandbox):
    order_id = str(uuid.uuid4())
    _upload(hook, photo, order_id, 1)
    created = hook.create_image("broken.jpg", order_id=order_id, content_type="image/jpeg")
    hook.upload_file(created["upload_url"], io.BytesIO(b"\xff\xd8 not an image at all"), "image/jpeg")
    with pytest.raises(AutoenhanceOrderFailedError) as info:
        hook.wait_for_order(order_id, poll_interval=0.05, timeout=30)
    assert not isinstance(info.value, AutoenhanceDailyLimitError)
    assert hook.resubmit_refused(order_id) == {
        "reprocessed": [],
        "reregistered": [],
        "refused_again": [],
        "failed": [],
    }


def test_a_persistent_duplicate_name_429_names_the_file_the_limit_and_the_fix(hook, photo, sandbox):
    sandbox.set_options(rate_limit_retry_after="present")
    sandbox.set_limits(duplicate_name_limit=2)
    for _ in range(2):
        _upload(hook, photo, str(uuid.uuid4()), 1, prefix="front")
    order_id = str(uuid.uuid4())
    with pytest.raises(Exception) as info:  # noqa: PT011 - the upload summary wraps the first error
        _upload(hook, photo, order_id, 1, prefix="front")
    message = str(info.value)
    assert "front00.jpg" in message
    assert "same file name per hour" in message
    assert "unique to its listing" in message
    cause = info.value if isinstance(info.value, AutoenhanceDuplicateNameError) else info.value.__cause__
    assert isinstance(cause, AutoenhanceDuplicateNameError)
    posts = sandbox.stats()["requests"]["POST /v3/images"]
    assert posts["429"] == hook.retry_policy.max_attempts  # the normal retry budget, no more
    # the name was never registered twice in the same order
    assert sandbox.stats()["duplicate_image_names"] == {}


def test_a_retried_upload_never_registers_a_name_twice_in_the_order(hook, photo, sandbox):
    sandbox.set_limits(duplicate_name_limit=30)
    order_id = str(uuid.uuid4())
    _upload(hook, photo, order_id, 4)
    _upload(hook, photo, order_id, 4)  # the retry: everything is already there
    assert sandbox.stats()["images_created"] == 4
    assert sandbox.stats()["duplicate_image_names"] == {}


def test_duplicate_names_in_the_error_reading_are_uploaded_again_by_a_retried_upload(hook, photo, sandbox):
    """The older reading: the image is accepted, then enters ``error``. The wait names the limit
    and the fix; an hour later the retried upload registers only the refused image again."""
    from autoenhance_sandbox.limits import HOUR

    sandbox.set_options(duplicate_name_reading="error")
    sandbox.set_limits(duplicate_name_limit=1)
    _upload(hook, photo, str(uuid.uuid4()), 1, prefix="front")
    order_id = str(uuid.uuid4())
    _upload(hook, photo, order_id, 1, prefix="front")
    _upload(hook, photo, order_id, 1, prefix="back")
    with pytest.raises(AutoenhanceOrderFailedError) as info:
        hook.wait_for_order(order_id, poll_interval=0.05, timeout=30)
    assert not isinstance(info.value, AutoenhanceDailyLimitError)
    assert "refused by the limit on the same file name" in str(info.value)
    assert "front00.jpg" in str(info.value)

    sandbox.advance_clock(HOUR)
    hook.upload_images(order_id, _files(photo, ["front00.jpg", "back00.jpg"]))
    result = hook.wait_for_order(order_id, poll_interval=0.05, timeout=30)
    assert (result["processed"], result["total"]) == (2, 2)
    stats = sandbox.stats()
    assert stats["images_created"] == 4  # front (other order), front (refused), back, front again
    assert sorted(stats["enhancements_per_image"].values()) == [1, 1, 1]
