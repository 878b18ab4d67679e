"""One retry and error-mapping policy, shared by the sync hook and the async trigger client.

The transport code (``requests`` or ``httpx``) only reports *what happened*: an HTTP status, or
an exception and whether the request could have reached the server. Everything else — which
outcomes are retried, how long to wait, when to give up, and which exception the task sees —
is decided here, once.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceAuthError,
    AutoenhanceClientError,
    AutoenhanceConflictError,
    AutoenhanceConnectionError,
    AutoenhanceCreditsError,
    AutoenhanceError,
    AutoenhanceNotFoundError,
    AutoenhanceTransientError,
    AutoenhanceUnprocessableError,
)


def is_retryable_status(status: int) -> bool:
    """429 (rate limited) and every 5xx except 501 (the server will never implement the call)."""
    return status == 429 or (500 <= status < 600 and status != 501)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in total time."""

    max_attempts: int = 6
    initial_delay: float = 1.0
    max_delay: float = 30.0
    max_elapsed: float = 300.0

    def backoff(self, failed_attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failed_attempts`` failures; a server's Retry-After wins."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.initial_delay * 2 ** (failed_attempts - 1))
        return random.uniform(ceiling / 2, ceiling)

    @classmethod
    def for_hook(cls, retry_limit: int, retry_delay: float, retry_max_delay: float) -> RetryPolicy:
        """The policy from a hook's ``retry_limit`` (retries after the first attempt) and delays."""
        return cls(
            max_attempts=max(1, int(retry_limit) + 1),
            initial_delay=float(retry_delay),
            max_delay=float(retry_max_delay),
        )

    def to_dict(self) -> dict[str, float]:
        return {
            "max_attempts": self.max_attempts,
            "initial_delay": self.initial_delay,
            "max_delay": self.max_delay,
            "max_elapsed": self.max_elapsed,
        }


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as the transport saw it.

    ``ambiguous`` means the server may have acted on the request (a timeout after sending, a
    dropped connection, a 5xx): re-sending is only safe for idempotent requests or after the
    caller has checked what happened.
    """

    error: AutoenhanceError
    retryable: bool
    ambiguous: bool
    retry_after: float | None = None
    reason: str = ""


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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
    if is_retryable_status(status):
        cls: type[AutoenhanceAPIError] = AutoenhanceTransientError
    elif 400 <= status < 500:
        cls = _CLIENT_ERRORS.get(status, AutoenhanceClientError)
    else:
        cls = AutoenhanceAPIError
    return cls(status, method, path, body, message=message, detail=detail, conn_id=conn_id)


def failure_for_status(
    status: int,
    method: str,
    path: str,
    body: str = "",
    headers: Mapping[str, str] | None = None,
    *,
    secret: str | None = None,
    conn_id: str | None = None,
) -> Failure:
    """Classify an HTTP error: 429 was refused before any work; 5xx may have done the work.

    ``secret`` (the API key) is cut out of the quoted body: a server may echo request headers.
    """
    if secret:
        body = body.replace(secret, "***")
    error = error_for_status(status, method, path, body, conn_id=conn_id)
    retry_after = parse_retry_after((headers or {}).get("Retry-After"))
    return Failure(
        error=error,
        retryable=is_retryable_status(status),
        ambiguous=status != 429,
        retry_after=retry_after,
        reason=f"HTTP {status}",
    )


def failure_for_exception(
    exc: BaseException, method: str, path: str, *, sent: bool, network: bool = True
) -> Failure:
    """Classify a transport error.

    ``sent`` is False when the request never left (refused, DNS); ``network`` is False for
    errors that are not about the network (a bad URL…). A TLS failure (untrusted certificate)
    is a configuration problem: retrying cannot fix it.
    """
    kind = type(exc).__name__
    error = AutoenhanceConnectionError(f"Autoenhance API {method} {path} failed: {kind}: {_brief(exc)}")
    return Failure(error=error, retryable=network and not is_tls_failure(exc), ambiguous=sent, reason=kind)


def is_tls_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it, however deeply wrapped) is a TLS/certificate error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError) or type(current).__name__ == "SSLError":
            return True
        seen.add(id(current))
        nested = current.args[0] if current.args and isinstance(current.args[0], BaseException) else None
        current = current.__cause__ or current.__context__ or nested or getattr(current, "reason", None)
    return False


def _brief(exc: BaseException) -> str:
    # Exception texts from urllib3/httpx may quote the full URL; keep only the first line
    # and strip query strings so presigned signatures never reach a log.
    text = str(exc).splitlines()[0] if str(exc) else ""
    return redact_urls_in(text)[:300]


class Retrier:
    """Counts attempts of one logical request and decides whether another one is allowed."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        resend_safe: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.resend_safe = resend_safe
        self.failed_attempts = 0
        self._clock = clock
        self._started = clock()

    def next_delay(self, failure: Failure) -> float:
        """Seconds to wait before the next attempt, or raise ``failure.error`` to give up."""
        self.failed_attempts += 1
        if not failure.retryable or (failure.ambiguous and not self.resend_safe):
            raise failure.error
        if self.failed_attempts >= self.policy.max_attempts:
            raise failure.error
        delay = self.policy.backoff(self.failed_attempts, failure.retry_after)
        if self._clock() - self._started + delay > self.policy.max_elapsed:
            raise failure.error
        return delay


def redact_url(url: str) -> str:
    """A URL safe to log: no query string (presigned signatures, tokens) and no user info."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_urls_in(text: str) -> str:
    """Strip query strings from every URL-looking token in ``text``."""
    return _URL_QUERY.sub(r"\1?<redacted>", text)


_URL_QUERY = re.compile(r"((?:https?://|/)[^\s?'\"]*)\?[^\s'\")]+")
