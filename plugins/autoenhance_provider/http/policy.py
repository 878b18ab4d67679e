"""The retry and redirect rules: what is retried, how long to wait, when to give up, which hops are allowed.

Transports only report *what happened* (an HTTP status, or an exception and whether the request
could have reached the server); this module turns that into a :class:`Failure` and the
:class:`Retrier` decides whether another attempt is allowed, how long to wait, and says so in the
log. :func:`check_hop` is the rule every URL (first request, redirect, presigned URL) passes
before any connection; :class:`Redirects` follows the hops of one attempt. Both transports use
these, so a rule about retries or redirects is written once.
"""

from __future__ import annotations

import email.utils
import math
import random
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

from autoenhance_provider.connection import AutoenhanceConnectionConfig, is_loopback
from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceConnectionError,
    AutoenhanceCreditsError,
    AutoenhanceError,
    AutoenhanceTransientError,
    RefusedURL,
    error_for_status,
    is_retryable_status,
)
from autoenhance_provider.http.limits import MalformedResponse
from autoenhance_provider.http.redaction import redact_secret, redact_url, redact_urls_in

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


class RetryPolicy(NamedTuple):
    """Exponential backoff with jitter, bounded in attempts and in total time (immutable)."""

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


class Failure(NamedTuple):
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
    """Retry-After as seconds (a number or an HTTP date); None when absent or not sensible."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds) or seconds < 0:
        return None  # negative, NaN or infinite: use the normal backoff, never a zero-delay burst
    return seconds


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
    error = error_for_status(status, method, path, redact_secret(body, secret), conn_id=conn_id)
    retry_after = parse_retry_after((headers or {}).get("Retry-After"))
    return Failure(
        error=error,
        retryable=is_retryable_status(status) and not isinstance(error, AutoenhanceCreditsError),
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
    # Exception texts from urllib3/aiohttp may quote the full URL; keep only the first line
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

    def pause(self, failure: Failure, log: Any, method: str, shown: str) -> float:
        """:meth:`next_delay`, and the one warning line every retried request logs."""
        delay = self.next_delay(failure)
        log.warning(
            "Autoenhance %s %s failed (%s); retry %d of %d in %.1fs",
            method,
            shown,
            failure.reason,
            self.failed_attempts,
            self.policy.max_attempts - 1,
            delay,
        )
        return delay


def malformed_failure(exc: MalformedResponse, method: str, shown: str, conn_id: str | None) -> Failure:
    """A success status whose answer is not what the endpoint promises: retried, like a 5xx."""
    error = AutoenhanceTransientError(200, method, shown, str(exc), conn_id=conn_id)
    return Failure(error=error, retryable=True, ambiguous=True, reason=str(exc))


class Redirects:
    """The hops of one attempt: each URL checked before it is contacted, redirects followed by hand.

    Iterating yields the URL of each hop (checked by :func:`check_hop`); :meth:`follow` reads an
    answer and says whether it redirects (then the next hop is its ``Location``). A redirect
    without ``Location``, or one that turns a request with a body into a GET, is a malformed
    answer. ``api_host_only`` refuses a hop to another host (a session that carries the key).
    """

    def __init__(
        self, url: str, method: str, config: AutoenhanceConnectionConfig, *, api_host_only: bool = False
    ) -> None:
        self.url = url
        self.method = method
        self.config = config
        self.api_host_only = api_host_only
        self.status = 0

    def __iter__(self) -> Iterator[str]:
        for _ in range(MAX_REDIRECTS + 1):
            check_hop(self.url, self.method, self.config)
            yield self.url
        raise AutoenhanceAPIError(self.status, self.method, redact_url(self.url), "too many redirects")

    def follow(self, status: int, location: str | None) -> bool:
        """Whether ``status`` redirects; if so, the next hop is ``location``."""
        if status not in REDIRECT_STATUSES:
            return False
        self.status = status
        if not location:
            raise MalformedResponse(f"HTTP {status} without a Location")
        if self.method not in ("GET", "HEAD") and status not in (307, 308):
            raise MalformedResponse(f"HTTP {status} redirect answering a {self.method}")
        target = urljoin(self.url, location)
        if self.api_host_only and not self.config.same_origin(target):
            raise AutoenhanceAPIError(status, self.method, redact_url(self.url), "redirected to another host")
        self.url = target
        return True


def check_hop(url: str, method: str, config: AutoenhanceConnectionConfig) -> None:
    """Refuse, before any connection or name lookup, a hop the key or the data must not take.

    Plain ``http://`` is allowed only to loopback and to the configured API origin itself (which
    the connection allows only with ``allow_insecure_http``): a redirect or a presigned URL that
    downgrades to http on another host is refused on every hop.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise RefusedURL(0, method, "<unparseable URL>", "refusing an unparseable URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedURL(0, method, redact_url(url), "refusing a URL that is not http(s)")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not config.same_origin(url):
        raise RefusedURL(0, method, redact_url(url), "refusing plain http:// to another machine (no TLS)")
