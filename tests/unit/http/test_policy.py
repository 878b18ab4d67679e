"""The retry policy: backoff, Retry-After, which failures are retried or re-sent, the time budget.

The exception classes and the status -> error mapping: tests/unit/test_exceptions.py."""

from __future__ import annotations

import email.utils
import time

import pytest

from autoenhance_provider.exceptions import AutoenhanceConnectionError, AutoenhanceTransientError
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


# ------------------------------------------------------------------------------ failures
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
