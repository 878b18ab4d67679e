"""The async transport (``aiohttp``): read-only JSON GETs from the triggerer's event loop.

The same policy as the sync transport (:mod:`~autoenhance_provider.http.policy`); one shared
session per event loop and connection settings, with the environment's proxy read once.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import requests

if TYPE_CHECKING:
    import aiohttp

from autoenhance_provider.exceptions import (
    AutoenhanceConnectionError,
)
from autoenhance_provider.http.limits import (
    ERROR_BODY_BYTES,
    MAX_JSON_BYTES,
    BoundedDecoder,
    MalformedResponse,
    decode_json,
    within,
)
from autoenhance_provider.http.policy import (
    Failure,
    Redirects,
    Retrier,
    failure_for_exception,
    failure_for_status,
    malformed_failure,
)
from autoenhance_provider.http.transport import Transport, user_agent

#: Requests in flight per shared session (one per event loop and connection). Polls beyond it
#: wait in a FIFO semaphore; 6 allows 60 polls/s at 100 ms latency (1,800 waits at a 30 s
#: interval) and keeps a triggerer far below the API's limit of 300 requests/second per IP.
MAX_IN_FLIGHT = 6


class _SharedClient:
    """One ``aiohttp.ClientSession`` per event loop and connection settings, counted by its users.

    A triggerer runs every wait in one loop. A client per trigger costs CPU to build and close,
    one TCP (and TLS) connection each, and memory: at a thousand waits that dominated the
    triggerer's polling cost (figures in ``bench/RESULTS.md``). Transports on the same
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

    It costs far less CPU per request than httpx, and a triggerer polls thousands of orders
    (figures in ``bench/RESULTS.md``). Bodies arrive raw (``auto_decompress=False``) so that
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


class AsyncTransport(Transport):
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
            except MalformedResponse as exc:
                failure = malformed_failure(exc, "GET", path, self.conn_id)
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
            await asyncio.sleep(retrier.pause(failure, self.log, "GET", path))

    async def _get_once(self, client: _SharedClient, path: str, expect: type | None) -> Any:
        """One GET, following redirects only within the API host (the key must not travel elsewhere)."""
        proxy = client.proxy
        hops = Redirects(f"{self.config.base_url}{path}", "GET", self.config, api_host_only=True)
        for url in hops:
            if self.limiter is not None:
                await self.limiter.acquire_async()  # shared with every trigger of this triggerer
            request = client.session.get(
                url, allow_redirects=False, proxy=proxy.url, proxy_headers=proxy.headers
            )
            async with request as response:
                status = response.status
                if hops.follow(status, response.headers.get("Location")):
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
                return decode_json(body, expect)
        raise AssertionError("unreachable: Redirects raises after the last hop")


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
