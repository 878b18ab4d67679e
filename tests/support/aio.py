"""The async hook's HTTP answered in process, by a fake session made of aiohttp's own types.

The fake stands in for what ``new_async_session`` returns (the part of ``aiohttp.ClientSession``
the async transport uses: ``get`` as an async context manager, ``close``, ``closed``). Requests
carry aiohttp's URL (``yarl.URL``, parsed as aiohttp parses it) and headers; answers have
``CIMultiDict`` headers and a real ``aiohttp.StreamReader`` body; failures are aiohttp's own
exceptions. Use it through the ``aio_api`` fixture (tests/unit/conftest.py); the real aiohttp path
over real sockets is exercised by tests/hostile and tests/integration.

(``aioresponses`` does this by patching ``ClientSession._request``; its 0.7.9 builds responses
that aiohttp 3.14 no longer accepts, so it is not used.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL


@dataclass(frozen=True)
class Request:
    """One request of the async hook, as aiohttp would send it."""

    method: str
    url: URL
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Reply:
    """An answer: ``json`` (any JSON value) or ``body`` (text or bytes, sent as they are)."""

    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | bytes = b""


Handler = Callable[[Request], Reply]


def refused(url: URL) -> aiohttp.ClientConnectorError:
    """What aiohttp raises when the connection to ``url``'s host is refused."""
    from aiohttp.client_reqrep import ConnectionKey

    https = url.scheme == "https"
    key = ConnectionKey(url.host or "", url.port or 443, https, https, None, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


def read_timeout() -> aiohttp.SocketTimeoutError:
    """What aiohttp raises when no byte arrives within ``sock_read``."""
    return aiohttp.SocketTimeoutError("Timeout on reading data from socket")


class AioAPI:
    """Every async hook session of the test answered by one handler (``install`` with ``__call__``)."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.seen: list[Request] = []
        self.sessions: list[FakeSession] = []

    def __call__(self, handler: Handler) -> list[Request]:
        """Answer with ``handler``; the list of requests seen (in order) is returned and kept up to date."""
        self.handler = handler
        self.seen = []
        return self.seen

    def new_session(
        self, headers: Mapping[str, str], connect: float, read: float, verify: Any
    ) -> FakeSession:
        """In place of ``autoenhance_provider.http.aio.new_async_session``."""
        self.sessions.append(FakeSession(self, headers))
        return self.sessions[-1]

    def answer(self, request: Request) -> Reply:
        assert self.handler is not None, "no handler installed: call aio_api(handler) first"
        self.seen.append(request)
        return self.handler(request)  # may raise what aiohttp raises (refused, read_timeout)


class FakeSession:
    """The part of ``aiohttp.ClientSession`` the async transport uses."""

    def __init__(self, api: AioAPI, headers: Mapping[str, str]) -> None:
        self.api = api
        self.headers = CIMultiDict(headers)
        self.closed = False

    async def close(self) -> None:
        self.closed = True

    def get(self, url: str, *, allow_redirects: bool = True, **proxy: Any) -> Exchange:
        assert not allow_redirects, "the transport follows redirects itself"
        assert not self.closed, "request on a closed session"
        return Exchange(self.api, Request("GET", URL(url), CIMultiDictProxy(self.headers)))


class Exchange:
    """``async with session.get(...) as response``: the handler answers on entry."""

    def __init__(self, api: AioAPI, request: Request) -> None:
        self.api, self.request = api, request

    async def __aenter__(self) -> Exchange:
        reply = self.api.answer(self.request)
        body = json.dumps(reply.json).encode() if reply.json is not None else reply.body
        body = body.encode() if isinstance(body, str) else body
        headers = CIMultiDict(
            {"Content-Type": "application/json" if reply.json is not None else "text/plain"}
        )
        headers.update(reply.headers)
        self.status = reply.status
        self.headers = CIMultiDictProxy(headers)
        # the bytes as sent (still encoded, if a Content-Encoding says so): the transport decodes them
        loop = asyncio.get_running_loop()
        self.content = aiohttp.StreamReader(aiohttp.base_protocol.BaseProtocol(loop), 2**16, loop=loop)
        self.content.feed_data(body)
        self.content.feed_eof()
        return self

    def close(self) -> None:
        pass

    async def __aexit__(self, *exc: object) -> None:
        return None
