"""Every error the provider raises, in one place.

Permanent problems (bad input, bad credentials, unknown ids, rejected settings) derive from
:class:`AirflowFailException` so that Airflow fails the task at once instead of burning retries.
Transient problems (rate limiting, server errors, network) are raised only after the hook's own
retries are exhausted, and stay retryable by Airflow.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

from autoenhance_provider.compat import AirflowException, AirflowFailException

#: Bodies quoted in exceptions are cut to this many characters.
MAX_BODY_CHARS = 500

_SECRET_FORMS: list[str] = []
_SECRETS_LOCK = threading.Lock()


def register_secret(secret: str) -> None:
    """Remember an API key so that no exception, event or log line of this process can quote it.

    A server may echo the key in any form: raw, JSON-escaped, percent-encoded, as Python bytes.
    """
    if not secret:
        return
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret).replace("/", "\\/")[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret, safe=""),
        repr(secret.encode("utf-8", "replace"))[2:-1],
    }
    with _SECRETS_LOCK:
        known = set(_SECRET_FORMS) | {f for f in forms if len(f) >= 4}
        _SECRET_FORMS[:] = sorted(known, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` without any registered key, in any of its forms."""
    if not text or not _SECRET_FORMS:
        return text
    for form in _SECRET_FORMS:
        if form in text:
            text = text.replace(form, "***")
    return text


def truncate(text: str, limit: int = MAX_BODY_CHARS) -> str:
    """Shorten ``text`` for a log line or an exception message."""
    text = text.strip()
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


class AutoenhanceError(AirflowException):
    """Base class of every error raised by this provider; its message never quotes an API key."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(scrub(a) if isinstance(a, str) else a for a in args))


class AutoenhanceConfigError(AutoenhanceError, AirflowFailException):
    """The Airflow connection for Autoenhance is missing or invalid."""


class AutoenhanceValidationError(AutoenhanceError, AirflowFailException, ValueError):
    """An argument was rejected on the client side, before any request was sent."""


class AutoenhanceSourceError(AutoenhanceValidationError):
    """One or more input files are missing, unreadable or of an unsupported type."""


class AutoenhanceConnectionError(AutoenhanceError):
    """The API could not be reached (after retries)."""


class AutoenhanceAPIError(AutoenhanceError):
    """The API answered with an error status.

    Carries what is needed to understand the failure, never the API key or a presigned
    URL's signature.
    """

    def __init__(
        self,
        status_code: int,
        method: str,
        path: str,
        body: str = "",
        *,
        message: str | None = None,
        detail: Any = None,
        conn_id: str | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.status_code = status_code  # type: ignore[assignment]  # AirflowException's is an HTTPStatus
        self.method = method
        self.path = scrub(path)
        self.body = truncate(scrub(body))
        self.detail = json.loads(scrub(json.dumps(detail, default=str))) if detail else detail
        self.api_message = scrub(message) if message else message
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"Autoenhance API {self.method} {self.path} returned HTTP {self.status_code}"
        if self.api_message:
            text += f": {self.api_message}"
        if self.detail:
            text += f" — {format_detail(self.detail)}"
        elif self.body and not self.api_message:
            text += f": {self.body}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_api_error,
            (
                type(self),
                self.status_code,
                self.method,
                self.path,
                self.body,
                self.api_message,
                self.detail,
                self.conn_id,
            ),
        )


def _rebuild_api_error(
    cls: type[AutoenhanceAPIError],
    status_code: int,
    method: str,
    path: str,
    body: str,
    message: str | None,
    detail: Any,
    conn_id: str | None = None,
) -> AutoenhanceAPIError:
    return cls(status_code, method, path, body, message=message, detail=detail, conn_id=conn_id)


def format_detail(detail: Any) -> str:
    """Render APIFlask's ``{"json": {"field": ["msg"]}}`` detail as ``json.field: msg``."""
    if isinstance(detail, dict):
        parts: list[str] = []
        for location, fields in detail.items():
            if isinstance(fields, dict):
                for field, messages in fields.items():
                    text = "; ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
                    parts.append(f"{location}.{field}: {text}")
            else:
                parts.append(f"{location}: {fields}")
        return truncate(", ".join(parts))
    return truncate(str(detail))


class AutoenhanceClientError(AutoenhanceAPIError, AirflowFailException):
    """A 4xx answer that retrying cannot fix (400, 402, 403, 405, 409…)."""


class AutoenhanceAuthError(AutoenhanceClientError):
    """401/403: the API key is missing, wrong or not allowed to do this."""

    def _describe(self) -> str:
        conn = f"connection {self.conn_id!r}" if self.conn_id else "the Autoenhance connection"
        where = f"Admin → Connections → {self.conn_id}" if self.conn_id else "the connection"
        return (
            f"Autoenhance rejected the API key of {conn}: {super()._describe()}. Fix: put a valid key "
            f"(app.autoenhance.ai → API) in the password field of {where}; a retry with this key cannot help."
        )


class AutoenhanceNotFoundError(AutoenhanceClientError):
    """404: the order or image does not exist (or was deleted)."""


class AutoenhanceConflictError(AutoenhanceClientError):
    """409: the resource already exists or is in a state that forbids the call."""


class AutoenhanceUnprocessableError(AutoenhanceClientError):
    """422: the API rejected a field; :attr:`detail` names it."""


class AutoenhanceCreditsError(AutoenhanceClientError):
    """402: the account has no credits left for a full-size download."""


class AutoenhanceTransientError(AutoenhanceAPIError):
    """429 or 5xx that persisted through every retry; Airflow may retry the task."""


class RefusedURL(AutoenhanceAPIError):
    """A URL the client will not contact (not http(s), or plain http to another machine)."""


class BodyTooLarge(AutoenhanceAPIError):
    """An answer larger than the provider will ever read."""


class AutoenhanceStorageError(AutoenhanceError):
    """The presigned upload or the asset download failed at the storage host."""


class SignedURLRefused(AutoenhanceStorageError):
    """A storage or asset host answered 401/403 to a signed URL: expired, or signed for other headers."""


class AutoenhanceDownloadError(AutoenhanceStorageError):
    """A download's body is not a complete image (HTML, an error page, cut short…); a retry repairs it."""


class AutoenhanceOrderFailedError(AutoenhanceError, AirflowFailException):
    """Processing finished, but some images ended in ``error`` (or expired)."""

    def __init__(self, order_id: str, failed_images: list[dict[str, Any]]) -> None:
        self.order_id = order_id
        self.failed_images = failed_images
        listed = "; ".join(
            f"{img.get('image_name') or img.get('image_id')}: {img.get('status')}"
            + (f" ({img['status_reason']})" if img.get("status_reason") else "")
            for img in failed_images[:20]
        )
        more = f" and {len(failed_images) - 20} more" if len(failed_images) > 20 else ""
        duplicates = sum(refusal_kind(img.get("status_reason")) == "duplicate_name" for img in failed_images)
        hint = (
            f". {duplicates} of them were refused by the limit on the same file name (at most 30 images "
            "with exactly the same name per hour): give files names unique per listing, or an hour later "
            "clear the upload task and its downstream tasks in the same DAG run; the upload registers only "
            "the refused images again"
            if duplicates
            else ""
        )
        super().__init__(
            f"Autoenhance order {order_id}: {len(failed_images)} image(s) failed processing: "
            f"{listed}{more}{hint}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.order_id, self.failed_images))


class AutoenhanceDailyLimitError(AutoenhanceOrderFailedError):
    """Images were refused by the account's daily enhancement limit (docs "Rate Limits").

    Not retried by Airflow: the limit resets daily (or on a capacity upgrade), and the way
    forward is to clear the wait in the *same* DAG run then, which processes only the refused
    images of the same order (``resume`` says exactly how, see docs/limits.md).
    """

    def __init__(
        self,
        order_id: str,
        failed_images: list[dict[str, Any]],
        processed: int | None = None,
        total: int | None = None,
        resume: str | None = None,
    ) -> None:
        self.order_id = order_id
        self.failed_images = failed_images
        self.processed = processed
        self.total = total
        self.resume = resume
        refused = [img for img in failed_images if refusal_kind(img.get("status_reason")) == "daily_limit"]
        others = [img for img in failed_images if img not in refused]
        reasons = sorted({str(img.get("status_reason")) for img in refused})
        names = ", ".join(str(img.get("image_name") or img.get("image_id")) for img in refused[:10])
        more = f" and {len(refused) - 10} more" if len(refused) > 10 else ""
        done = f"{processed} of {total} processed; " if processed is not None and total is not None else ""
        other = "; ".join(
            f"{img.get('image_name') or img.get('image_id')}: {img.get('status_reason')}"
            for img in others[:10]
        )
        if others:
            other = f" {len(others)} other image(s) failed for a reason of their own: {other}."
        said = truncate(" | ".join(reasons), 300)
        AutoenhanceError.__init__(
            self,
            f"Autoenhance order {order_id}: {done}{len(refused)} image(s) were refused by the account's "
            f"daily enhancement limit ({names}{more}; Autoenhance said: {said})."
            f"{other} The limit resets daily (or when the account's capacity is upgraded). "
            + (resume or DAILY_LIMIT_RESUME),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.order_id, self.failed_images, self.processed, self.total, self.resume))


#: How to resume after a daily-limit refusal, when the task's own ids are not known.
DAILY_LIMIT_RESUME = (
    "To resume after the reset without uploading or paying for anything twice: clear the failed wait "
    "(OrderProcessedSensor) and its downstream tasks in the same DAG run; it sends only the refused "
    "images of this order for processing again, waits for them, and the download fetches only what "
    "is missing. Do not start a new DAG run: it would make a new order and upload and enhance every "
    "image again."
)


class AutoenhanceDuplicateNameError(AutoenhanceTransientError):
    """Registering an image kept being refused (429) by the limit on one file name per hour."""


def refusal_kind(reason: Any) -> str | None:
    """Which account limit an image's ``status_reason`` names, matched loosely (the API's wording
    is unpublished): ``"daily_limit"``, ``"duplicate_name"`` or None (a failure of its own)."""
    if not isinstance(reason, str) or not reason.strip():
        return None
    text = " ".join(reason.lower().split())
    if re.search(r"duplicate|same (file ?)?name|file ?name.{0,40}(limit|too many|per hour)", text):
        return "duplicate_name"
    day = re.search(r"daily|per day|a day|each day|today|24 ?h", text)
    limit = re.search(r"limit|quota|capacity|exceed|maximum|reached|too many", text)
    if (day and limit) or re.search(r"(enhancement|hard) limit", text):
        return "daily_limit"
    return None


class AutoenhanceTimeoutError(AutoenhanceError):
    """Waiting for an order exceeded its timeout."""


# ----------------------------------------------------------------------- from an HTTP status
def is_retryable_status(status: int) -> bool:
    """429 (rate limited) and every 5xx except 501 (the server will never implement the call)."""
    return status == 429 or (500 <= status < 600 and status != 501)


def _api_message(body: str) -> tuple[str | None, Any]:
    """APIFlask error bodies are ``{"message": ..., "detail": ...}``; anything else is plain text."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    message = data.get("message") or data.get("error")
    detail = data.get("detail") or data.get("errors")
    if isinstance(detail, str) and not message:
        message, detail = detail, None
    return (str(message) if message else None), (detail or None)


_CLIENT_ERRORS: dict[int, type[AutoenhanceClientError]] = {
    401: AutoenhanceAuthError,
    402: AutoenhanceCreditsError,
    403: AutoenhanceAuthError,
    404: AutoenhanceNotFoundError,
    409: AutoenhanceConflictError,
    422: AutoenhanceUnprocessableError,
}


def error_for_status(
    status: int,
    method: str,
    path: str,
    body: str = "",
    *,
    message: str | None = None,
    conn_id: str | None = None,
) -> AutoenhanceAPIError:
    """The exception a task sees for an HTTP error status."""
    parsed_message, detail = _api_message(body)
    message = message or parsed_message
    if 400 <= status < 500 and _about_credits(message, body):
        # Out of credits: 402 in the docs' spirit, but the status is undocumented (400? 403? 429?).
        cls: type[AutoenhanceAPIError] = AutoenhanceCreditsError
    elif is_retryable_status(status):
        cls = AutoenhanceTransientError
    elif 400 <= status < 500:
        cls = _CLIENT_ERRORS.get(status, AutoenhanceClientError)
    else:
        cls = AutoenhanceAPIError
    return cls(status, method, path, body, message=message, detail=detail, conn_id=conn_id)


def _about_credits(message: str | None, body: str) -> bool:
    text = f"{message or ''} {body[:500]}".lower()
    return "credit" in text and ("insufficient" in text or "no credit" in text or "out of credit" in text)
