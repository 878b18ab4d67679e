"""The retry / error-mapping policy and the exception classes."""

from __future__ import annotations

import email.utils
import pickle
import time

import pytest

from autoenhance_provider.compat import AirflowException, AirflowFailException
from autoenhance_provider.exceptions import (
    MAX_BODY_CHARS,
    AutoenhanceAPIError,
    AutoenhanceAuthError,
    AutoenhanceClientError,
    AutoenhanceConfigError,
    AutoenhanceConflictError,
    AutoenhanceConnectionError,
    AutoenhanceCreditsError,
    AutoenhanceError,
    AutoenhanceNotFoundError,
    AutoenhanceOrderFailedError,
    AutoenhanceSourceError,
    AutoenhanceStorageError,
    AutoenhanceTimeoutError,
    AutoenhanceTransientError,
    AutoenhanceUnprocessableError,
    AutoenhanceValidationError,
    error_for_status,
    format_detail,
    is_retryable_status,
    truncate,
)
from autoenhance_provider.http.policy import (
    Failure,
    Retrier,
    RetryPolicy,
    failure_for_exception,
    failure_for_status,
    parse_retry_after,
)
from support.timing import FakeClock


# ------------------------------------------------------------------------------ RetryPolicy
@pytest.mark.parametrize(("retry_after", "expected"), [(3.0, 3.0), (0.0, 0.0), (-4.0, 0.0), (99.0, 30.0)])
def test_backoff_retry_after_wins_and_is_capped(retry_after, expected):
    assert RetryPolicy(max_delay=30).backoff(1, retry_after) == expected


def test_backoff_is_exponential_with_jitter_and_capped():
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (12, 8)]:
        delays = [policy.backoff(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempt
        assert len(set(delays)) > 1, "no jitter"


def test_zero_delay_policy_never_waits():
    assert RetryPolicy(initial_delay=0, max_delay=0).backoff(5) == 0
    assert RetryPolicy(initial_delay=0, max_delay=0).backoff(1, 60) == 0


def test_hook_maps_its_kwargs_onto_the_policy(conn):
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    assert AutoenhanceHook(retry_limit=2, retry_delay=0.5, retry_max_delay=4).retry_policy == RetryPolicy(
        max_attempts=3, initial_delay=0.5, max_delay=4.0
    )
    assert AutoenhanceHook(retry_limit=-3).retry_policy.max_attempts == 1


# ------------------------------------------------------------------------------ Retry-After
def test_parse_retry_after():
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("0") == 0.0
    # not sensible: the normal backoff applies instead of a zero-delay burst
    for value in ("-3", "nan", "NaN", "inf", "-inf", "1e400", "soon", "Mon, 99 Foo"):
        assert parse_retry_after(value) is None, value
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    assert parse_retry_after(past) is None
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= parse_retry_after(future) <= 60


# ------------------------------------------------------------------------------ error mapping
@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, AutoenhanceClientError),
        (401, AutoenhanceAuthError),
        (402, AutoenhanceCreditsError),
        (403, AutoenhanceAuthError),
        (404, AutoenhanceNotFoundError),
        (405, AutoenhanceClientError),
        (409, AutoenhanceConflictError),
        (418, AutoenhanceClientError),
        (422, AutoenhanceUnprocessableError),
        (429, AutoenhanceTransientError),
        (500, AutoenhanceTransientError),
        (502, AutoenhanceTransientError),
        (503, AutoenhanceTransientError),
        (504, AutoenhanceTransientError),
        (501, AutoenhanceAPIError),
    ],
)
def test_error_for_status_classes(status, cls):
    err = error_for_status(status, "GET", "/v3/x")
    assert type(err) is cls
    assert err.status_code == status
    # Permanent client errors fail the task at once; everything else stays retryable by Airflow.
    assert isinstance(err, AirflowFailException) is (400 <= status < 500 and status != 429)


def test_retryable_statuses():
    retryable = {s for s in range(400, 600) if is_retryable_status(s)}
    assert retryable == {429, *range(500, 600)} - {501}


@pytest.mark.parametrize(
    ("body", "text", "detail"),
    [
        ('{"message": "Unauthorized", "detail": {}}', "returned HTTP 400: Unauthorized", None),
        ('{"detail": "Not found"}', "returned HTTP 400: Not found", None),
        (
            '{"error": "bad key", "errors": {"json": {"x": ["y"]}}}',
            "bad key — json.x: y",
            {"json": {"x": ["y"]}},
        ),
        ('["a list"]', 'returned HTTP 400: ["a list"]', None),
        ("plain text body", "returned HTTP 400: plain text body", None),
        ("", "returned HTTP 400", None),
    ],
)
def test_error_bodies_are_understood(body, text, detail):
    err = error_for_status(400, "GET", "/v3/orders/", body)
    assert str(err).startswith("Autoenhance API GET /v3/orders/ returned HTTP 400")
    assert text in str(err)
    assert err.detail == detail


def test_validation_detail_formatting():
    detail = {
        "json": {"enhance_type": ["Must be one of: a, b."], "rating": ["Too big.", "Bad."]},
        "query": "bad",
    }
    assert format_detail(detail) == (
        "json.enhance_type: Must be one of: a, b., json.rating: Too big.; Bad., query: bad"
    )
    assert format_detail("just text") == "just text"
    assert format_detail({"json": {"f": "single message"}}) == "json.f: single message"


def test_explicit_message_overrides_the_body():
    err = error_for_status(404, "GET", "/v3/orders/x", '{"message": "Not Found"}', message="gone")
    assert str(err) == "Autoenhance API GET /v3/orders/x returned HTTP 404: gone"


def test_truncate():
    assert truncate("  short  ") == "short"
    long = "x" * (MAX_BODY_CHARS + 50)
    assert truncate(long) == "x" * MAX_BODY_CHARS + "… (50 more characters)"
    err = AutoenhanceAPIError(500, "GET", "/p", "y" * 10_000)
    assert len(err.body) < MAX_BODY_CHARS + 40


@pytest.mark.parametrize(
    ("status", "retryable", "ambiguous"),
    [(429, True, False), (500, True, True), (503, True, True), (404, False, True), (422, False, True)],
)
def test_failure_for_status(status, retryable, ambiguous):
    failure = failure_for_status(status, "POST", "/v3/images/", "", {"Retry-After": "4"})
    assert failure.retryable is retryable
    assert failure.ambiguous is ambiguous
    assert failure.retry_after == 4.0
    assert failure.reason == f"HTTP {status}"


def test_failure_for_exception_redacts_urls_and_tracks_whether_sent():
    exc = ConnectionError(
        "Max retries exceeded with url: /up/a.jpg?X-Amz-Signature=SECRETSIG (Caused by x)"
        "\nsecond line SECRET2"
    )
    failure = failure_for_exception(exc, "PUT", "https://bucket.test/up/a.jpg?<redacted>", sent=False)
    assert isinstance(failure.error, AutoenhanceConnectionError)
    assert failure.retryable is True
    assert failure.ambiguous is False
    assert failure.reason == "ConnectionError"
    assert "SECRETSIG" not in str(failure.error)
    assert "SECRET2" not in str(failure.error)
    assert "/up/a.jpg?<redacted>" in str(failure.error)
    assert failure_for_exception(exc, "GET", "/p", sent=True).ambiguous is True


# ------------------------------------------------------------------------------ Retrier
def _failure(retryable=True, ambiguous=False, retry_after=None) -> Failure:
    return Failure(
        error=AutoenhanceTransientError(503, "GET", "/p"),
        retryable=retryable,
        ambiguous=ambiguous,
        retry_after=retry_after,
    )


def test_retrier_gives_up_after_max_attempts():
    retrier = Retrier(RetryPolicy(max_attempts=3, initial_delay=0, max_delay=0), resend_safe=True)
    assert retrier.next_delay(_failure()) == 0
    assert retrier.next_delay(_failure()) == 0
    with pytest.raises(AutoenhanceTransientError):
        retrier.next_delay(_failure())
    assert retrier.failed_attempts == 3


def test_retrier_never_retries_permanent_failures():
    retrier = Retrier(RetryPolicy(), resend_safe=True)
    with pytest.raises(AutoenhanceTransientError):
        retrier.next_delay(_failure(retryable=False))


def test_retrier_does_not_resend_ambiguous_unsafe_requests():
    unsafe = Retrier(RetryPolicy(initial_delay=0, max_delay=0), resend_safe=False)
    assert unsafe.next_delay(_failure(ambiguous=False)) == 0  # refused before any work: fine
    with pytest.raises(AutoenhanceTransientError):
        unsafe.next_delay(_failure(ambiguous=True))
    safe = Retrier(RetryPolicy(initial_delay=0, max_delay=0), resend_safe=True)
    assert safe.next_delay(_failure(ambiguous=True)) == 0


def test_retrier_bounds_the_total_time():
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=50, max_delay=200, max_elapsed=300)
    retrier = Retrier(policy, resend_safe=True, clock=clock)
    assert retrier.next_delay(_failure(retry_after=100)) == 100
    clock.now += 100
    assert retrier.next_delay(_failure(retry_after=100)) == 100
    clock.now += 100
    # 200 s spent: a 101 s wait would overrun the 300 s budget.
    with pytest.raises(AutoenhanceTransientError):
        retrier.next_delay(_failure(retry_after=101))


# ------------------------------------------------------------------------------ exception classes
@pytest.mark.parametrize(
    ("cls", "fails_task"),
    [
        (AutoenhanceConfigError, True),
        (AutoenhanceValidationError, True),
        (AutoenhanceSourceError, True),
        (AutoenhanceClientError, True),
        (AutoenhanceAuthError, True),
        (AutoenhanceNotFoundError, True),
        (AutoenhanceUnprocessableError, True),
        (AutoenhanceOrderFailedError, True),
        (AutoenhanceTransientError, False),
        (AutoenhanceConnectionError, False),
        (AutoenhanceStorageError, False),
        (AutoenhanceTimeoutError, False),
        (AutoenhanceAPIError, False),
    ],
)
def test_exception_hierarchy(cls, fails_task):
    assert issubclass(cls, AutoenhanceError)
    assert issubclass(cls, AirflowException)
    assert issubclass(cls, AirflowFailException) is fails_task


def test_validation_errors_are_value_errors():
    assert issubclass(AutoenhanceValidationError, ValueError)


@pytest.mark.parametrize("status", [401, 404, 422, 503])
def test_api_errors_survive_pickling(status):
    err = error_for_status(
        status, "POST", "/v3/images/", '{"message": "m", "detail": {"json": {"f": ["x"]}}}'
    )

    clone = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes

    assert type(clone) is type(err)
    assert str(clone) == str(err)
    assert (clone.status_code, clone.method, clone.path, clone.detail, clone.api_message) == (
        status,
        "POST",
        "/v3/images/",
        {"json": {"f": ["x"]}},
        "m",
    )


def test_order_failed_error_lists_names_and_reasons_and_pickles():
    failed = [
        {"image_id": "i-1", "image_name": "kitchen.jpg", "status": "error", "status_reason": "rate limited"},
        {"image_id": "i-2", "image_name": None, "status": "expired", "status_reason": None},
    ]
    err = AutoenhanceOrderFailedError("o-1", failed)

    text = str(err)
    assert "order o-1: 2 image(s) failed" in text
    assert "kitchen.jpg: error (rate limited)" in text
    assert "i-2: expired" in text
    clone = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert str(clone) == text
    assert clone.failed_images == failed


def test_order_failed_error_lists_at_most_20():
    err = AutoenhanceOrderFailedError("o", [{"image_name": f"n{i}", "status": "error"} for i in range(25)])
    assert "n19" in str(err)
    assert "n20" not in str(err)
    assert "and 5 more" in str(err)


def test_an_echoed_key_is_cut_out_of_error_bodies():
    key = "ae-test-KEY-4f9c2d71b8"
    failure = failure_for_status(403, "GET", "/v3/orders/x", f'{{"message": "bad key {key}"}}', secret=key)
    assert key not in str(failure.error)
    assert "***" in str(failure.error)


def test_tls_failures_are_not_retried_whatever_wraps_them():
    import ssl

    import httpx
    import requests

    from autoenhance_provider.http.policy import is_tls_failure

    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrapped_httpx = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")
    wrapped_httpx.__cause__ = cert
    assert is_tls_failure(wrapped_httpx)
    assert is_tls_failure(requests.exceptions.SSLError(cert))
    assert not is_tls_failure(httpx.ConnectError("connection refused"))
    assert not failure_for_exception(wrapped_httpx, "GET", "/x", sent=False).retryable
    assert failure_for_exception(httpx.ConnectError("refused"), "GET", "/x", sent=False).retryable


# ------------------------------------------------------------------------------ proxy (async client)
def test_the_async_proxy_is_read_from_the_environment_as_requests_reads_it(monkeypatch):
    from autoenhance_provider.http.aio import Proxy

    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert Proxy.from_environment("https://api.autoenhance.ai") == Proxy()

    monkeypatch.setenv("HTTPS_PROXY", "http://corp%40user:s3cr%2Ft@proxy.corp:3128")
    proxy = Proxy.from_environment("https://api.autoenhance.ai")
    assert proxy.url == "http://proxy.corp:3128"
    assert proxy.headers == {"Authorization": "Basic Y29ycEB1c2VyOnMzY3IvdA=="}  # corp@user:s3cr/t
    assert "s3cr" not in repr(proxy)
    assert "Basic" not in repr(proxy)

    monkeypatch.setenv("NO_PROXY", ".autoenhance.ai")
    assert Proxy.from_environment("https://api.autoenhance.ai") == Proxy()
