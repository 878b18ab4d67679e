"""HTTP machinery shared by the sync hook (``requests``) and the async hook (``aiohttp``).

The transports only report *what happened*: an HTTP status, or an exception and whether the
request could have reached the server. Everything else — which outcomes are retried, how long to
wait, when to give up, which exception the task sees, what may be logged — is decided here, once:
the retry policy, redirects that never carry the key to another host, redaction of keys and
presigned signatures, and bounded reads of every body.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import io
import json
import logging
import math
import random
import re
import socket
import ssl
import threading
import time
import weakref
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3
import urllib3.connection
import urllib3.exceptions
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    import aiohttp

from autoenhance_provider import __version__
from autoenhance_provider.connection import AutoenhanceConnectionConfig, is_loopback
from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceConnectionError,
    AutoenhanceCreditsError,
    AutoenhanceError,
    AutoenhanceStorageError,
    AutoenhanceTransientError,
    error_for_status,
    is_retryable_status,
    register_secret,
    scrub,
)
from autoenhance_provider.ratelimit import limiter_for

#: Block size of streamed uploads and downloads.
CHUNK_SIZE = 1024 * 1024
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
#: Error bodies are read up to this size (enough for any APIFlask error, never a whole page).
ERROR_BODY_BYTES = 4096

Timeout = float | tuple[float, float]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------- policy
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


# ------------------------------------------------------------------------------------- redaction
def redact_url(url: str) -> str:
    """A URL safe to log: no query string (presigned signatures, tokens), no user info, no key."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = "<redacted>" if parts.query else ""
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


_URL_QUERY = re.compile(r"((?:https?://|/)[^\s?'\"]*)\?[^\s'\")]+")


def redact_urls_in(text: str) -> str:
    """Strip query strings from every URL-looking token in ``text``, and any known key."""
    return scrub(_URL_QUERY.sub(r"\1?<redacted>", text))


def redact_secret(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` cut out, in every form a server may echo it in."""
    if secret:
        register_secret(secret)
    return scrub(text)


class RedactQueryStrings(logging.Filter):
    """Strip query strings (presigned signatures) and API keys from urllib3/aiohttp records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_urls_in(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


def _redact_arg(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact_urls_in(value)
    if isinstance(value, (bytes, list, tuple, dict)):
        return redact_urls_in(repr(value))  # header lists and raw bytes, rendered safely
    text = str(value)  # e.g. a yarl.URL
    redacted = redact_urls_in(text)
    return value if redacted == text else redacted


_FILTER = RedactQueryStrings()


def install_log_redaction() -> None:
    for name in ("urllib3.connectionpool", "urllib3.response", "aiohttp.client", "aiohttp.internal"):
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


class SignedURLRefused(AutoenhanceStorageError):
    """A storage or asset host answered 401/403 to a signed URL: expired, or signed for other headers."""


class RefusedURL(AutoenhanceAPIError):
    """A URL the client will not contact (not http(s), or plain http to another machine)."""


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


# ------------------------------------------------------------------------------- bounded bodies
#: JSON answers larger than this are refused (an order of 10,000 images is about 10 MB).
MAX_JSON_BYTES = 16 * 1024 * 1024
#: Pages of a listing read at most (15 orders a page: 15,000 orders).
MAX_PAGES = 1000


class BodyTooLarge(AutoenhanceAPIError):
    """An answer larger than the provider will ever read."""


class MalformedResponse(Exception):
    """A success status whose body is not what the endpoint promises (raised by parsers)."""


class BoundedDecoder:
    """Undo ``Content-Encoding`` ourselves, never producing more than ``limit`` bytes in all.

    HTTP clients inflate a gzip body in one go: a 600 KB bomb becomes 600 MB. Decoding with
    ``max_length`` keeps memory bounded whatever the server sends.
    """

    def __init__(
        self, encoding: str | None, limit: int, method: str, path: str, *, strict: bool = True
    ) -> None:
        self.limit, self.method, self.path = limit, method, path
        self.strict = strict  # False: stop quietly at the limit (to quote the start of an error page)
        self.full = False
        self.produced = 0
        encoding = (encoding or "identity").strip().lower()
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS)
        else:
            raise AutoenhanceAPIError(200, method, path, f"unsupported Content-Encoding {encoding!r}")

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            out = data
        else:
            try:
                out = self._zlib.decompress(data, self.limit - self.produced + 1)
            except zlib.error as exc:
                raise AutoenhanceAPIError(
                    200, self.method, self.path, f"bad compressed body: {exc}"
                ) from None
            if self._zlib.unconsumed_tail:
                self._too_large()
        self.produced += len(out)
        if self.produced > self.limit:
            self._too_large()
        return out[: max(0, len(out) - max(0, self.produced - self.limit))] if self.full else out

    def _too_large(self) -> None:
        if not self.strict:
            self.full = True
            return
        raise BodyTooLarge(
            200,
            self.method,
            self.path,
            f"the answer is larger than {self.limit // (1024 * 1024)} MB; not read",
        )


def decode_json(data: bytes, method: str, path: str) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise MalformedResponse("the answer is not JSON") from None


# ------------------------------------------------------------------------------------- deadlines
class _Deadline:
    """The wall-clock budget of the request running in this thread (see :class:`_DeadlineSocket`)."""

    def __init__(self, seconds: float, rate: float | None, cap: float | None) -> None:
        self.at = time.monotonic() + seconds
        self.rate = rate
        self.cap = cap

    def remaining(self) -> float:
        at = self.at if self.cap is None else min(self.at, self.cap)
        return at - time.monotonic()

    def moved(self, nbytes: int) -> None:
        """A transfer earns ``nbytes / rate`` more seconds: its deadline scales with its size."""
        if self.rate:
            self.at += nbytes / self.rate


_ACTIVE = threading.local()


@contextlib.contextmanager
def deadline(seconds: float, *, rate: float | None = None) -> Iterator[_Deadline]:
    """Bound every socket read and write of this thread's requests inside the block."""
    outer = getattr(_ACTIVE, "deadline", None)
    cap = getattr(_ACTIVE, "cap", None)
    current = _ACTIVE.deadline = _Deadline(seconds, rate, cap)
    try:
        yield current
    finally:
        _ACTIVE.deadline = outer


@contextlib.contextmanager
def deadline_cap(at_monotonic: float | None) -> Iterator[None]:
    """No request of this thread inside the block runs past ``at_monotonic`` (a wait's timeout)."""
    outer = getattr(_ACTIVE, "cap", None)
    _ACTIVE.cap = at_monotonic if outer is None or at_monotonic is None else min(outer, at_monotonic)
    try:
        yield
    finally:
        _ACTIVE.cap = outer


def cap_passed() -> bool:
    cap = getattr(_ACTIVE, "cap", None)
    return cap is not None and time.monotonic() >= cap


class _DeadlineRawIO(io.RawIOBase):
    """Socket reads that stop at the thread's deadline, however slowly bytes arrive."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        # Like socket.SocketIO: while a reader is open, socket.close() only marks the socket, so
        # http.client can hand a "Connection: close" socket over to the response that reads it.
        sock._io_refs += 1  # type: ignore[attr-defined]

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._sock._decref_socketios()  # type: ignore[attr-defined]
        super().close()

    def readinto(self, buffer: Any) -> int:
        with _socket_deadline(self._sock) as current:
            n = self._sock.recv_into(buffer)
        if current is not None:
            current.moved(n)
        return n


@contextlib.contextmanager
def _socket_deadline(sock: socket.socket) -> Iterator[_Deadline | None]:
    """Bound one socket operation by what is left of this thread's deadline (if any)."""
    current = getattr(_ACTIVE, "deadline", None)
    if current is None:
        yield None
        return
    remaining = current.remaining()
    if remaining <= 0:
        raise TimeoutError("the request deadline passed")
    timeout = sock.gettimeout()
    sock.settimeout(remaining if timeout is None else min(timeout, remaining))
    try:
        yield current
    finally:
        sock.settimeout(timeout)


class _DeadlineSocket:
    """A connected socket whose reads and writes obey the thread's deadline (everything else as is)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "r" in mode and "b" in mode:
            return io.BufferedReader(_DeadlineRawIO(self._sock), CHUNK_SIZE)
        return self._sock.makefile(mode, *args, **kwargs)  # type: ignore[call-overload]

    def sendall(self, data: Any, *args: Any) -> None:
        current = getattr(_ACTIVE, "deadline", None)
        if current is not None:
            current.moved(len(data))  # an upload earns time for what it sends
        with _socket_deadline(self._sock):
            self._sock.sendall(data, *args)


class _DeadlineHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)  # type: ignore[assignment,unused-ignore]


class _DeadlineHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)  # type: ignore[assignment,unused-ignore]


class _DeadlineHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


# -------------------------------------------------------------------------------- sync transport
class Recovered(NamedTuple):
    """What a recovery check found: the call already took effect, and this is its result."""

    value: Any


_URLLIB3_BLOCKSIZE = int(urllib3.__version__.split(".")[0]) >= 2  # type: ignore[attr-defined]


class _Adapter(HTTPAdapter):
    """Deadline-aware connections, and request bodies streamed in ``CHUNK_SIZE`` blocks.

    A 16 KiB block (urllib3's default) costs a file read, a ``sendall`` and a few Python calls:
    64 per MB uploaded, which made our client use 30 % more CPU per upload than a bare session.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if _URLLIB3_BLOCKSIZE:  # urllib3 1.26 has no blocksize in its pool keys
            kwargs.setdefault("blocksize", CHUNK_SIZE)
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


class _Transport:
    """What both transports know: the connection, the retry policy, the log, the timeouts."""

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
        #: The process-wide request budget for this API host (``max_requests_per_second``).
        self.limiter = limiter_for(config.base_url, config.max_requests_per_second)


class SyncTransport(_Transport):
    """Two ``requests`` sessions: one with the key for the API host, one without for any other host.

    Redirects are followed by hand so the key never reaches another host, and each hop is checked
    before any connection. Every request has a total deadline (connect + headers + body), bodies
    are read with a bound, and every attempt goes through the :class:`Retrier`.
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
        super().__init__(config, policy, log, timeout=timeout, conn_id=conn_id)
        self.pool_size = max(1, int(pool_size))
        self._lock = threading.Lock()
        self._sessions: dict[str, requests.Session] = {}

    def _new_session(self, headers: dict[str, str]) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = user_agent()
        session.headers.update(headers)
        session.verify = self.config.verify
        adapter = _Adapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=0)
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

    def deadline(self, size: int | None = None) -> contextlib.AbstractContextManager[_Deadline]:
        """The deadline of one request; a transfer of ``size`` bytes (or unknown) earns more by rate."""
        seconds = self.config.request_deadline
        rate = self.config.min_transfer_rate
        return deadline(seconds + (size or 0) / rate, rate=rate)

    def send_once(
        self, method: str, url: str, *, keyless: bool = False, timeout: Timeout | None = None, **kwargs: Any
    ) -> requests.Response:
        """One attempt, following redirects by hand so the key never reaches another host.

        The response is streamed: callers read its body with a bound (``read_body``).
        """
        for _ in range(MAX_REDIRECTS + 1):
            check_hop(url, method, self.config)
            api_host = self.config.same_origin(url)
            use_key = not keyless and api_host
            session = self.session if use_key else self.storage_session
            if api_host and self.limiter is not None:
                self.limiter.acquire()  # one budget for every thread of this process
            # verify per request: a session's verify loses to REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
            # (requests#3829), which silently replaced the connection's ca_bundle.
            response = session.request(
                method,
                url,
                allow_redirects=False,
                timeout=timeout or self.timeout,
                verify=self.config.verify,
                stream=True,
                **kwargs,
            )
            if response.status_code not in REDIRECT_STATUSES:
                return response
            location = response.headers.get("Location")
            if not location:
                response.close()
                raise MalformedResponse(f"HTTP {response.status_code} without a Location")
            if method not in ("GET", "HEAD") and response.status_code not in (307, 308):
                response.close()
                raise MalformedResponse(f"HTTP {response.status_code} redirect answering a {method}")
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
        parse: Callable[[requests.Response], Any] | None = None,
        size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send with retries; return the first good answer (``parse``'d), or what ``recover`` found.

        Without ``parse`` the streamed response is returned and the caller reads its body inside
        its own :meth:`deadline`. A success whose body ``parse`` rejects is retried like a 5xx.
        """
        url = self.url(path)
        shown = self.shown(url)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        retrier = Retrier(policy or self.policy, resend_safe=idempotent or recover is not None)
        while True:
            if data_factory is not None:
                kwargs["data"] = data_factory()
            try:
                with self.deadline(size):
                    response = self.send_once(method, url, **kwargs)
                    if response.status_code < 400:
                        if parse is None:
                            return response
                        with response:
                            return parse(response)
                    failure = self._failure_for_response(response, method, shown)
            except RefusedURL:
                raise
            except MalformedResponse as exc:
                error = AutoenhanceTransientError(200, method, shown, str(exc), conn_id=self.conn_id)
                failure = Failure(error=error, retryable=True, ambiguous=True, reason=str(exc))
            except requests.RequestException as exc:
                failure = failure_for_requests_exception(exc, method, shown)
            if cap_passed():
                raise failure.error  # the caller's own deadline (a wait's timeout) has come
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

    def _failure_for_response(self, response: requests.Response, method: str, shown: str) -> Failure:
        """An error status: the API's are classified by code; a storage host's 401/403 is a URL refused."""
        with response:
            body = error_body(response)
        if response.status_code in (401, 403) and not self.config.same_origin(response.url):
            error = SignedURLRefused(
                f"The storage host refused the signed URL {redact_url(response.url)} (HTTP "
                f"{response.status_code}: {storage_error_text(body)}). Signed URLs expire or are signed for "
                "other headers; the Autoenhance connection is fine. A retry asks Autoenhance for a fresh URL."
            )
            # A GET asks the API again (a fresh signed URL); re-sending a PUT to the same URL cannot help.
            return Failure(
                error=error, retryable=method == "GET", ambiguous=False, reason=f"HTTP {response.status_code}"
            )
        return failure_for_status(
            response.status_code,
            method,
            shown,
            body,
            response.headers,
            secret=self.config.api_key,
            conn_id=self.conn_id,
        )

    def request_json(self, method: str, path: str, *, expect: type | None = None, **kwargs: Any) -> Any:
        """A JSON API call: the decoded body (None when empty), or what a recovery check found.

        The body is read with a bound and checked: ``expect`` (e.g. ``dict``) is the only type the
        endpoint may answer with; anything else counts as a malformed (retryable) answer.
        """
        shown = self.shown(self.url(path))

        def parse(response: requests.Response) -> Any:
            value = decode_json(read_body(response, MAX_JSON_BYTES, method, shown), method, shown)
            if expect is not None and not isinstance(value, expect):
                raise MalformedResponse(f"expected a JSON {expect.__name__}, got {type(value).__name__}")
            return value

        outcome = self.attempts(method, path, parse=parse, **kwargs)
        return outcome.value if isinstance(outcome, Recovered) else outcome


def iter_body(response: requests.Response, limit: int, method: str, path: str) -> Iterator[bytes]:
    """The decoded body in blocks, never more than ``limit`` bytes (a gzip bomb stays small)."""
    decoder = BoundedDecoder(response.headers.get("Content-Encoding"), limit, method, path)
    try:
        for chunk in response.raw.stream(CHUNK_SIZE, decode_content=False):
            out = decoder.feed(chunk)
            if out:
                yield out
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.exceptions.ChunkedEncodingError(str(exc)) from None


def read_body(response: requests.Response, limit: int, method: str, path: str) -> bytes:
    return b"".join(iter_body(response, limit, method, path))


def read_capped(chunks: Iterator[bytes], limit: int) -> bytes:
    """At most ``limit`` bytes of a (possibly streamed) body."""
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


def read_start(response: requests.Response, limit: int) -> bytes:
    """At most ``limit`` decoded bytes from the start of a body; the rest is never read."""
    decoder = BoundedDecoder(response.headers.get("Content-Encoding"), limit, "GET", "", strict=False)
    data = bytearray()
    try:
        for chunk in response.raw.stream(16 * 1024, decode_content=False):
            data += decoder.feed(chunk)
            if decoder.full or len(data) >= limit:
                break
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.exceptions.ChunkedEncodingError(str(exc)) from None
    return bytes(data[:limit])


def error_body(response: requests.Response) -> str:
    """The start of an error body (never the whole page: the connection is closed after)."""
    try:
        return read_start(response, ERROR_BODY_BYTES).decode("utf-8", "replace")
    except Exception:  # an unreadable error body changes nothing about the error
        return ""


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
#: Requests in flight per shared session (one per event loop and connection). Polls beyond it
#: wait in a FIFO semaphore; 6 allows 60 polls/s at 100 ms latency (1,800 waits at a 30 s
#: interval) and keeps a triggerer far below the API's limit of 300 requests/second per IP.
MAX_IN_FLIGHT = 6


class _SharedClient:
    """One ``aiohttp.ClientSession`` per event loop and connection settings, counted by its users.

    A triggerer runs every wait in one loop. A client per trigger cost about 0.5 ms of CPU to
    build and close, one TCP (and TLS) connection each, and ~35 KiB of memory: at 1,000 waits
    that was a third of the triggerer's CPU for polling (``make bench``). Transports on the same
    loop with the same settings share one session and its pool; the last to close closes it.
    Only the loop's own thread touches this, so no lock is needed.
    """

    __slots__ = ("proxy", "session", "slots", "users")

    def __init__(self, session: aiohttp.ClientSession, proxy: Proxy) -> None:
        self.session = session
        self.proxy = proxy
        self.users = 0
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)


class Proxy(NamedTuple):
    """The proxy for the API host, from the environment, as ``requests`` reads it."""

    url: str | None = None
    headers: Mapping[str, str] | None = None  # credentials: never in repr

    def __repr__(self) -> str:
        return f"Proxy(url={self.url!r}, headers={'***' if self.headers else None})"

    @classmethod
    def from_environment(cls, url: str) -> Proxy:
        """``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` for ``url`` unless ``NO_PROXY`` excludes it.

        Read once per session: aiohttp's own ``trust_env`` reads it in a thread for every request,
        two thread hops per poll.
        """
        from urllib.parse import unquote

        proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
        if not proxy:
            return cls()
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parts.username is None:
            return cls(urlunsplit(parts))
        import base64

        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        bare = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        # aiohttp sends this as Proxy-Authorization (on the request, or on CONNECT for https)
        return cls(urlunsplit(bare), {"Authorization": "Basic " + base64.b64encode(credentials).decode()})


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


def new_async_session(
    headers: Mapping[str, str], connect: float, read: float, verify: bool | str
) -> aiohttp.ClientSession:
    """The async client: aiohttp, which the official providers' async hooks (dbt Cloud, HTTP) use.

    It costs a sixth of httpx's CPU per request, and a triggerer polls thousands of orders
    (``make bench``). Bodies arrive raw (``auto_decompress=False``) so that
    :class:`BoundedDecoder` bounds what they inflate to; cookies are never kept; the proxy is
    the environment's (:class:`Proxy`), as with ``requests``.
    """
    import aiohttp

    return aiohttp.ClientSession(
        headers=dict(headers),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read),
        connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT, ssl=_ssl_context(verify)),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )


class AsyncTransport(_Transport):
    """Read-only JSON GETs from an event loop, with the same policy as :class:`SyncTransport`."""

    _entry: _SharedClient | None = None
    _key: tuple[Any, ...] = ()

    def _client(self) -> _SharedClient:
        """The event loop's shared session for this connection's settings (see ``_SharedClient``)."""
        if self._entry is None:
            config = self.config
            connect, read = self.timeout
            headers = {"User-Agent": user_agent("aiohttp"), **config.api_headers()}
            key = (config.base_url, tuple(sorted(headers.items())), connect, read, config.verify)
            shared = _SHARED_CLIENTS.setdefault(asyncio.get_running_loop(), {})
            entry = shared.get(key)
            if entry is None or entry.session.closed:
                session = new_async_session(headers, connect, read, config.verify)
                entry = shared[key] = _SharedClient(session, Proxy.from_environment(config.base_url))
            entry.users += 1
            self._entry, self._key = entry, key
        return self._entry

    async def aclose(self) -> None:
        """Release the session; the last transport of the loop using it closes it."""
        entry, self._entry = self._entry, None
        if entry is None:
            return
        shared = _SHARED_CLIENTS.get(asyncio.get_running_loop(), {})
        if shared.get(self._key) is entry:
            entry.users -= 1
            if entry.users > 0:
                return
            del shared[self._key]
        await entry.session.close()

    async def get_json(self, path: str, *, expect: type | None = None) -> Any:
        """GET a JSON answer: bounded in time (``request_deadline``) and size, retried by policy."""
        import aiohttp

        entry = self._client()
        retrier = Retrier(self.policy, resend_safe=True)
        while True:
            try:
                async with entry.slots:
                    return await within(self.config.request_deadline, self._get_once(entry, path, expect))
            except _AsyncFailure as exc:
                failure = exc.failure
            except aiohttp.ClientError as exc:  # before TimeoutError: a read timeout is both
                never_sent = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
                network = not isinstance(exc, aiohttp.InvalidURL)
                sent = not isinstance(exc, never_sent)
                failure = failure_for_exception(exc, "GET", path, sent=sent, network=network)
            except asyncio.TimeoutError:
                error = AutoenhanceConnectionError(
                    f"Autoenhance API GET {path} failed: no complete answer within the request deadline "
                    f"of {self.config.request_deadline:g} s"
                )
                failure = Failure(error=error, retryable=True, ambiguous=True, reason="deadline")
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

    async def _get_once(self, client: _SharedClient, path: str, expect: type | None) -> Any:
        """One GET, following redirects only within the API host (the key must not travel elsewhere)."""
        url = f"{self.config.base_url}{path}"
        proxy = client.proxy
        for _ in range(MAX_REDIRECTS + 1):
            check_hop(url, "GET", self.config)
            if self.limiter is not None:
                await self.limiter.acquire_async()  # shared with every trigger of this triggerer
            request = client.session.get(
                url, allow_redirects=False, proxy=proxy.url, proxy_headers=proxy.headers
            )
            async with request as response:
                status = response.status
                if status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise self._malformed(path, f"HTTP {status} without a Location")
                    target = urljoin(url, location)
                    if not self.config.same_origin(target):
                        raise AutoenhanceAPIError(status, "GET", path, "redirected to another host")
                    url = target
                    continue
                limit = MAX_JSON_BYTES if status < 400 else ERROR_BODY_BYTES
                body = await _read_async(response, limit, path, whole=status < 400)
                if status >= 400:
                    raise _AsyncFailure(
                        failure_for_status(
                            status,
                            "GET",
                            path,
                            body.decode("utf-8", "replace"),
                            response.headers,
                            secret=self.config.api_key,
                            conn_id=self.conn_id,
                        )
                    )
                try:
                    value = decode_json(body, "GET", path)
                except MalformedResponse as exc:
                    raise self._malformed(path, str(exc)) from None
                if expect is not None and not isinstance(value, expect):
                    raise self._malformed(
                        path, f"expected a JSON {expect.__name__}, got {type(value).__name__}"
                    )
                return value
        raise AutoenhanceAPIError(0, "GET", path, "too many redirects")

    def _malformed(self, path: str, reason: str) -> _AsyncFailure:
        error = AutoenhanceTransientError(200, "GET", path, reason, conn_id=self.conn_id)
        return _AsyncFailure(Failure(error=error, retryable=True, ambiguous=True, reason=reason))


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """Await with a time limit, in the caller's task where Python allows (3.11+: ``asyncio.timeout``).

    ``asyncio.wait_for`` wraps the awaitable in a new task: at a thousand polls a minute that
    tripled the triggerer's CPU per poll (``make bench``).
    """
    limit = getattr(asyncio, "timeout", None)
    if limit is None:  # pragma: no cover - Python 3.10
        return await asyncio.wait_for(awaitable, seconds)
    async with limit(seconds):
        return await awaitable


class _AsyncFailure(Exception):
    """Carries a classified failure out of one async attempt."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


async def _read_async(response: aiohttp.ClientResponse, limit: int, path: str, *, whole: bool) -> bytes:
    """The decoded body, bounded: a success body larger than ``limit`` is refused, an error body
    is only read up to ``limit`` (then the connection is dropped)."""
    decoder = BoundedDecoder(response.headers.get("Content-Encoding"), limit, "GET", path, strict=whole)
    data = bytearray()
    async for chunk in response.content.iter_any():
        data += decoder.feed(chunk)
        if decoder.full:
            response.close()  # the rest stays unread: this connection cannot be reused
            break
    return bytes(data[:limit])
