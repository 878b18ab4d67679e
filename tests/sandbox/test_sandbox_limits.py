"""The account limits of the docs' "Rate Limits" page (issue 19): request rate per IP, the same
file name per hour, enhancements per day. Off by default; set per test, by admin call, CLI or env."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from autoenhance_sandbox_helpers import (
    create_image,
    create_order,
    get_image,
    image_bytes,
    keyed,
    put_bytes,
    uploaded_image,
    wait_image_status,
)

from autoenhance_sandbox.limits import DAY, HOUR
from autoenhance_sandbox.testing import SandboxServer, start_sandbox_process


def test_limits_are_off_by_default(http: requests.Session, sandbox: SandboxServer) -> None:
    limits = http.get(sandbox.url("/_sandbox/limits")).json()
    assert limits["rate_limit_per_second"] is None
    assert limits["duplicate_name_limit"] is None
    assert limits["daily_enhancement_limit"] is None
    assert limits["refusals"] == {"rate_limit": 0, "duplicate_name": 0, "daily_limit": 0}
    for _ in range(40):
        create_image(http, sandbox, "same.jpg")
    assert sandbox.stats()["limit_refusals"]["duplicate_name"] == 0


def test_admin_endpoint_sets_limits_all_or_nothing(http: requests.Session, sandbox: SandboxServer) -> None:
    answer = http.post(sandbox.url("/_sandbox/limits"), json={"daily_enhancement_limit": 5})
    assert answer.status_code == 200
    assert answer.json()["daily_enhancement_limit"] == 5
    for bad in ({"daily_enhancement_limit": -1}, {"rate_limit_per_second": 0}, {"no_such_limit": 3}):
        refused = http.post(sandbox.url("/_sandbox/limits"), json={"duplicate_name_limit": 3, **bad})
        assert refused.status_code == 422, bad
    assert sandbox.config.duplicate_name_limit is None  # nothing applied
    off = http.post(sandbox.url("/_sandbox/limits"), json={"daily_enhancement_limit": None})
    assert off.json()["daily_enhancement_limit"] is None


@pytest.mark.parametrize("retry_after", ["absent", "present"])
def test_request_rate_is_a_token_bucket_per_client_ip(
    http: requests.Session, sandbox: SandboxServer, retry_after: str
) -> None:
    sandbox.set_options(rate_limit_retry_after=retry_after)
    sandbox.set_limits(rate_limit_per_second=5, rate_limit_burst=5)
    statuses = [http.get(sandbox.url("/v3/orders/nope"), headers=keyed(sandbox)) for _ in range(12)]
    codes = [r.status_code for r in statuses]
    assert codes[:5] == [404] * 5  # the bucket's burst, then refusals
    refused = [r for r in statuses if r.status_code == 429]
    assert refused, codes
    assert refused[0].json()["message"].startswith("Too Many Requests")
    assert ("Retry-After" in refused[0].headers) is (retry_after == "present")
    # admin, storage and asset requests are not API requests: never limited
    assert http.get(sandbox.url("/_sandbox/health")).status_code == 200
    stats = sandbox.stats()
    assert stats["limit_refusals"]["rate_limit"] == len(refused)
    assert stats["requests"]["GET /v3/orders/{order_id}"]["429"] == len(refused)


def test_duplicate_names_answer_429_beyond_the_hourly_limit(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    sandbox.set_limits(duplicate_name_limit=3)
    for _ in range(3):
        create_image(http, sandbox, "kitchen.jpg")
    create_image(http, sandbox, "Kitchen.jpg")  # another string: counted on its own
    refused = http.post(sandbox.url("/v3/images"), json={"image_name": "kitchen.jpg"}, headers=keyed(sandbox))
    assert refused.status_code == 429
    assert "kitchen.jpg" in refused.json()["message"]
    assert "per hour" in refused.json()["message"]
    assert sandbox.stats()["limit_refusals"]["duplicate_name"] == 1
    sandbox.advance_clock(HOUR)  # the next hour
    create_image(http, sandbox, "kitchen.jpg")


def test_duplicate_names_error_reading(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.set_options(duplicate_name_reading="error")
    sandbox.set_limits(duplicate_name_limit=1)
    uploaded_image(http, sandbox, "hall.jpg")
    second = uploaded_image(http, sandbox, "hall.jpg")  # accepted, then refused as an image
    image = get_image(http, sandbox, second["image_id"])
    assert image["status"] == "error"
    assert "same file name" in image["status_reason"]
    assert sandbox.stats()["limit_refusals"]["duplicate_name"] == 1


def test_daily_limit_refuses_images_beyond_it_until_the_next_day(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    sandbox.set_limits(daily_enhancement_limit=2)
    order = create_order(http, sandbox)["order_id"]
    ids = [uploaded_image(http, sandbox, f"p{i}.jpg", order_id=order)["image_id"] for i in range(3)]
    sandbox.advance_clock(1)
    statuses = [get_image(http, sandbox, i) for i in ids]
    assert [s["status"] for s in statuses] == ["processed", "processed", "error"]
    reason = statuses[2]["status_reason"]
    assert "daily" in reason.lower()
    assert "limit" in reason.lower()
    assert "2" in reason
    order_out = http.get(sandbox.url(f"/v3/orders/{order}")).json()
    assert order_out["status"] == "error"
    stats = sandbox.stats()
    assert stats["limit_refusals"]["daily_limit"] == 1
    assert stats["enhancements"] == 2
    assert stats["limits"]["enhancements_today"] == 2
    # the same day, a reprocess is refused again (and is not an enhancement)
    again = http.post(sandbox.url(f"/v3/images/{ids[2]}/process"), json={}, headers=keyed(sandbox))
    assert again.status_code == 200
    assert again.json()["status"] == "error"
    sandbox.advance_clock(DAY)
    again = http.post(sandbox.url(f"/v3/images/{ids[2]}/process"), json={}, headers=keyed(sandbox))
    assert again.status_code == 200
    wait_image_status(http, sandbox, ids[2], "processed")
    stats = sandbox.stats()
    assert stats["enhancements_per_image"] == dict.fromkeys(ids, 1)
    assert stats["limit_refusals"]["daily_limit"] == 2


def test_capacity_upgrade_resets_the_day(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.set_limits(daily_enhancement_limit=1)
    first = uploaded_image(http, sandbox, "a.jpg")
    second = uploaded_image(http, sandbox, "b.jpg")
    assert wait_image_status(http, sandbox, second["image_id"], "error")
    assert http.post(sandbox.url("/_sandbox/limits/reset")).json()["enhancements_today"] == 0
    answer = http.post(
        sandbox.url(f"/v3/images/{second['image_id']}/process"), json={}, headers=keyed(sandbox)
    )
    assert answer.status_code == 200
    wait_image_status(http, sandbox, second["image_id"], "processed")
    wait_image_status(http, sandbox, first["image_id"], "processed")


def test_reregister_reading_refuses_reprocessing_a_refused_image(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    sandbox.set_options(refused_image_reprocess="reregister")
    sandbox.set_limits(daily_enhancement_limit=0)
    refused = uploaded_image(http, sandbox, "a.jpg")
    wait_image_status(http, sandbox, refused["image_id"], "error")
    sandbox.advance_clock(DAY)
    answer = http.post(
        sandbox.url(f"/v3/images/{refused['image_id']}/process"), json={}, headers=keyed(sandbox)
    )
    assert answer.status_code == 409
    assert "upload the file again" in answer.json()["message"]
    sandbox.set_limits(daily_enhancement_limit=1)
    again = create_image(http, sandbox, "a.jpg", contentType="image/jpeg")
    assert put_bytes(http, again["upload_url"], image_bytes(), "image/jpeg").status_code == 200
    wait_image_status(http, sandbox, again["image_id"], "processed")


def test_limits_from_cli_and_environment() -> None:
    env_key = "AUTOENHANCE_SANDBOX_DAILY_ENHANCEMENT_LIMIT"
    os.environ[env_key] = "7"
    try:
        with start_sandbox_process(rate_limit_per_second=250, duplicate_name_limit=30) as process:
            session = requests.Session()
            session.trust_env = False
            limits = session.get(process.url("/_sandbox/limits")).json()
    finally:
        del os.environ[env_key]
    assert limits["rate_limit_per_second"] == 250
    assert limits["duplicate_name_limit"] == 30
    assert limits["daily_enhancement_limit"] == 7
    bad = subprocess.run(
        [sys.executable, "-m", "autoenhance_sandbox", "--port", "0", "--daily-enhancement-limit", "-3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0
    assert "daily_enhancement_limit" in bad.stderr
