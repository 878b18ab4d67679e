"""Pure-ASGI middleware: trailing-slash normalisation, per-route stats, leak counting, faults.

Every request's path loses its trailing slash before routing (so both spellings work without
redirects). API, storage and asset requests are then keyed as ``"<METHOD> <route template>"``
(e.g. ``"GET /v3/orders/{order_id}"``), counted by final status (or ``"drop"``) and possibly
faulted (see :mod:`autoenhance_sandbox.faults` for the kinds and phases). ``/_sandbox/*`` admin
requests and the ``/orders/{id}`` HTML page are never faulted or counted; unmatched paths are
counted as ``"<METHOD> (unmatched)"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autoenhance_sandbox.errors import error_body
from autoenhance_sandbox.faults import Fault
from autoenhance_sandbox.limits import RATE_LIMIT_MESSAGE
from autoenhance_sandbox.state import SandboxState

_S3_CODES = {500: "InternalError", 502: "BadGateway", 503: "SlowDown", 429: "SlowDown"}
DROP_DECLARED_LENGTH = 4096
DROP_PARTIAL_BODY = b'{"message": "the sandbox dropped this conn'


class ConnectionDropped(Exception):
    """Raised after a deliberately partial response so the server closes the socket."""


class _StopResponse(Exception):
    """Stops a handler's streaming body during an "after" fault (the state change is done)."""


class _QuietDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for every injected connection drop."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


def install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


class SandboxMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, state: SandboxState, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.state = state
        # The app's routes, given by create_app: newer FastAPI versions (e.g. 0.165) keep each
        # included router as one opaque entry of app.router.routes instead of copying its routes.
        self._given_routes = list(routes)
        self._routes: list[tuple[re.Pattern[str], frozenset[str], str]] | None = None

    def _route_table(self, scope: Scope) -> list[tuple[re.Pattern[str], frozenset[str], str]]:
        if self._routes is None:
            table = []
            routes: list[BaseRoute] = self._given_routes or scope["app"].router.routes
            for route in routes:
                if isinstance(route, Route) and route.methods and not route.path.startswith("/_sandbox"):
                    template = re.sub(r":\w+}", "}", route.path).rstrip("/")
                    table.append((route.path_regex, frozenset(route.methods), template))
            self._routes = table
        return self._routes

    def endpoint_key(self, scope: Scope) -> str | None:
        method, path = scope["method"], scope["path"]
        for regex, methods, template in self._route_table(scope):
            if method in methods and regex.match(path):
                return f"{method} {template}"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope = dict(scope)
            scope["path"] = path.rstrip("/") or "/"
            raw: bytes = scope.get("raw_path") or b""
            scope["raw_path"] = raw.rstrip(b"/") or b"/"
            path = scope["path"]
        if path.startswith(("/_sandbox", "/orders/")):  # admin and the HTML order page
            await self.app(scope, receive, send)
            return
        if path.startswith(("/_storage/", "/_assets/")) and any(
            name == b"x-api-key" for name, _ in scope.get("headers", ())
        ):
            self.state.count_leak("storage" if path.startswith("/_storage/") else "assets")
        key = self.endpoint_key(scope)
        if path.startswith("/v3") and self.state.config.rate_limit_per_second is not None:
            client = scope.get("client")
            if not self.state.allow_request(str(client[0]) if client else "?"):
                await self._rate_limited(key or f"{scope['method']} (unmatched)", send)
                return
        if key is None:
            await self._passthrough(f"{scope['method']} (unmatched)", scope, receive, send)
            return
        fault = self.state.faults.decide(key)
        if fault is None:
            await self._passthrough(key, scope, receive, send)
            return
        self.state.count_fault(fault.kind)
        await self._inject(fault, key, scope, receive, send)

    async def _rate_limited(self, key: str, send: Send) -> None:
        """The request-rate limit's 429 (APIFlask body; ``Retry-After`` only in that reading)."""
        self.state.record_request(key, "429")
        rate = self.state.config.rate_limit_per_second or 0.0
        headers = self.state.retry_after(1.0) or {}
        body = json.dumps(error_body(429, RATE_LIMIT_MESSAGE.format(rate=rate))).encode()
        raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": 429, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})

    async def _passthrough(self, key: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve normally; count the status as soon as it is known (before the client sees it)."""
        started = False

        async def recording_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.state.record_request(key, str(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception:
            if not started:
                self.state.record_request(key, "500")
            raise

    async def _inject(self, fault: Fault, key: str, scope: Scope, receive: Receive, send: Send) -> None:
        storage = scope["path"].startswith(("/_storage/", "/_assets/"))
        if fault.kind == "slow":
            await asyncio.sleep(self.state.faults.settings.slow_seconds)
            await self._passthrough(key, scope, receive, send)
            return
        real_status = 200
        if fault.phase == "after":
            real_status = await self._run_discarding(scope, receive)
        tag = f"{fault.kind}-{fault.phase}"
        if fault.kind == "drop":
            self.state.record_request(key, "drop")
            await _drop(send, real_status if real_status not in (204, 304) else 200, tag)
        status = int(fault.kind)
        self.state.record_request(key, str(status))
        headers = {"x-sandbox-fault": tag}
        if status == 429:
            headers["retry-after"] = "1"
        await _error(send, status, storage, headers)

    async def _run_discarding(self, scope: Scope, receive: Receive) -> int:
        """Run the real handler to completion for its side effects; return its status."""
        status = 200

        async def discard(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and message.get("more_body"):
                raise _StopResponse  # a streamed body: the work is done, skip the bytes

        with contextlib.suppress(_StopResponse):
            await self.app(scope, receive, discard)
        return status


async def _error(send: Send, status: int, storage: bool, headers: dict[str, str]) -> None:
    phrase = HTTPStatus(status).phrase
    if storage:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{_S3_CODES.get(status, "InternalError")}'
            f"</Code><Message>{phrase} (injected by the sandbox)</Message></Error>"
        ).encode()
        media = b"application/xml"
    else:
        body = json.dumps(error_body(status, f"{phrase} (injected by the sandbox)")).encode()
        media = b"application/json"
    raw_headers: list[tuple[bytes, bytes]] = [
        (b"content-type", media),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send, status: int, tag: str) -> Any:
    """Announce a body, send a fragment, then abort: the client sees a broken connection."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(DROP_DECLARED_LENGTH).encode()),
        (b"x-sandbox-fault", tag.encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": DROP_PARTIAL_BODY, "more_body": True})
    raise ConnectionDropped(tag)
