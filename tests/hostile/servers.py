"""Misbehaving HTTP servers on 127.0.0.1, written on raw sockets so they can misbehave byte by byte.

A server is given an *app*: ``app(request) -> Reply``. A reply is a list of steps, each either
``bytes`` (sent at once) or a ``float`` (a pause, cut short when the server stops). So a server
that sends one byte per second is ``[b"H", 1.0, b"T", 1.0, ...]``, and a body cut short is a
``Content-Length`` header followed by fewer bytes. Every pause ends when the server stops, so a
client stuck on a hostile server is released at teardown and no thread outlives the test for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

#: Every key used by these tests contains this marker (letters and digits only), so an echo of the
#: key survives JSON escaping, percent-encoding or header folding and is still found by a search.
MARKER = "CANARYq7x9z2"
KEY = f"ae-{MARKER}-hostile-key"
#: JSON escaping (``"``, ``\\``, ``/``) and percent-encoding both change this one.
KEY_ESCAPED = f'ae-{MARKER}/"esc\\aped/key'

#: Fast retries: a hostile server must not make a test wait for backoff.
FAST: dict[str, Any] = {"retry_limit": 1, "retry_delay": 0.01, "retry_max_delay": 0.05}

Step = bytes | float
Reply = list[Step] | Iterator[Step]


@dataclass
class Request:
    """One request as the server read it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


App = Callable[[Request], Reply]


class HostileServer:
    """A threaded raw-socket HTTP/1.1 server; each connection may carry several requests."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.requests: list[Request] = []
        self.bytes_sent = 0
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name=f"hostile-{self.port}", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def seen(self, method: str | None = None, path_prefix: str = "") -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and r.path.startswith(path_prefix)
            ]

    def stop(self) -> None:
        self.stopped.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            _close(conn)
        self._thread.join(5)
        _close(self._sock)

    # ------------------------------------------------------------------ internals
    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        reader = conn.makefile("rb")
        try:
            while not self.stopped.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                keep_alive = False
                for step in self.app(request):
                    if self.stopped.is_set():
                        return
                    if step is KEEP_ALIVE:
                        keep_alive = True
                        continue
                    if isinstance(step, (int, float)):
                        self.stopped.wait(step)
                        continue
                    conn.sendall(step)
                    with self._lock:
                        self.bytes_sent += len(step)
                if not keep_alive:
                    return
        except OSError:
            return
        finally:
            _close(conn)


class _KeepAlive:
    """A step that tells the server to keep the connection open for the next request."""


KEEP_ALIVE: Any = _KeepAlive()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _read_request(reader: io.BufferedReader) -> Request | None:
    line = reader.readline(65536)
    if not line:
        return None
    try:
        method, target, _ = line.decode("latin-1").split(" ", 2)
    except ValueError:
        return None
    headers: dict[str, str] = {}
    while True:
        raw = reader.readline(65536)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(reader.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                reader.readline(1024)
                break
            parts.append(reader.read(size))
            reader.readline(1024)
        body = b"".join(parts)
    elif headers.get("content-length"):
        body = reader.read(int(headers["content-length"]))
    return Request(method=method, target=target, headers=headers, body=body)


# ---------------------------------------------------------------------- reply builders
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def head(status: int, headers: Iterable[tuple[str, str]] = (), *, length: int | None = None) -> bytes:
    """Status line and headers; ``Content-Length`` only when ``length`` is given."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Whatever')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def reply(
    status: int = 200,
    body: bytes | str = b"",
    content_type: str | None = "application/json",
    headers: Iterable[tuple[str, str]] = (),
) -> list[Step]:
    """A complete, well-formed response (the misbehaviour is then only in what it says)."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    extra = list(headers)
    if content_type:
        extra.insert(0, ("Content-Type", content_type))
    return [head(status, extra, length=len(data)) + data]


def json_reply(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> list[Step]:
    return reply(status, json.dumps(value), "application/json", headers)


def keep_alive_json(status: int, value: Any) -> list[Step]:
    """A JSON reply on a persistent connection (for thousands of quick requests)."""
    data = json.dumps(value).encode()
    raw = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return [KEEP_ALIVE, raw.encode() + data]


def drip(data: bytes, interval: float = 1.0) -> Iterator[Step]:
    """Send ``data`` one byte every ``interval`` seconds."""
    for i in range(len(data)):
        yield data[i : i + 1]
        yield interval


def slow_headers(seconds: int = 120) -> Iterator[Step]:
    """A status line and headers that never end (one byte per second, ``seconds`` bytes)."""
    yield from drip((b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200)[:seconds], 1.0)


def slow_body(
    length: int = 100_000, content_type: str = "application/json", seconds: int = 120
) -> Iterator[Step]:
    """Prompt headers promising ``length`` bytes, then a body at one byte per second."""
    yield head(200, [("Content-Type", content_type)], length=length)
    yield from drip(b"{" + b" " * (seconds - 1), 1.0)


def truncated(length: int, sent: bytes, content_type: str = "image/jpeg") -> list[Step]:
    """Promise ``length`` bytes, send fewer, close."""
    return [head(200, [("Content-Type", content_type)], length=length) + sent]


def streamed(status: int, total: int, content_type: str = "text/html", chunk: int = 65536) -> Iterator[Step]:
    """A ``total``-byte body generated on the fly (stops as soon as the client goes away)."""
    yield head(status, [("Content-Type", content_type)], length=total)
    block = (b"<p>error page</p>" * (chunk // 17 + 1))[:chunk]
    left = total
    while left > 0:
        part = block[: min(chunk, left)]
        yield part
        left -= len(part)


# ---------------------------------------------------------------------- payloads
_GZIP_BOMBS: dict[int, bytes] = {}


def gzip_json_bomb(inflated_mb: int = 600) -> bytes:
    """A gzip stream of a JSON object whose one string inflates to ``inflated_mb`` MB (cached).

    Built in well under a second: with a full flush after every 1 MiB block of ``a`` the deflate
    output of each block is the same bytes, so one block is compressed and repeated; the gzip
    wrapper (CRC-32 and size of the whole inflated text) is written by hand.
    """
    if inflated_mb not in _GZIP_BOMBS:
        prefix, suffix = b'{"order_id": "o-1", "name": "', b'", "images": []}'
        block = b"a" * (1024 * 1024)
        raw = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: the wrapper is ours
        first = raw.compress(prefix) + raw.compress(block) + raw.flush(zlib.Z_FULL_FLUSH)
        second = raw.compress(block) + raw.flush(zlib.Z_FULL_FLUSH)
        third = raw.compress(block) + raw.flush(zlib.Z_FULL_FLUSH)
        assert second == third, "deflate blocks after a full flush were expected to repeat"
        tail = raw.compress(suffix) + raw.flush(zlib.Z_FINISH)
        crc = zlib.crc32(prefix)
        for _ in range(inflated_mb):
            crc = zlib.crc32(block, crc)
        crc = zlib.crc32(suffix, crc)
        size = len(prefix) + inflated_mb * len(block) + len(suffix)
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        body = first + second * (inflated_mb - 1) + tail
        trailer = struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)
        _GZIP_BOMBS[inflated_mb] = header + body + trailer
    return _GZIP_BOMBS[inflated_mb]


def gunzip_size(data: bytes) -> int:
    """Inflated size of a gzip stream (used once to check the bomb is what it claims)."""
    d = zlib.decompressobj(31)
    size = 0
    view = memoryview(data)
    for i in range(0, len(view), 65536):
        size += len(d.decompress(view[i : i + 65536]))
    size += len(d.flush())
    assert d.eof, "the gzip stream is incomplete"
    return size


def fast_hook(conn_id: str, **kwargs: Any) -> Any:
    """The sync hook on ``conn_id`` with the fast retry settings (``FAST``), ``kwargs`` on top."""
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    return AutoenhanceHook(conn_id, **{**FAST, **kwargs})


def sync_get_order(conn_id: str, order_id: str = "o-1", **kwargs: Any) -> Any:
    """GET ``order_id`` with the sync hook on ``conn_id`` (``FAST``, ``kwargs`` on top)."""
    return fast_hook(conn_id, **kwargs).get_order(order_id)


def async_get_order(conn_id: str, order_id: str = "o-1", **kwargs: Any) -> Any:
    """GET ``order_id`` with the async hook on ``conn_id`` (``FAST``, ``kwargs`` on top), in a new loop."""
    from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook

    async def once() -> Any:
        async with AutoenhanceAsyncHook(conn_id, **{**FAST, **kwargs}) as hook:
            return await hook.get_order(order_id)

    return asyncio.run(once())


#: Both hooks' GET order, for a test parametrized over them: ``get_order(conn_id, **hook_kwargs)``.
GET_ORDER = [pytest.param(sync_get_order, id="sync"), pytest.param(async_get_order, id="async")]


def first_trigger_event(conn_id: str, order_id: str = "o-1", **kwargs: Any) -> Any:
    """Run an ``AutoenhanceOrderTrigger`` on ``conn_id`` (``kwargs`` as given) to its first event, in a
    new event loop; None when it ends without one. Bound it with :func:`run_bounded`."""
    from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger

    async def first_event() -> Any:
        trigger = AutoenhanceOrderTrigger(order_id, autoenhance_conn_id=conn_id, **kwargs)
        async for event in trigger.run():
            return event
        return None

    return asyncio.run(first_event())


def fast_operator(cls: Callable[..., Any], conn_id: str, **kwargs: Any) -> Any:
    """An operator ``cls`` on ``conn_id`` for order ``o-1`` with the ``FAST`` retries (``kwargs`` on top)."""
    kwargs.setdefault("order_id", "o-1")
    kwargs.setdefault("hook_params", dict(FAST))
    return cls(autoenhance_conn_id=conn_id, **kwargs)


def done_order(order_id: str = "o-1", names: Iterable[str] = ("room.jpg",)) -> dict[str, Any]:
    """An order whose images are all processed (what the sensor and downloads wait for)."""
    return {
        "order_id": order_id,
        "name": "hostile order",
        "is_merging": False,
        "is_processing": False,
        "is_deleted": False,
        "images": [
            {"image_id": f"img-{i + 1}", "image_name": name, "status": "processed", "downloaded": False}
            for i, name in enumerate(names)
        ],
    }


S3_ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Request has expired</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"
)


# ---------------------------------------------------------------------- bounded calls
@dataclass
class Outcome:
    """How a bounded call ended: a value, an exception, or still running at the limit."""

    finished: bool
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


def run_bounded(fn: Callable[[], Any], limit: float) -> Outcome:
    """Run ``fn`` in a daemon thread and wait at most ``limit`` seconds (a hang guard, not a timing
    assertion: the limits are several times what a correct provider needs)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=target, name="hostile-call", daemon=True)
    thread.start()
    thread.join(limit)
    elapsed = time.monotonic() - started
    if thread.is_alive():
        return Outcome(finished=False, elapsed=elapsed)
    return Outcome(finished=True, value=box.get("value"), error=box.get("error"), elapsed=elapsed)


def execute_bounded(operator: Any, limit: float) -> Outcome:
    """``operator.execute`` with a fresh task context, bounded like :func:`run_bounded`."""
    from support.task import task_context

    context = task_context()
    return run_bounded(lambda: operator.execute(context), limit)


def describe(outcome: Outcome) -> str:
    if not outcome.finished:
        return f"still running after {outcome.elapsed:.1f}s (hang)"
    if outcome.error is not None:
        return f"raised {type(outcome.error).__module__}.{type(outcome.error).__name__}: {outcome.error}"
    return f"returned {outcome.value!r:.300}"


# ---------------------------------------------------------------------- leak search
def exception_texts(exc: BaseException | None) -> list[str]:
    """Everything an exception shows: str, repr, args, body, and the formatted chain."""
    import traceback

    if exc is None:
        return []
    texts = [str(exc), repr(exc), repr(getattr(exc, "args", ())), str(getattr(exc, "body", ""))]
    texts.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return texts


def assert_no_marker(where: str, *texts: Any) -> None:
    """Fail, naming the place, if any text contains the key's marker (in any encoding)."""
    for text in texts:
        rendered = text if isinstance(text, str) else repr(text)
        if MARKER in rendered:
            at = rendered.index(MARKER)
            raise AssertionError(
                f"the API key leaked into {where}: …{rendered[max(0, at - 80) : at + 60]!r}…"
            )
