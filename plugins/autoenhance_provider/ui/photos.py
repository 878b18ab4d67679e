"""Orders and photos for the tab, read through :class:`AutoenhanceHook`, kept in bounded caches.

Only free calls are made: ``GET /v3/orders/{id}``, the original (``/original?max_width=...``, the
photo that was uploaded) and the enhanced **preview** (``/enhanced?preview=true&max_width=...``,
the hook's ``kind="preview"``); never ``preview=false``, which buys the full-size image. The bytes
are served by the app itself: the browser never sees the API key nor a signed URL.

Caches are per API-server process and bounded: photos by total bytes (LRU) and age, orders for a
few seconds (a page and its thumbnails share one read of the order).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

from autoenhance_provider.records import Order
from autoenhance_provider.ui import FULL_WIDTH, THUMB_WIDTH
from autoenhance_provider.ui.render import ImageView, OrderView

K = TypeVar("K")
V = TypeVar("V")

#: Photos kept per API-server process, in bytes (a 320 px JPEG thumbnail is 10-30 KB).
PHOTO_CACHE_BYTES = 64 * 1024 * 1024
#: Seconds a photo is kept (an image can be reprocessed; its preview then changes).
PHOTO_TTL = 600.0
#: Seconds an order read is reused (by the page's own thumbnail requests).
ORDER_TTL = 15.0
#: Seconds a hook (and so the connection it read) is reused: a rotated key applies after this.
HOOK_TTL = 300.0
#: Photo downloads from the API at once, per process (the rest wait): the API server has other work.
MAX_CONCURRENT_FETCHES = 8
SIZES = {"thumb": THUMB_WIDTH, "full": FULL_WIDTH}
KINDS = ("original", "enhanced")
_SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


class Photo(NamedTuple):
    data: bytes
    content_type: str


class BoundedCache(Generic[K, V]):
    """A thread-safe LRU cache bounded by entry count and by total size, with an age limit."""

    def __init__(self, ttl: float, max_entries: int, max_size: int | None = None,
                 size_of: Callable[[V], int] = lambda _v: 1,
                 on_evict: Callable[[V], Any] | None = None) -> None:  # fmt: skip
        self.on_evict = on_evict
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_size = max_size
        self.size_of = size_of
        self.size = 0
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        now = time.monotonic()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if now >= item[0]:
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: K, value: V) -> None:
        size = self.size_of(value)
        if self.max_size is not None and size > self.max_size:
            return
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (time.monotonic() + self.ttl, value)
            self.size += size
            while len(self._items) > self.max_entries or (
                self.max_size is not None and self.size > self.max_size
            ):
                self._drop(next(iter(self._items)))

    def _drop(self, key: K) -> None:
        _expires, value = self._items.pop(key)
        self.size -= self.size_of(value)
        if self.on_evict is not None:
            # closing an old hook's sessions must not fail a request
            with contextlib.suppress(Exception):
                self.on_evict(value)

    def __len__(self) -> int:
        return len(self._items)


def media_type(data: bytes) -> str | None:
    """The image type of these bytes by their signature (only what a browser shows safely)."""
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def order_view(order: Order, web_url: str | None, tasks: tuple[str, ...]) -> OrderView:
    """The API's order as the tab shows it (status words normalised, names and reasons kept)."""
    images = tuple(
        ImageView(
            image_id=image.image_id,
            name=image.label,
            status=image.status.value,
            reason=image.status_reason or None,
        )
        for image in order.images
    )
    return OrderView(
        order_id=order.order_id,
        name=order.name or "",
        status=order.status or "",
        web_url=web_url,
        images=images,
        tasks=tasks,
    )


class PhotoSource:
    """Reads orders and previews through one cached hook per connection."""

    def __init__(
        self,
        hook_factory: Callable[[str], Any] | None = None,
        *,
        photo_cache_bytes: int = PHOTO_CACHE_BYTES,
        photo_ttl: float = PHOTO_TTL,
        order_ttl: float = ORDER_TTL,
    ) -> None:
        self.hook_factory = hook_factory or default_hook
        self.hooks: BoundedCache[str, Any] = BoundedCache(HOOK_TTL, 64, on_evict=lambda hook: hook.close())
        self.orders: BoundedCache[tuple[str, str], Order] = BoundedCache(order_ttl, 1024)
        self.photos: BoundedCache[tuple[str, str, str, str], Photo] = BoundedCache(
            photo_ttl, 100_000, photo_cache_bytes, size_of=lambda p: len(p.data)
        )
        self.fetches = threading.BoundedSemaphore(MAX_CONCURRENT_FETCHES)
        self.api_calls = 0  # orders and photos read from the API (for tests and the bench)

    def hook(self, conn_id: str) -> Any:
        hook = self.hooks.get(conn_id)
        if hook is None:
            hook = self.hook_factory(conn_id)
            self.hooks.put(conn_id, hook)
        return hook

    def order(self, conn_id: str, order_id: str, *, fresh: bool = False) -> Order:
        key = (conn_id, order_id)
        order = None if fresh else self.orders.get(key)
        if order is None:
            self.api_calls += 1
            order = self.hook(conn_id).get_order(order_id)
            self.orders.put(key, order)
        return order

    def web_url(self, conn_id: str, order_id: str) -> str | None:
        try:
            url = str(self.hook(conn_id).order_url(order_id))
        except Exception:
            return None
        return url if url.startswith(("https://", "http://")) else None

    def photo(self, conn_id: str, image_id: str, kind: str, size: str) -> Photo:
        """A preview of the image (``original`` or ``enhanced``), ``size`` ``thumb`` or ``full``."""
        key = (conn_id, image_id, kind, size)
        cached = self.photos.get(key)
        if cached is not None:
            return cached
        with self.fetches:
            cached = self.photos.get(key)  # fetched by another request while this one waited
            if cached is not None:
                return cached
            buffer = io.BytesIO()
            self.api_calls += 1
            self.hook(conn_id).download_image(
                image_id,
                buffer,
                kind="original" if kind == "original" else "preview",
                max_width=SIZES[size],
                format="jpeg",
                quality=80,
            )
        data = buffer.getvalue()
        content_type = media_type(data)
        if content_type is None:
            raise ValueError("the API's answer is not a JPEG, PNG or WebP image")
        photo = Photo(data, content_type)
        self.photos.put(key, photo)
        return photo


def default_hook(conn_id: str) -> Any:
    """A hook for interactive use: short timeouts and one retry (a page must not hang for minutes)."""
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    return AutoenhanceHook(conn_id, timeout=(5.0, 20.0), retry_limit=1, retry_delay=0.5, retry_max_delay=2.0)
