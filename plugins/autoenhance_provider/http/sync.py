"""The sync transport (``requests``), used by the hook and the workers' tasks.

One attempt (:meth:`SyncTransport.send_once`) follows redirects by hand so the key never leaves
the API host; :meth:`SyncTransport.attempts` retries by :mod:`~autoenhance_provider.http.policy`
inside the request's deadline; bodies are read with a bound (:func:`iter_body`, :func:`read_start`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
import urllib3
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from autoenhance_provider.connection import AutoenhanceConnectionConfig
from autoenhance_provider.exceptions import (
    RefusedURL,
    SignedURLRefused,
)
from autoenhance_provider.http.limits import (
    CHUNK_SIZE,
    ERROR_BODY_BYTES,
    MAX_JSON_BYTES,
    BoundedDecoder,
    Deadline,
    MalformedResponse,
    cap_passed,
    deadline,
    decode_json,
)
from autoenhance_provider.http.policy import (
    IDEMPOTENT_METHODS,
    Failure,
    Redirects,
    Retrier,
    RetryPolicy,
    failure_for_exception,
    failure_for_status,
    malformed_failure,
)
from autoenhance_provider.http.redaction import redact_url, redact_urls_in
from autoenhance_provider.http.sockets import DeadlineHTTPPool, DeadlineHTTPSPool
from autoenhance_provider.http.transport import Timeout, Transport, user_agent


class Recovered(NamedTuple):
    """What a recovery check found: the call already took effect, and this is its result."""

    value: Any


_URLLIB3_BLOCKSIZE = int(urllib3.__version__.split(".")[0]) >= 2  # type: ignore[attr-defined]


class _Adapter(HTTPAdapter):
    """Deadline-aware connections, and request bodies streamed in ``CHUNK_SIZE`` blocks.

    A 16 KiB block (urllib3's default) costs a file read, a ``sendall`` and a few Python calls
    each: 64 per MB uploaded, a measurable share of an upload's CPU (``make bench``).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if _URLLIB3_BLOCKSIZE:  # urllib3 1.26 has no blocksize in its pool keys
            kwargs.setdefault("blocksize", CHUNK_SIZE)
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": DeadlineHTTPPool, "https": DeadlineHTTPSPool}


_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_S3_MESSAGE = re.compile(r"<Message>([^<]+)</Message>")


def storage_error_text(body: str) -> str:
    """The Code and Message of an S3-style XML error, or the start of the body."""
    code, message = _S3_CODE.search(body), _S3_MESSAGE.search(body)
    if code:
        return f"{code.group(1)}" + (f": {message.group(1)}" if message else "")
    return redact_urls_in(body.strip()[:200])


class SyncTransport(Transport):
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

    def deadline(self, size: int | None = None) -> contextlib.AbstractContextManager[Deadline]:
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
        hops = Redirects(url, method, self.config)
        for url in hops:
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
            try:
                redirected = hops.follow(response.status_code, response.headers.get("Location"))
            except BaseException:
                response.close()
                raise
            if not redirected or "data" in kwargs:  # a streamed body cannot be sent twice
                return response
            response.close()
            # The Location is complete (often a presigned URL): re-adding the query params
            # would change it and invalidate its signature.
            kwargs.pop("params", None)
        raise AssertionError("unreachable: Redirects raises after the last hop")

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
        retrier: Retrier | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send with retries; return the first good answer (``parse``'d), or what ``recover`` found.

        Without ``parse`` the streamed response is returned and the caller reads its body inside
        its own :meth:`deadline`. A success whose body ``parse`` rejects is retried like a 5xx.
        A caller that retries what it reads itself passes its own ``retrier``: one budget of
        attempts for the whole request, never a retry loop inside another.
        """
        url = self.url(path)
        shown = self.shown(url)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        if retrier is None:
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
                failure = malformed_failure(exc, method, shown, self.conn_id)
            except requests.RequestException as exc:
                failure = failure_for_requests_exception(exc, method, shown)
            if cap_passed():
                raise failure.error  # the caller's own deadline (a wait's timeout) has come
            time.sleep(retrier.pause(failure, self.log, method, shown))
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
            return decode_json(read_body(response, MAX_JSON_BYTES, method, shown), expect)

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
