"""Bounds on what one request may cost: body sizes (decoded, gzip bombs included) and time.

Bodies: :class:`BoundedDecoder` undoes ``Content-Encoding`` itself, never producing more than a
limit. Time: :func:`deadline` sets the wall-clock budget of this thread's current request (the
sync transport's sockets obey it, see :mod:`autoenhance_provider.http.sockets`);
:func:`deadline_cap` caps every request inside a block (a wait's own timeout); :func:`within` is
the async counterpart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import zlib
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

from autoenhance_provider.exceptions import AutoenhanceAPIError, BodyTooLarge

T = TypeVar("T")

#: Block size of streamed uploads and downloads.
CHUNK_SIZE = 1024 * 1024
#: Error bodies are read up to this size (enough for any APIFlask error, never a whole page).
ERROR_BODY_BYTES = 4096
#: JSON answers larger than this are refused (an order of 10,000 images is about 10 MB).
MAX_JSON_BYTES = 16 * 1024 * 1024
#: Pages of a listing read at most (15 orders a page: 15,000 orders).
MAX_PAGES = 1000


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


def decode_json(data: bytes, expect: type | None = None) -> Any:
    """A JSON answer (None when empty); ``expect`` (e.g. ``dict``) is the only type it may be."""
    if not data:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        raise MalformedResponse("the answer is not JSON") from None
    if expect is not None and not isinstance(value, expect):
        raise MalformedResponse(f"expected a JSON {expect.__name__}, got {type(value).__name__}")
    return value


class Deadline:
    """The wall-clock budget of the request running in this thread (enforced by ``http.sockets``)."""

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
def deadline(seconds: float, *, rate: float | None = None) -> Iterator[Deadline]:
    """Bound every socket read and write of this thread's requests inside the block."""
    outer = getattr(_ACTIVE, "deadline", None)
    cap = getattr(_ACTIVE, "cap", None)
    current = _ACTIVE.deadline = Deadline(seconds, rate, cap)
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
    """Whether the cap of :func:`deadline_cap` (if any) has passed."""
    cap = getattr(_ACTIVE, "cap", None)
    return cap is not None and time.monotonic() >= cap


def current_deadline() -> Deadline | None:
    """The deadline of the request running in this thread, if any."""
    return getattr(_ACTIVE, "deadline", None)


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """Await with a time limit, in the caller's task where Python allows (3.11+: ``asyncio.timeout``).

    ``asyncio.wait_for`` wraps the awaitable in a new task, which costs more CPU per poll than
    the request itself at a triggerer's scale (figures in ``bench/RESULTS.md``).
    """
    limit = getattr(asyncio, "timeout", None)
    if limit is None:  # pragma: no cover - Python 3.10
        return await asyncio.wait_for(awaitable, seconds)
    async with limit(seconds):
        return await awaitable
