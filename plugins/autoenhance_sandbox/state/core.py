"""The shared core of :class:`SandboxState`: lock, config, blob store, counters, lookups."""

from __future__ import annotations

import collections
import heapq
import itertools
import json
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoenhance_sandbox import persistence
from autoenhance_sandbox.config import SandboxConfig
from autoenhance_sandbox.errors import ApiError, not_found
from autoenhance_sandbox.faults import FaultInjector, FaultSettings
from autoenhance_sandbox.limits import DAILY_LIMIT_REASON, HOUR, LimitCounters
from autoenhance_sandbox.state.model import (
    Blob,
    Bracket,
    Image,
    Order,
)
from autoenhance_sandbox.stats import Counters
from autoenhance_sandbox.storage import BlobStore, signing_secret

REJECTION_LOG_SIZE = 500


class StateCore:
    """All mutable sandbox state behind one re-entrant lock (tests poke it from other threads)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self._cleanup: Callable[[], Any] | None = None
        if config.data_dir:
            root = Path(config.data_dir)
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = Path(tempfile.mkdtemp(prefix=f"autoenhance-sandbox-{os.getpid()}-"))
            # also removed at interpreter exit if the app was never started/stopped
            self._cleanup = weakref.finalize(self, shutil.rmtree, root, ignore_errors=True)
        self.blobs = BlobStore(root, signing_secret(config.api_key))
        self.faults = FaultInjector(self.config_fault_settings())
        self.webhook_log: list[dict[str, Any]] = []
        self.notify: Callable[[], None] | None = None  # wakes the background worker
        self.dirty = False
        self._clear()
        if config.data_dir:
            saved = persistence.load(root)
            if saved is not None:
                self.restore(saved)

    def config_fault_settings(self) -> FaultSettings:
        c = self.config
        return FaultSettings(c.fault_rate, c.fault_kinds, {}, c.seed, c.fault_phase, c.slow_seconds)

    def _clear(self) -> None:
        self.orders: dict[str, Order] = {}
        self.images: dict[str, Image] = {}
        self.brackets: dict[str, Bracket] = {}
        self.uploads: dict[str, tuple[str, str]] = {}  # object key -> (kind, owner id)
        self.reports: list[dict[str, Any]] = []
        self.order_list: list[tuple[int, str]] = []  # (seq, order id), ascending
        self.counters = Counters()
        self.limit_counters = LimitCounters()
        self.credits_remaining: int | None = self.config.credits
        self._seq = itertools.count(1)
        self._upload_seq = itertools.count(1)
        self._event_seq = itertools.count(1)
        self.events: list[tuple[float, int, str, int]] = []  # (due, tiebreak, image id, generation)
        self.clock_offset = 0.0
        self.rejections: collections.deque[dict[str, Any]] = collections.deque(maxlen=REJECTION_LOG_SIZE)

    @property
    def root(self) -> Path:
        return self.blobs.root

    @property
    def persistent(self) -> bool:
        return bool(self.config.data_dir)

    def _changed(self) -> None:
        self.dirty = True
        if self.persistent and self.notify is not None:
            self.notify()

    def _schedule(self, image: Image) -> None:
        """Queue the ``image_processed`` webhook for the image's current processing run."""
        if not self.config.webhook_url or image.finish_at is None:
            return
        heapq.heappush(
            self.events, (image.finish_at, next(self._event_seq), image.image_id, image.generation)
        )
        if self.notify is not None:
            self.notify()

    def close(self) -> None:
        """Drop the temp dir of a non-persistent sandbox."""
        if self._cleanup is not None:
            self._cleanup()

    def reset(self) -> None:
        """Forget all orders, images, blobs and counters; keep config and fault settings."""
        with self.lock:
            self.blobs.clear()
            self._clear()
            self.faults.restart_sequences()
            self.webhook_log.clear()
            self._changed()

    def now(self) -> float:
        """The sandbox clock: wall time plus what tests advanced (``POST /_sandbox/clock``), so a
        test can finish processing or merging without waiting for it."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self.lock:
            self.clock_offset += seconds
        if self.notify is not None:
            self.notify()  # webhooks that became due
        return self.clock_offset

    def record_request(self, endpoint_key: str, status: str) -> None:
        with self.lock:
            self.counters.record_request(endpoint_key, status)

    def count_fault(self, kind: str) -> None:
        with self.lock:
            self.counters.faults_injected[kind] = self.counters.faults_injected.get(kind, 0) + 1

    def count_refusal(self, kind: str) -> None:
        with self.lock:
            refusals = self.counters.limit_refusals
            refusals[kind] = refusals.get(kind, 0) + 1

    def reset_limits(self) -> None:
        """Every limit window starts afresh: "capacity upgraded" (``POST /_sandbox/limits/reset``)."""
        with self.lock:
            self.limit_counters.reset()

    def allow_request(self, client: str) -> bool:
        """The request-rate bucket of one client IP (always True when the limit is off)."""
        rate = self.config.rate_limit_per_second
        if rate is None:
            return True
        with self.lock:
            allowed = self.limit_counters.allow_request(client, rate, self.config.rate_limit_burst)
            if not allowed:
                self.count_refusal("rate_limit")
            return allowed

    def retry_after(self, seconds: float) -> dict[str, str] | None:
        """``Retry-After`` for a limit's 429, if the ``rate_limit_retry_after`` reading sends one."""
        if self.config.rate_limit_retry_after != "present":
            return None
        return {"Retry-After": str(max(1, int(seconds + 0.999)))}

    def seconds_to_next_hour(self, now: float) -> float:
        return HOUR - (now % HOUR)

    def count_leak(self, where: str) -> None:
        with self.lock:
            self.counters.leaked_api_key[where] += 1

    def record_rejection(
        self, method: str, path: str, api_version: str | None, raw_body: bytes, error: ApiError
    ) -> None:
        """Keep the last rejected API requests (400/409/422) with their bodies, so a client's
        author can see exactly what the strict sandbox refused (``GET /_sandbox/rejections``)."""
        try:
            body: Any = json.loads(raw_body) if raw_body.strip() else None
        except (ValueError, UnicodeDecodeError):
            body = raw_body[:2000].decode("utf-8", "replace")
        record = {
            "method": method,
            "path": path,
            "api_version": api_version,
            "body": body,
            "status": error.status,
            "response": error.body,
        }
        with self.lock:
            self.rejections.append(record)

    def count_download(self, kind: str) -> None:
        with self.lock:
            self.counters.downloads[kind] = self.counters.downloads.get(kind, 0) + 1

    def _live_order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None or order.deleted:
            raise not_found(f"Order {order_id} not found")
        return order

    def _live_image(self, image_id: str, now: float) -> Image:
        image = self.images.get(image_id)
        if image is None or image.deleted or image.visible_at > now:
            raise not_found(f"Image {image_id} not found")
        return image

    def _start_processing(self, image: Image, now: float) -> None:
        """Start a processing run; it counts against the daily enhancement limit, and beyond the
        limit the image enters ``error`` at once with a ``status_reason`` naming the limit."""
        image.generation += 1
        image.started_at = now
        limit = self.config.daily_enhancement_limit
        counts = image.final_status == "processed"
        if counts and limit is not None and not self.limit_counters.enhance(limit, now):
            image.final_status = "error"
            image.status_reason = DAILY_LIMIT_REASON.format(limit=limit)
            image.refused = "daily_limit"
            image.finish_at = now
            self.count_refusal("daily_limit")
        else:
            image.finish_at = now + self.config.processing_seconds
            if counts:
                self.counters.enhancements += 1
                per_image = self.counters.enhancements_per_image
                per_image[image.image_id] = per_image.get(image.image_id, 0) + 1
        self._schedule(image)

    def _remove_blob(self, blob: Blob | None) -> None:
        if blob is not None and not blob.shared:
            self.blobs.remove(blob.path)
