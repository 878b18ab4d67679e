"""AutoenhanceHook: retries, non-idempotent creates and timeouts."""

from __future__ import annotations

import email.utils
import re
import time

import pytest
import requests
import urllib3.exceptions

from autoenhance_provider.compat import AirflowFailException
from autoenhance_provider.exceptions import (
    AutoenhanceAuthError,
    AutoenhanceClientError,
    AutoenhanceConflictError,
    AutoenhanceConnectionError,
    AutoenhanceCreditsError,
    AutoenhanceNotFoundError,
    AutoenhanceTransientError,
    AutoenhanceUnprocessableError,
)
from autoenhance_provider.http.policy import RetryPolicy
from support.api import FAKE_KEY, UPLOAD_URL, api, image, order, path_of, validation_error


def refused() -> requests.exceptions.ConnectionError:
    """What requests raises when nothing listens: the request never left the machine."""
    reason = urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    pool_error = urllib3.exceptions.MaxRetryError(None, "/v3/images/", reason)
    return requests.exceptions.ConnectionError(pool_error)


def reset() -> requests.exceptions.ConnectionError:
    """A connection dropped after the request was sent: the server may have acted on it."""
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )


# ------------------------------------------------------------------------------ retryable outcomes
@pytest.mark.parametrize(("retry_after", "expected"), [("3", 3.0), ("0", 0.0), ("120", 10.0)])
def test_429_retry_after_is_honoured_and_capped(make_hook, requests_mock, sleeps, retry_after, expected):
    hook = make_hook(retry_delay=0, retry_max_delay=10)
    requests_mock.get(
        api("/v3/orders/o-1"),
        [{"status_code": 429, "headers": {"Retry-After": retry_after}}, {"json": order("o-1")}],
    )

    assert hook.get_order("o-1")["order_id"] == "o-1"
    assert sleeps == [expected]
    assert requests_mock.call_count == 2


def test_429_retry_after_as_http_date(make_hook, requests_mock, sleeps):
    hook = make_hook(retry_delay=0, retry_max_delay=30)
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    requests_mock.get(
        api("/v3/orders/o-1"), [{"status_code": 429, "headers": {"Retry-After": when}}, {"json": order()}]
    )

    hook.get_order("o-1")

    assert len(sleeps) == 1
    assert 15 <= sleeps[0] <= 20


def test_429_without_retry_after_uses_bounded_exponential_backoff(make_hook, requests_mock, sleeps):
    hook = make_hook(retry_delay=1, retry_max_delay=4, retry_limit=5)
    requests_mock.get(api("/v3/orders/o-1"), [{"status_code": 429}] * 5 + [{"json": order()}])

    hook.get_order("o-1")

    ceilings = [1, 2, 4, 4, 4]
    assert len(sleeps) == 5
    for slept, ceiling in zip(sleeps, ceilings, strict=True):
        assert ceiling / 2 <= slept <= ceiling


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_then_success_on_get(hook, requests_mock, sleeps, status):
    requests_mock.get(api("/v3/orders/o-1"), [{"status_code": status}, {"json": order("o-1")}])

    assert hook.get_order("o-1")["order_id"] == "o-1"
    assert requests_mock.call_count == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("exc", [refused(), reset(), requests.exceptions.ConnectTimeout("connect timed out")])
def test_connection_errors_then_success(hook, requests_mock, sleeps, exc):
    requests_mock.get(api("/v3/orders/o-1"), [{"exc": exc}, {"json": order("o-1")}])

    assert hook.get_order("o-1")["order_id"] == "o-1"
    assert requests_mock.call_count == 2


def test_read_timeout_on_get_is_retried(hook, requests_mock, sleeps):
    requests_mock.get(
        api("/v3/images/i-1"),
        [{"exc": requests.exceptions.ReadTimeout("read timed out")}, {"json": image("i-1")}],
    )

    assert hook.get_image("i-1")["image_id"] == "i-1"
    assert requests_mock.call_count == 2


def test_patch_and_delete_are_retried_as_idempotent(hook, requests_mock, sleeps):
    requests_mock.patch(api("/v3/orders/o-1"), [{"status_code": 503}, {"json": order("o-1", name="n")}])
    requests_mock.delete(api("/v3/images/i-1"), [{"status_code": 502}, {"status_code": 204}])

    hook.update_order("o-1", "n")
    hook.delete_image("i-1")

    assert [r.method for r in requests_mock.request_history] == ["PATCH", "PATCH", "DELETE", "DELETE"]


# ------------------------------------------------------------------------------ permanent errors
@pytest.mark.parametrize(
    ("status", "body", "cls", "text"),
    [
        (401, {"message": "Unauthorized", "detail": {}}, AutoenhanceAuthError, "HTTP 401: Unauthorized"),
        (403, {"message": "Forbidden", "detail": {}}, AutoenhanceAuthError, "HTTP 403: Forbidden"),
        (404, {"message": "Not Found", "detail": {}}, AutoenhanceNotFoundError, "HTTP 404: Not Found"),
        (
            422,
            validation_error("json", "enhance_type", "Must be one of: property, warm."),
            AutoenhanceUnprocessableError,
            "json.enhance_type: Must be one of: property, warm.",
        ),
        (402, {"message": "Payment Required"}, AutoenhanceCreditsError, "HTTP 402"),
        (409, {"message": "Conflict"}, AutoenhanceConflictError, "HTTP 409: Conflict"),
        (400, {"message": "Bad Request"}, AutoenhanceClientError, "HTTP 400: Bad Request"),
    ],
)
def test_client_errors_are_not_retried_and_fail_the_task(
    hook, requests_mock, sleeps, status, body, cls, text
):
    requests_mock.post(api("/v3/images/i-1/process"), status_code=status, json=body)

    with pytest.raises(cls) as info:
        hook.reprocess_image("i-1", enhance_type="warm")

    err = info.value
    assert type(err) is cls
    assert isinstance(err, AirflowFailException)
    assert err.status_code == status
    assert text in str(err)
    assert "POST /v3/images/i-1/process" in str(err)
    assert requests_mock.call_count == 1
    assert sleeps == []


def test_422_query_detail_is_named(hook, requests_mock):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        status_code=422,
        json={"message": "Validation error", "detail": {"query": {"quality": ["Must be <= 90.", "Bad."]}}},
    )
    import io

    with pytest.raises(
        AutoenhanceUnprocessableError, match=r"query\.quality: Must be <= 90\.; Bad\."
    ) as info:
        hook.download_image("i-1", io.BytesIO())
    assert info.value.detail == {"query": {"quality": ["Must be <= 90.", "Bad."]}}


def test_long_plain_text_error_bodies_are_truncated(hook, requests_mock):
    requests_mock.get(api("/v3/orders/o-1"), status_code=404, text="x" * 5000)

    with pytest.raises(AutoenhanceNotFoundError) as info:
        hook.get_order("o-1")
    assert len(str(info.value)) < 700
    assert "more characters" in str(info.value)


def test_ssl_errors_are_not_retried(hook, requests_mock, sleeps):
    requests_mock.get(api("/v3/orders/o-1"), exc=requests.exceptions.SSLError("certificate verify failed"))

    with pytest.raises(AutoenhanceConnectionError, match="SSLError"):
        hook.get_order("o-1")
    assert requests_mock.call_count == 1


# ------------------------------------------------------------------------------ giving up
def test_exhausted_5xx_raise_a_transient_error_that_airflow_may_retry(hook, requests_mock, sleeps):
    requests_mock.get(api("/v3/orders/o-1"), status_code=503, json={"message": "Service Unavailable"})

    with pytest.raises(AutoenhanceTransientError) as info:
        hook.get_order("o-1")

    assert not isinstance(info.value, AirflowFailException)
    assert info.value.status_code == 503
    assert requests_mock.call_count == 6  # first attempt + retry_limit (5)
    assert len(sleeps) == 5


@pytest.mark.parametrize("retry_limit", [0, 1, 3])
def test_retry_count_is_bounded_by_retry_limit(make_hook, requests_mock, sleeps, retry_limit):
    hook = make_hook(retry_limit=retry_limit)
    requests_mock.get(api("/v3/orders/o-1"), status_code=429)

    with pytest.raises(AutoenhanceTransientError):
        hook.get_order("o-1")
    assert requests_mock.call_count == retry_limit + 1


def test_exhausted_connection_errors_raise_a_retryable_connection_error(hook, requests_mock, sleeps):
    requests_mock.get(api("/v3/orders/o-1"), exc=reset())

    with pytest.raises(AutoenhanceConnectionError) as info:
        hook.get_order("o-1")

    assert not isinstance(info.value, AirflowFailException)
    assert "GET /v3/orders/o-1" in str(info.value)
    assert requests_mock.call_count == 6


# ------------------------------------------------------------------------------ non-idempotent creates
class FakeImageApi:
    """Just enough of the images/orders API to observe half-created images."""

    def __init__(self, requests_mock, fail_first_with: dict) -> None:
        self.images: dict[str, dict] = {
            "i-old": image("i-old", "processed", "other.jpg"),
            "i-up": image("i-up", "processing", "uploaded-before.jpg"),
        }
        self.posts = 0
        self.fail_first_with = fail_first_with
        requests_mock.post(api("/v3/images/"), json=self.create)
        requests_mock.get(api("/v3/orders/o-1"), json=lambda r, c: order("o-1", list(self.images.values())))
        requests_mock.delete(re.compile(re.escape(api("/v3/images/")) + r"[^/]+$"), text=self.delete)

    def create(self, request, context):
        self.posts += 1
        body = request.json()
        new_id = f"i-new-{self.posts}"
        self.images[new_id] = image(new_id, "waiting", body["image_name"])
        if self.posts == 1:
            context.status_code = self.fail_first_with["status"]
            return {"message": "Internal Server Error", "detail": {}}
        return {**self.images[new_id], "order_id": "o-1", "upload_url": UPLOAD_URL}

    def delete(self, request, context):
        self.images.pop(path_of(request).rsplit("/", 1)[-1], None)
        context.status_code = 204
        return ""


def test_create_image_with_order_after_500_removes_the_half_created_image(hook, requests_mock, sleeps):
    fake = FakeImageApi(requests_mock, {"status": 500})

    created = hook.create_image("kitchen.jpg", order_id="o-1", content_type="image/jpeg")

    assert created["image_id"] == "i-new-2"
    calls = [(r.method, path_of(r)) for r in requests_mock.request_history]
    assert calls == [
        ("POST", "/v3/images/"),
        ("GET", "/v3/orders/o-1"),
        ("DELETE", "/v3/images/i-new-1"),
        ("POST", "/v3/images/"),
    ]
    live = [i for i in fake.images.values() if i["image_name"] == "kitchen.jpg"]
    assert [i["image_id"] for i in live] == ["i-new-2"]
    assert {"i-old", "i-up"} <= set(fake.images)  # other images untouched


def test_create_image_with_order_after_read_timeout_also_checks_first(hook, requests_mock, sleeps):
    requests_mock.post(
        api("/v3/images/"),
        [
            {"exc": requests.exceptions.ReadTimeout("read timed out")},
            {"json": {"image_id": "i-2", "upload_url": UPLOAD_URL}},
        ],
    )
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1", [image("i-1", "waiting", "kitchen.jpg")]))
    delete = requests_mock.delete(api("/v3/images/i-1"), status_code=204)

    assert hook.create_image("kitchen.jpg", order_id="o-1")["image_id"] == "i-2"
    assert delete.call_count == 1


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ({"status_code": 500}, AutoenhanceTransientError),
        ({"status_code": 502}, AutoenhanceTransientError),
        ({"exc": requests.exceptions.ReadTimeout("read timed out")}, AutoenhanceConnectionError),
        ({"exc": reset()}, AutoenhanceConnectionError),
    ],
)
def test_create_image_without_order_is_not_resent_after_ambiguous_failure(
    hook, requests_mock, sleeps, failure, error
):
    requests_mock.post(api("/v3/images/"), [failure, {"json": {"image_id": "i-2", "upload_url": UPLOAD_URL}}])

    with pytest.raises(error):
        hook.create_image("kitchen.jpg")
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [
        {"status_code": 429},
        {"exc": refused()},
        {"exc": requests.exceptions.ConnectTimeout("connect timeout")},
    ],
)
def test_create_image_without_order_is_resent_when_the_server_never_acted(
    hook, requests_mock, sleeps, failure
):
    requests_mock.post(api("/v3/images/"), [failure, {"json": {"image_id": "i-2", "upload_url": UPLOAD_URL}}])

    assert hook.create_image("kitchen.jpg")["image_id"] == "i-2"
    assert requests_mock.call_count == 2


def test_create_order_with_id_after_lost_response_finds_the_order(hook, requests_mock, sleeps):
    post = requests_mock.post(api("/v3/orders/"), exc=requests.exceptions.ReadTimeout("read timed out"))
    get = requests_mock.get(api("/v3/orders/my-order"), json=order("my-order", name="Listing"))

    result = hook.create_order(name="Listing", order_id="my-order")

    assert result["order_id"] == "my-order"
    assert post.call_count == 1
    assert get.call_count == 1


def test_create_order_with_id_after_500_resends_when_the_order_is_absent(hook, requests_mock, sleeps):
    post = requests_mock.post(api("/v3/orders/"), [{"status_code": 500}, {"json": order("my-order")}])
    requests_mock.get(api("/v3/orders/my-order"), status_code=404, json={"message": "Not Found"})

    assert hook.create_order(order_id="my-order")["order_id"] == "my-order"
    assert post.call_count == 2
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET", "POST"]


def test_create_order_without_id_is_not_resent_after_500(hook, requests_mock, sleeps):
    requests_mock.post(api("/v3/orders/"), [{"status_code": 500}, {"json": order("srv")}])

    with pytest.raises(AutoenhanceTransientError):
        hook.create_order(name="x")
    assert requests_mock.call_count == 1


def test_create_order_without_id_is_resent_after_429(hook, requests_mock, sleeps):
    requests_mock.post(api("/v3/orders/"), [{"status_code": 429}, {"json": order("srv")}])

    assert hook.create_order(name="x")["order_id"] == "srv"
    assert requests_mock.call_count == 2


def test_delete_order_after_lost_response_and_404_counts_as_deleted(hook, requests_mock, sleeps):
    delete = requests_mock.delete(
        api("/v3/orders/o-1"), exc=requests.exceptions.ReadTimeout("read timed out")
    )
    requests_mock.get(api("/v3/orders/o-1"), status_code=404, json={"message": "Not Found", "detail": {}})

    assert hook.delete_order("o-1") is None
    assert delete.call_count == 1


def test_delete_order_after_500_with_order_still_there_deletes_again(hook, requests_mock, sleeps):
    delete = requests_mock.delete(api("/v3/orders/o-1"), [{"status_code": 500}, {"status_code": 204}])
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1"))

    hook.delete_order("o-1")

    assert delete.call_count == 2
    assert [r.method for r in requests_mock.request_history] == ["DELETE", "GET", "DELETE"]


def test_create_bracket_is_resent_after_500(hook, requests_mock, sleeps):
    requests_mock.post(
        api("/v3/brackets/"), [{"status_code": 500}, {"json": {"bracket_id": "b-1", "upload_url": "u"}}]
    )

    assert hook.create_bracket("o-1", "ev0.jpg")["bracket_id"] == "b-1"
    assert requests_mock.call_count == 2


def test_process_order_is_resent_when_the_lost_attempt_did_not_start(hook, requests_mock, sleeps):
    requests_mock.post(api("/v3/orders/o-1/process"), [{"status_code": 503}, {"json": order("o-1")}])
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1"))

    hook.process_order("o-1")

    assert [r.method for r in requests_mock.request_history] == ["POST", "GET", "POST"]


# ------------------------------------------------------------------------------ timeouts
def test_default_timeouts(hook, requests_mock):
    requests_mock.get(api("/v3/orders/o-1"), json=order())

    hook.get_order("o-1")

    assert hook.timeout == (10.0, 60.0)
    assert requests_mock.last_request.timeout == (10.0, 60.0)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"timeout": 30}, (10.0, 30.0)),
        ({"timeout": "45.5"}, (10.0, 45.5)),
        ({"timeout": 5}, (5.0, 5.0)),
        ({"connect_timeout": 3}, (3.0, 60.0)),
        ({"timeout": 120, "connect_timeout": "4"}, (4.0, 120.0)),
    ],
)
def test_timeouts_from_connection_extra(set_connection, make_hook, requests_mock, extra, expected):
    set_connection(extra=extra)
    requests_mock.get(api("/v3/orders/o-1"), json=order())

    make_hook().get_order("o-1")

    assert requests_mock.last_request.timeout == expected


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(20.0, (10.0, 20.0)), (5, (5.0, 5.0)), ((2, 7), (2.0, 7.0)), ([3.5, 90], (3.5, 90.0))],
)
def test_timeout_hook_kwarg_overrides_the_connection(
    set_connection, make_hook, requests_mock, timeout, expected
):
    set_connection(extra={"timeout": 300})
    requests_mock.get(api("/v3/orders/o-1"), json=order())

    make_hook(timeout=timeout).get_order("o-1")

    assert requests_mock.last_request.timeout == expected


def test_uploads_and_downloads_use_the_same_timeouts(make_hook, requests_mock, tmp_path):
    import io

    hook = make_hook(timeout=(4, 40))
    src = tmp_path / "a.jpg"
    src.write_bytes(b"\xff\xd8\xff")
    requests_mock.put(UPLOAD_URL.split("?")[0], text="")
    requests_mock.get(
        api("/v3/images/i-1/enhanced"), status_code=302, headers={"Location": "https://cdn.test/x"}
    )
    requests_mock.get("https://cdn.test/x", content=b"\xff\xd8\xff\xe0img\xff\xd9")

    hook.upload_file(UPLOAD_URL, src, "image/jpeg")
    hook.download_image("i-1", io.BytesIO())

    assert [r.timeout for r in requests_mock.request_history] == [(4.0, 40.0)] * 3


def test_key_is_only_sent_to_the_api_host(hook, requests_mock, tmp_path):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"\xff\xd8\xff")
    requests_mock.get(api("/v3/orders/o-1"), json=order())
    requests_mock.put(UPLOAD_URL.split("?")[0], text="")

    hook.get_order("o-1")
    hook.upload_file(UPLOAD_URL, src, "image/jpeg")

    api_req, put_req = requests_mock.request_history
    assert api_req.headers["x-api-key"] == FAKE_KEY
    assert FAKE_KEY not in str(dict(put_req.headers))


def test_hook_maps_its_kwargs_onto_the_policy(conn):
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    assert AutoenhanceHook(retry_limit=2, retry_delay=0.5, retry_max_delay=4).retry_policy == RetryPolicy(
        max_attempts=3, initial_delay=0.5, max_delay=4.0
    )
    assert AutoenhanceHook(retry_limit=-3).retry_policy.max_attempts == 1
