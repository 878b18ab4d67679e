"""The exception classes: which HTTP status is which error, what their messages say, which of them
fail the task, and that they survive pickling."""

from __future__ import annotations

import pickle

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
