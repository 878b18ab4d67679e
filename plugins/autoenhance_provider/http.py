"""HTTP machinery shared by the sync hook (``requests``) and the async hook (``httpx``).

The transports only report *what happened*: an HTTP status, or an exception and whether the
request could have reached the server. Everything else — which outcomes are retried, how long to
wait, when to give up, which exception the task sees, what may be logged — is decided here, once:
the retry policy, redirects that never carry the key to another host, redaction of keys and
presigned signatures, and bounded reads of every body.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from autoenhance_provider import __version__
from autoenhance_provider.connection import AutoenhanceConnectionConfig, is_loopback
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

#: Block size of streamed uploads and downloads.
CHUNK_SIZE = 1024 * 1024
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
#: Error bodies are read up to this size (enough for any APIFlask error, never a whole page).
ERROR_BODY_BYTES = 4096

Timeout = float | tuple[float, float]


# ---------------------------------------------------------------------------------------- policy
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
    error = error_for_status(status, method, path, redact_secret(body, secret), conn_id=conn_id)
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


# ------------------------------------------------------------------------------------- redaction
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


_URL_QUERY = re.compile(r"((?:https?://|/)[^\s?'\"]*)\?[^\s'\")]+")


def redact_urls_in(text: str) -> str:
    """Strip query strings from every URL-looking token in ``text``."""
    return _URL_QUERY.sub(r"\1?<redacted>", text)


def redact_secret(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` cut out (a server may echo the key it was sent)."""
    return text.replace(secret, "***") if secret and text else text


class RedactQueryStrings(logging.Filter):
    """Strip query strings (presigned signatures) from urllib3/httpx debug log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_urls_in(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_urls_in(a) if isinstance(a, str) else a for a in record.args)
        return True


_FILTER = RedactQueryStrings()


def install_log_redaction() -> None:
    for name in ("urllib3.connectionpool", "httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


install_log_redaction()


@cache
def user_agent(client: str = "requests") -> str:
    """``airflow-provider-autoenhance/<v> apache-airflow/<v> python-<client>/<v>``, computed once."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:  # pragma: no cover - e.g. only the task SDK installed
            return "unknown"

    return (
        f"airflow-provider-autoenhance/{__version__} apache-airflow/{installed('apache-airflow')} "
        f"python-{client}/{installed(client)}"
    )


_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_S3_MESSAGE = re.compile(r"<Message>([^<]+)</Message>")


def storage_error_text(body: str) -> str:
    """The Code and Message of an S3-style XML error, or the start of the body."""
    code, message = _S3_CODE.search(body), _S3_MESSAGE.search(body)
    if code:
        return f"{code.group(1)}" + (f": {message.group(1)}" if message else "")
    return redact_urls_in(body.strip()[:200])


def check_hop(url: str, method: str = "GET") -> None:
    """Refuse a URL the client must never follow: not http(s), or plain http to another machine."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise AutoenhanceAPIError(0, method, "<unparseable URL>", "refusing an unparseable URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AutoenhanceAPIError(0, method, redact_url(url), "refusing a URL that is not http(s)")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise AutoenhanceAPIError(
            0, method, redact_url(url), "refusing plain http:// to a non-local host (no TLS)"
        )


# -------------------------------------------------------------------------------- sync transport
@dataclass(frozen=True)
class Recovered:
    """What a recovery check found: the call already took effect, and this is its result."""

    value: Any


_URLLIB3_BLOCKSIZE = int(urllib3.__version__.split(".")[0]) >= 2


class _BlockSizeAdapter(HTTPAdapter):
    """Streams request bodies in ``CHUNK_SIZE`` blocks instead of urllib3's 16 KiB.

    A 16 KiB block costs a file read, a ``sendall`` and a few Python calls: 64 per MB uploaded,
    which made our client use 30 % more CPU per upload than a bare session (``make bench``).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if _URLLIB3_BLOCKSIZE:  # urllib3 1.26 has no blocksize in its pool keys
            kwargs.setdefault("blocksize", CHUNK_SIZE)
        super().init_poolmanager(*args, **kwargs)


class SyncTransport:
    """Two ``requests`` sessions: one with the key for the API host, one without for any other host.

    Redirects are followed by hand so the key never reaches another host; every request has
    explicit (connect, read) timeouts and goes through the :class:`Retrier`.
    """

    def __init__(
        self,
        config: AutoenhanceConnectionConfig,
        policy: RetryPolicy,
        log: logging.Logger | Any,
        *,
        pool_size: int = 16,
        timeout: Timeout | None = None,
        conn_id: str | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.log = log
        self.pool_size = max(1, int(pool_size))
        self.timeout = config.timeouts(timeout)
        self.conn_id = conn_id
        self._lock = threading.Lock()
        self._sessions: dict[str, requests.Session] = {}

    def _new_session(self, headers: dict[str, str]) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = user_agent()
        session.headers.update(headers)
        session.verify = self.config.verify
        adapter = _BlockSizeAdapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def _lazy_session(self, name: str, headers: Callable[[], dict[str, str]]) -> requests.Session:
        """Create a session once, even when upload threads ask for it at the same moment."""
        session = self._sessions.get(name)
        if session is None:
            with self._lock:
                session = self._sessions.get(name)
                if session is None:
                    session = self._sessions[name] = self._new_session(headers())
        return session

    @property
    def session(self) -> requests.Session:
        """Session for the API host only: it carries the API key."""
        return self._lazy_session("api", self.config.api_headers)

    @property
    def storage_session(self) -> requests.Session:
        """Key-less session for presigned uploads, asset hosts and any other host."""
        return self._lazy_session("storage", dict)

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            session.close()

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.config.base_url}{path}"

    def shown(self, url: str) -> str:
        """How a URL appears in logs and errors: the path for the API host, redacted elsewhere."""
        redacted = redact_url(url)
        return urlsplit(redacted).path if self.config.same_origin(url) else redacted

    def send_once(
        self, method: str, url: str, *, keyless: bool = False, timeout: Timeout | None = None, **kwargs: Any
    ) -> requests.Response:
        """One attempt, following redirects by hand so the key never reaches another host."""
        for _ in range(MAX_REDIRECTS + 1):
            use_key = not keyless and self.config.same_origin(url)
            session = self.session if use_key else self.storage_session
            # verify per request: a session's verify loses to REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
            # (requests#3829), which silently replaced the connection's ca_bundle.
            response = session.request(
                method,
                url,
                allow_redirects=False,
                timeout=timeout or self.timeout,
                verify=self.config.verify,
                **kwargs,
            )
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            if method not in ("GET", "HEAD") and response.status_code not in (307, 308):
                return response
            if "data" in kwargs:  # a streamed body cannot be sent twice
                return response
            response.close()
            url = urljoin(url, location)
            # The Location is complete (often a presigned URL): re-adding the query params
            # would change it and invalidate its signature.
            kwargs.pop("params", None)
        raise AutoenhanceAPIError(response.status_code, method, redact_url(url), "too many redirects")

    def attempts(
        self,
        method: str,
        path: str,
        *,
        recover: Callable[[], Recovered | None] | None = None,
        idempotent: bool | None = None,
        policy: RetryPolicy | None = None,
        data_factory: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response | Recovered:
        """Send with retries. Returns the first non-error response, or what ``recover`` found."""
        url = self.url(path)
        shown = self.shown(url)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        retrier = Retrier(policy or self.policy, resend_safe=idempotent or recover is not None)
        while True:
            if data_factory is not None:
                kwargs["data"] = data_factory()
            try:
                response = self.send_once(method, url, **kwargs)
            except requests.RequestException as exc:
                failure = failure_for_requests_exception(exc, method, shown)
            else:
                if response.status_code < 400:
                    return response
                failure = failure_for_status(
                    response.status_code,
                    method,
                    shown,
                    error_body(response),
                    response.headers,
                    secret=self.config.api_key,
                    conn_id=self.conn_id,
                )
                response.close()
            delay = retrier.next_delay(failure)
            self.log.warning(
                "Autoenhance %s %s failed (%s); retry %d of %d in %.1fs",
                method,
                shown,
                failure.reason,
                retrier.failed_attempts,
                retrier.policy.max_attempts - 1,
                delay,
            )
            time.sleep(delay)
            if failure.ambiguous and recover is not None:
                found = recover()
                if found is not None:
                    self.log.info("%s %s had taken effect before the error; not re-sending", method, shown)
                    return found

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """A JSON API call: the decoded body (None when empty), or what a recovery check found."""
        outcome = self.attempts(method, path, **kwargs)
        if isinstance(outcome, Recovered):
            return outcome.value
        with outcome:
            if not outcome.content:
                return None
            try:
                return outcome.json()
            except ValueError:
                raise AutoenhanceAPIError(
                    outcome.status_code, method, path, "the response was not JSON"
                ) from None


def read_capped(chunks: Iterator[bytes], limit: int) -> bytes:
    """At most ``limit`` bytes of a (possibly streamed) body."""
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


def error_body(response: requests.Response) -> str:
    try:
        raw = read_capped(response.iter_content(chunk_size=16 * 1024), ERROR_BODY_BYTES)
    except (requests.RequestException, RuntimeError):
        return ""
    return raw.decode("utf-8", "replace")


def failure_for_requests_exception(exc: requests.RequestException, method: str, path: str) -> Failure:
    network = isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )
    return failure_for_exception(exc, method, path, sent=_may_have_been_sent(exc), network=network)


def _may_have_been_sent(exc: requests.RequestException) -> bool:
    """False only when the connection was never established (refused, DNS, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, urllib3.exceptions.NewConnectionError):
            return False
    return True


# ------------------------------------------------------------------------------- async transport
#: Requests in flight per shared client (one per event loop and connection). httpcore's pool
#: bookkeeping costs O(connections x waiting requests) per request, so a burst of 1,000 polls
#: costs 0.8 ms CPU each at 4, 1.2 ms at 10, 2.9 ms at 32 (``make bench``). 6 still allows
#: 60 polls/s at 100 ms latency (1,800 waits at a 30 s interval) and keeps a triggerer far
#: below the API's limit of 300 requests/second per IP.
MAX_IN_FLIGHT = 6


class _SharedClient:
    """One ``httpx.AsyncClient`` per event loop and connection settings, counted by its users.

    A triggerer runs every wait in one loop. A client per trigger cost about 0.5 ms of CPU to
    build and close, one TCP (and TLS) connection each, and ~35 KiB of memory: at 1,000 waits
    that was a third of the triggerer's CPU for polling (``make bench``). Transports on the same
    loop with the same settings share one client and its pool; the last to close closes it. Only
    the loop's own thread touches this, so no lock is needed.
    """

    __slots__ = ("client", "slots", "users")

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.users = 0
        # Requests beyond this wait here (FIFO, O(1)) rather than in httpcore's pool, whose
        # bookkeeping costs O(connections) per request and O(queued x connections) when queued.
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)


_SHARED_CLIENTS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], _SharedClient]
] = weakref.WeakKeyDictionary()


@cache
def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """One SSL context per CA setting for the whole process (building one costs milliseconds)."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class AsyncTransport:
    """Read-only JSON GETs from an event loop, with the same policy as :class:`SyncTransport`."""

    def __init__(
        self,
        config: AutoenhanceConnectionConfig,
        policy: RetryPolicy,
        log: logging.Logger | Any,
        *,
        timeout: Timeout | None = None,
        conn_id: str | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.log = log
        self.timeout = config.timeouts(timeout)
        self.conn_id = conn_id
        self._entry: _SharedClient | None = None
        self._key: tuple[Any, ...] = ()

    def _client(self) -> _SharedClient:
        """The event loop's shared client for this connection's settings (see ``_SharedClient``)."""
        if self._entry is None:
            config = self.config
            connect, read = self.timeout
            headers = {"User-Agent": user_agent("httpx"), **config.api_headers()}
            key = (config.base_url, tuple(sorted(headers.items())), connect, read, config.verify)
            shared = _SHARED_CLIENTS.setdefault(asyncio.get_running_loop(), {})
            entry = shared.get(key)
            if entry is None or entry.client.is_closed:
                entry = shared[key] = _SharedClient(
                    httpx.AsyncClient(
                        headers=headers,
                        timeout=httpx.Timeout(read, connect=connect),
                        verify=_ssl_context(config.verify),
                        follow_redirects=False,
                        limits=httpx.Limits(
                            max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT
                        ),
                    )
                )
            entry.users += 1
            self._entry, self._key = entry, key
        return self._entry

    async def aclose(self) -> None:
        """Release the client; the last transport of the loop using it closes it."""
        entry, self._entry = self._entry, None
        if entry is None:
            return
        shared = _SHARED_CLIENTS.get(asyncio.get_running_loop(), {})
        if shared.get(self._key) is entry:
            entry.users -= 1
            if entry.users > 0:
                return
            del shared[self._key]
        await entry.client.aclose()

    async def get_json(self, path: str) -> Any:
        entry = self._client()
        retrier = Retrier(self.policy, resend_safe=True)
        while True:
            try:
                async with entry.slots:
                    response = await self._get_same_origin(entry.client, f"{self.config.base_url}{path}")
            except httpx.HTTPError as exc:
                sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                network = isinstance(exc, httpx.TransportError)
                failure = failure_for_exception(exc, "GET", path, sent=sent, network=network)
            else:
                if response.status_code < 400:
                    try:
                        return response.json() if response.content else None
                    except ValueError:
                        raise AutoenhanceAPIError(
                            response.status_code, "GET", path, "the response was not JSON"
                        ) from None
                failure = failure_for_status(
                    response.status_code,
                    "GET",
                    path,
                    response.text,
                    response.headers,
                    secret=self.config.api_key,
                    conn_id=self.conn_id,
                )
            delay = retrier.next_delay(failure)
            self.log.warning(
                "Autoenhance GET %s failed (%s); retry %d of %d in %.1fs",
                path,
                failure.reason,
                retrier.failed_attempts,
                retrier.policy.max_attempts - 1,
                delay,
            )
            await asyncio.sleep(delay)

    async def _get_same_origin(self, client: httpx.AsyncClient, url: str) -> httpx.Response:
        """GET, following redirects only within the API host (the key must not travel elsewhere)."""
        for _ in range(MAX_REDIRECTS):
            response = await client.get(url)
            location = response.headers.get("Location")
            if not (response.is_redirect and location):
                return response
            target = urljoin(url, location)
            if not self.config.same_origin(target):
                raise AutoenhanceAPIError(
                    response.status_code, "GET", urlsplit(url).path, "redirected to another host"
                )
            url = target
        raise AutoenhanceAPIError(response.status_code, "GET", urlsplit(url).path, "too many redirects")
