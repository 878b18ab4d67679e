"""In-memory model of orders, images and brackets, and their processing timeline.

**Timeline.** Nothing ticks: every state change stores timestamps (``started_at``, ``finish_at``,
``visible_at``, ``merge_until``) and statuses are derived from the wall clock when read. That
makes 10,000 seeded orders cost nothing while idle. Only webhooks and persistence need a
background task (:mod:`autoenhance_sandbox.background`), which sleeps until the next due event.

**Image status.** ``waiting`` until the bytes are uploaded; ``processing`` for
``processing_seconds`` after each complete PUT (or reprocess); then ``processed``, or ``error``
with ``status_reason`` when the upload was not a decodable image (decided at PUT time).

**Order status rule** (derived from the order's visible, live images): ``processing`` while the
order is merging or any image is processing; else ``waiting`` if it has no images or any image is
still waiting for its upload; else ``processed`` if every image is processed; else ``error``.
``is_processing`` is true while any image is processing.

**Bracket grouping** for ``/process`` and ``/merge``: only uploaded brackets take part, in the
order of their first completed upload. Modes: ``images[].bracket_ids`` (manual),
``number_of_brackets_per_image`` = N (consecutive chunks of N), or automatic: consecutive brackets
whose names share a *stem* form a group, where the stem is the name without its extension and
without a short trailing bracket index (``kitchen_1.jpg``, ``kitchen-2.jpg``, ``kitchen (3).jpg``,
``kitchen_ev+2.jpg`` -> ``kitchen``; 3+-digit camera counters such as ``IMG_0001`` are *not*
indices). If that finds no multi-bracket group at all, brackets are grouped in threes (the
recommended -2/0/+2 EV set). Each group becomes one image named after its first bracket, which
appears after ``merge_seconds`` (``is_merging`` is true until then) and then processes like an
upload. Its pixels are the average of the group's brackets, computed on first download.

**409s:** a client-chosen ``order_id``/``image_id`` that is already live; ``/process``/``/merge``
while the order is merging or once it has (live) images; downloads of ``enhanced``/``preview``/
``watermark`` for an image that is not ``processed``, and of ``original`` before its bytes exist.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from autoenhance_sandbox import persistence
from autoenhance_sandbox.config import SandboxConfig
from autoenhance_sandbox.errors import ApiError, S3Error, conflict, not_found, validation_error
from autoenhance_sandbox.faults import FaultInjector, FaultSettings
from autoenhance_sandbox.render import (
    FORMATS,
    Probe,
    RenderSpec,
    format_from_media_type,
    media_type_for,
    sample_image_bytes,
)
from autoenhance_sandbox.schemas import IMAGE_DEFAULTS, DownloadParams, ImageRequest, ProcessRequest
from autoenhance_sandbox.stats import Counters
from autoenhance_sandbox.storage import BRACKET_CONTENT_TYPE, BlobStore, signing_secret, upload_relative_path

DEFAULT_ORDER_NAME = "Untitled order"
AUTO_GROUP_FALLBACK = 3
SEED_BLOB = "uploads/_seed.jpg"
_SUFFIX_RE = re.compile(
    r"[\s_\-.]*(?:\(\d{1,2}\)|(?<![0-9])\d{1,2}|ev[+-]?\d+(?:[.,]\d+)?|[+-]?\d+(?:[.,]\d+)?ev|bracket\d{1,2})$",
    re.IGNORECASE,
)


def iso(ts: float) -> str:
    """ISO-8601 in UTC *without* a timezone suffix, as the live API returns (§1)."""
    return (
        dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)
        .replace(tzinfo=None)
        .isoformat(timespec="microseconds")
    )


def bracket_stem(name: str) -> str:
    """Name without extension and trailing bracket index (see the module docstring)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not ext.isalnum() or len(ext) > 5 or not stem:
        stem = name
    return _SUFFIX_RE.sub("", stem).lower() or stem.lower()


def auto_group(names: list[str]) -> list[list[int]]:
    """Indices of automatic groups for brackets named ``names`` (already in upload order)."""
    runs: list[list[int]] = []
    previous: str | None = None
    for index, name in enumerate(names):
        stem = bracket_stem(name)
        if runs and stem == previous:
            runs[-1].append(index)
        else:
            runs.append([index])
        previous = stem
    if all(len(run) == 1 for run in runs):
        size = AUTO_GROUP_FALLBACK
        return [list(range(i, min(i + size, len(names)))) for i in range(0, len(names), size)]
    return runs


@dataclass(slots=True)
class Blob:
    """A stored upload (path relative to the blob root)."""

    path: str
    size: int
    etag: str
    content_type: str | None
    decodable: bool
    image_format: str | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None
    shared: bool = False


@dataclass(slots=True)
class UploadSlot:
    """Where an image/bracket's bytes go: object key, signed Content-Type, and the blob once PUT."""

    object_key: str
    content_type: str | None
    blob: Blob | None = None
    uploaded_at: float | None = None
    upload_seq: int | None = None


@dataclass(slots=True)
class Image:
    image_id: str
    order_id: str
    image_name: str
    settings: dict[str, Any]
    created_at: float
    upload: UploadSlot | None = None  # None for images merged from brackets
    bracket_ids: list[str] = field(default_factory=list)
    visible_at: float = 0.0
    started_at: float | None = None
    finish_at: float | None = None
    final_status: str = "processed"
    status_reason: str | None = None
    image_type: str | None = None
    merged_path: str | None = None
    generation: int = 0
    notified_generation: int = 0
    downloaded: bool = False
    purchased: bool = False
    deleted: bool = False
    updated_at: float = 0.0

    def status(self, now: float) -> str:
        if self.started_at is None or self.finish_at is None or now < self.started_at:
            return "waiting"
        if now < self.finish_at:
            return "processing"
        return self.final_status

    def has_bytes(self) -> bool:
        return bool(self.bracket_ids) or (self.upload is not None and self.upload.blob is not None)


@dataclass(slots=True)
class Bracket:
    bracket_id: str
    order_id: str
    name: str
    metadata: dict[str, Any]
    upload: UploadSlot
    created_at: float
    image_id: str | None = None  # the merged image it ended up in
    legacy_settings: dict[str, Any] | None = None  # registered via POST /v3/images with hdr=true
    deleted: bool = False


@dataclass(slots=True)
class Order:
    order_id: str
    name: str
    seq: int
    created_at: float
    updated_at: float
    image_ids: list[str] = field(default_factory=list)
    bracket_ids: list[str] = field(default_factory=list)
    merge_until: float | None = None
    deleted: bool = False


@dataclass(frozen=True)
class AssetRef:
    """What an asset token points to: an image, the endpoint kind, and raw bytes or a render."""

    image_id: str
    kind: str
    spec: RenderSpec | None  # None = stream the stored bytes as uploaded


@dataclass(frozen=True)
class AssetSource:
    """Files needed to serve an asset (resolved under the state lock, used outside it)."""

    image_id: str
    generation: int
    image_name: str
    path: Path | None
    media_type: str
    merge_inputs: list[Path] | None = None
    merge_target: str | None = None


class SandboxState:
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
        self.credits_remaining: int | None = self.config.credits
        self._seq = itertools.count(1)
        self._upload_seq = itertools.count(1)
        self._event_seq = itertools.count(1)
        self.events: list[tuple[float, int, str, int]] = []  # (due, tiebreak, image id, generation)

    # -- bookkeeping ---------------------------------------------------------------------------

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

    def record_request(self, endpoint_key: str, status: str) -> None:
        with self.lock:
            self.counters.record_request(endpoint_key, status)

    def count_fault(self, kind: str) -> None:
        with self.lock:
            self.counters.faults_injected[kind] = self.counters.faults_injected.get(kind, 0) + 1

    def count_leak(self, where: str) -> None:
        with self.lock:
            self.counters.leaked_api_key[where] += 1

    def count_download(self, kind: str) -> None:
        with self.lock:
            self.counters.downloads[kind] = self.counters.downloads.get(kind, 0) + 1

    # -- orders --------------------------------------------------------------------------------

    def _new_order(self, order_id: str, name: str | None, now: float) -> Order:
        order = Order(order_id, name or DEFAULT_ORDER_NAME, next(self._seq), now, now)
        self.orders[order_id] = order
        self.order_list.append((order.seq, order_id))
        return order

    def _live_order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None or order.deleted:
            raise not_found(f"Order {order_id} not found")
        return order

    def create_order(self, order_id: str | None, name: str | None, now: float) -> dict[str, Any]:
        with self.lock:
            if order_id and order_id in self.orders and not self.orders[order_id].deleted:
                raise conflict(f"Order with order_id {order_id} already exists")
            order = self._new_order(order_id or str(uuid.uuid4()), name, now)
            self.counters.orders_created += 1
            self._changed()
            return self.order_out(order, now)

    def get_order(self, order_id: str, now: float) -> dict[str, Any]:
        with self.lock:
            return self.order_out(self._live_order(order_id), now)

    def list_orders(
        self, after_seq: int | None, per_page: int, now: float
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; returns the page and the seq to continue after (or None on the last page)."""
        with self.lock:
            end = (
                len(self.order_list)
                if after_seq is None
                else bisect.bisect_left(self.order_list, (after_seq, ""))
            )
            page: list[Order] = []
            index = end - 1
            while index >= 0 and len(page) < per_page:
                seq, order_id = self.order_list[index]
                order = self.orders.get(order_id)
                if order is not None and order.seq == seq and not order.deleted:
                    page.append(order)
                index -= 1
            more = any(
                (o := self.orders.get(oid)) is not None and o.seq == seq and not o.deleted
                for seq, oid in reversed(self.order_list[: index + 1])
            )
            next_seq = page[-1].seq if page and more else None
            return [self.order_out(order, now) for order in page], next_seq

    def rename_order(self, order_id: str, name: str | None, now: float) -> dict[str, Any]:
        with self.lock:
            order = self._live_order(order_id)
            if name is not None:
                order.name = name
            order.updated_at = now
            self._changed()
            return self.order_out(order, now)

    def delete_order(self, order_id: str, now: float) -> None:
        with self.lock:
            order = self._live_order(order_id)
            order.deleted = True
            order.updated_at = now
            for image_id in order.image_ids:
                self._drop_image(self.images[image_id])
            for bracket_id in order.bracket_ids:
                bracket = self.brackets[bracket_id]
                bracket.deleted = True
                self.uploads.pop(bracket.upload.object_key, None)
                self._remove_blob(bracket.upload.blob)
            self._changed()

    def order_out(self, order: Order, now: float) -> dict[str, Any]:
        """OrderOut (§4.5) with status, flags and last_updated_at derived from the clock."""
        is_merging = order.merge_until is not None and now < order.merge_until
        images: list[dict[str, Any]] = []
        last = order.updated_at
        if order.merge_until is not None and order.merge_until <= now:
            last = max(last, order.merge_until)
        for image_id in order.image_ids:
            image = self.images[image_id]
            if image.deleted or image.visible_at > now:
                continue
            images.append(self.image_out(image, now))
            for ts in (image.updated_at, image.visible_at, image.started_at, image.finish_at):
                if ts is not None and ts <= now:
                    last = max(last, ts)
        statuses = {image["status"] for image in images}
        return {
            "order_id": order.order_id,
            "name": order.name,
            "status": order_status(statuses, is_merging),
            "is_processing": "processing" in statuses,
            "is_merging": is_merging,
            "is_deleted": order.deleted,
            "total_images": len(images),
            "images": images,
            "created_at": iso(order.created_at),
            "last_updated_at": iso(last),
        }

    # -- images --------------------------------------------------------------------------------

    def _live_image(self, image_id: str, now: float) -> Image:
        image = self.images.get(image_id)
        if image is None or image.deleted or image.visible_at > now:
            raise not_found(f"Image {image_id} not found")
        return image

    def _order_for_create(self, order_id: str | None, now: float) -> Order:
        order = self.orders.get(order_id) if order_id else None
        if order is not None and not order.deleted:
            return order
        self.counters.orders_created += 1
        return self._new_order(order_id or str(uuid.uuid4()), None, now)

    @staticmethod
    def _object_key(kind: str, name: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].strip(".") or "file"
        return f"{kind}/{uuid.uuid4().hex}/{safe}"

    def create_image(self, request: ImageRequest, now: float) -> tuple[dict[str, Any], str]:
        """Register an image (or, with ``hdr: true``, a legacy bracket); returns (out, object key)."""
        with self.lock:
            if request.image_id and (
                ((existing := self.images.get(request.image_id)) is not None and not existing.deleted)
                or ((b := self.brackets.get(request.image_id)) is not None and not b.deleted)
            ):
                raise conflict(f"Image with image_id {request.image_id} already exists")
            order = self._order_for_create(request.order_id, now)
            order.updated_at = now
            assert request.image_name is not None
            if request.hdr:
                bracket = self._new_bracket(
                    order,
                    request.image_name,
                    request.settings.get("metadata") or {},
                    request.content_type,
                    now,
                    bracket_id=request.image_id,
                    legacy_settings=request.settings,
                )
                self._changed()
                return self.legacy_bracket_out(bracket), bracket.upload.object_key
            image_id = request.image_id or str(uuid.uuid4())
            key = self._object_key("images", request.image_name)
            image = Image(
                image_id=image_id,
                order_id=order.order_id,
                image_name=request.image_name,
                settings={**IMAGE_DEFAULTS, **request.settings},
                created_at=now,
                upload=UploadSlot(key, request.content_type),
                updated_at=now,
            )
            self.images[image_id] = image
            self.uploads[key] = ("image", image_id)
            order.image_ids.append(image_id)
            self.counters.images_created += 1
            self._changed()
            return self.image_out(image, now), key

    def get_image(self, image_id: str, now: float) -> dict[str, Any]:
        with self.lock:
            return self.image_out(self._live_image(image_id, now), now)

    def reprocess_image(self, image_id: str, request: ImageRequest, now: float) -> dict[str, Any]:
        """Merge new settings over the old ones and, if the bytes exist, process again."""
        with self.lock:
            image = self._live_image(image_id, now)
            image.settings = {**image.settings, **request.settings}
            if request.image_name:
                image.image_name = request.image_name
            if image.has_bytes():
                self._start_processing(image, now)
            image.updated_at = now
            self._changed()
            return self.image_out(image, now)

    def _start_processing(self, image: Image, now: float) -> None:
        image.generation += 1
        image.started_at = now
        image.finish_at = now + self.config.processing_seconds
        self._schedule(image)

    def delete_image(self, image_id: str, now: float) -> None:
        with self.lock:
            image = self._live_image(image_id, now)
            self._drop_image(image)
            self.orders[image.order_id].updated_at = now
            self._changed()

    def _drop_image(self, image: Image) -> None:
        image.deleted = True
        if image.upload is not None:
            self.uploads.pop(image.upload.object_key, None)
            self._remove_blob(image.upload.blob)
        self.blobs.remove(image.merged_path)

    def _remove_blob(self, blob: Blob | None) -> None:
        if blob is not None and not blob.shared:
            self.blobs.remove(blob.path)

    def add_report(self, image_id: str, report: dict[str, Any], now: float) -> dict[str, Any]:
        with self.lock:
            self._live_image(image_id, now)
            record = {"report_id": str(uuid.uuid4()), "image_id": image_id, **report, "created_at": iso(now)}
            self.reports.append(record)
            self.counters.reports += 1
            self._changed()
            return dict(record)

    def image_out(self, image: Image, now: float) -> dict[str, Any]:
        """ImageOut (§4.3) plus the observed extras ``enhanced``/``error``."""
        s = image.settings
        status = image.status(now)
        return {
            "image_id": image.image_id,
            "image_name": image.image_name,
            "order_id": image.order_id,
            "status": status,
            "status_reason": image.status_reason if status == "error" else None,
            "enhance": s["enhance"],
            "enhance_type": s["enhance_type"],
            "ai_version": s["ai_version"],
            "sky_replacement": s["sky_replacement"],
            "cloud_type": s["cloud_type"],
            "vertical_correction": s["vertical_correction"],
            "lens_correction": s["lens_correction"],
            "window_pull": s["window_pull"],
            "window_pull_type": s["window_pull_type"],
            "privacy": s["privacy"],
            "upscale": s["upscale"],
            "is_threesixty": s["threesixty"],
            "rating": s["rating"],
            "metadata": s["metadata"],
            "finetune_settings": s["finetune_settings"],
            "preset_id": s["preset_id"],
            "restage": s["restage"],
            "image_type": image.image_type,
            "date_added": int(image.created_at * 1000),
            "downloaded": image.downloaded,
            "parent_image_id": None,
            "scene": None,
            "user_id": "sandbox|user",
            "hdr": bool(image.bracket_ids),
            "enhanced": status == "processed",
            "error": status == "error",
        }

    # -- brackets ------------------------------------------------------------------------------

    def _new_bracket(
        self,
        order: Order,
        name: str,
        metadata: dict[str, Any],
        content_type: str | None,
        now: float,
        *,
        bracket_id: str | None = None,
        legacy_settings: dict[str, Any] | None = None,
    ) -> Bracket:
        key = self._object_key("brackets", name)
        bracket = Bracket(
            bracket_id or str(uuid.uuid4()),
            order.order_id,
            name,
            metadata,
            UploadSlot(key, content_type),
            now,
            legacy_settings=legacy_settings,
        )
        self.brackets[bracket.bracket_id] = bracket
        self.uploads[key] = ("bracket", bracket.bracket_id)
        order.bracket_ids.append(bracket.bracket_id)
        order.updated_at = now
        self.counters.brackets_created += 1
        return bracket

    def create_bracket(
        self, order_id: str, name: str, metadata: dict[str, Any], now: float
    ) -> tuple[dict[str, Any], str]:
        with self.lock:
            order = self._live_order(order_id)
            bracket = self._new_bracket(order, name, metadata, BRACKET_CONTENT_TYPE, now)
            self._changed()
            return self.bracket_out(bracket), bracket.upload.object_key

    def list_brackets(self, order_id: str) -> list[dict[str, Any]]:
        with self.lock:
            order = self._live_order(order_id)
            return [
                self.bracket_out(self.brackets[b]) for b in order.bracket_ids if not self.brackets[b].deleted
            ]

    @staticmethod
    def bracket_out(bracket: Bracket) -> dict[str, Any]:
        return {
            "bracket_id": bracket.bracket_id,
            "name": bracket.name,
            "order_id": bracket.order_id,
            "is_uploaded": bracket.upload.blob is not None,
            "metadata": bracket.metadata,
            "image_id": bracket.image_id,
        }

    def legacy_bracket_out(self, bracket: Bracket) -> dict[str, Any]:
        """``POST /v3/images`` with ``hdr: true`` answers with an ImageOut-shaped bracket."""
        settings = {**IMAGE_DEFAULTS, **(bracket.legacy_settings or {})}
        fake = Image(bracket.bracket_id, bracket.order_id, bracket.name, settings, bracket.created_at)
        return {**self.image_out(fake, bracket.created_at), "hdr": True, "bracket_id": bracket.bracket_id}

    def process_order(self, order_id: str, request: ProcessRequest, now: float) -> dict[str, Any]:
        """Group the uploaded brackets and schedule one merged image per group (§4.8)."""
        with self.lock:
            order = self._live_order(order_id)
            if order.merge_until is not None and now < order.merge_until:
                raise conflict(f"Order {order_id} is already merging its brackets")
            if any(not self.images[i].deleted for i in order.image_ids):
                raise conflict(f"Order {order_id} already has images; it has already been processed")
            live = [self.brackets[b] for b in order.bracket_ids if not self.brackets[b].deleted]
            uploaded = sorted(
                (b for b in live if b.upload.blob is not None), key=lambda b: b.upload.upload_seq or 0
            )
            if not uploaded:
                raise validation_error(
                    "json", "_schema", f"Order {order_id} has no uploaded brackets to process."
                )
            groups = self._groups(request, uploaded, live)
            merge_until = now + self.config.merge_seconds
            order.merge_until = merge_until
            order.updated_at = now
            for group in groups:
                self._merged_image(order, group, request.settings, merge_until)
            self._changed()
            return self.order_out(order, now)

    def _groups(
        self, request: ProcessRequest, uploaded: list[Bracket], live: list[Bracket]
    ) -> list[list[Bracket]]:
        if request.groups:
            known = {b.bracket_id: b for b in live}
            seen: set[str] = set()
            problems: list[str] = []
            groups: list[list[Bracket]] = []
            for ids in request.groups:
                group = []
                for bracket_id in ids:
                    bracket = known.get(bracket_id)
                    if bracket is None:
                        problems.append(f"Bracket {bracket_id} does not belong to this order.")
                    elif bracket.upload.blob is None:
                        problems.append(f"Bracket {bracket_id} has not been uploaded.")
                    elif bracket_id in seen:
                        problems.append(f"Bracket {bracket_id} is listed more than once.")
                    else:
                        group.append(bracket)
                    seen.add(bracket_id)
                groups.append(group)
            if problems:
                raise ApiError(422, "Validation error", {"json": {"images": problems}})
            return groups
        if request.per_image:
            n = request.per_image
            return [uploaded[i : i + n] for i in range(0, len(uploaded), n)]
        return [[uploaded[i] for i in group] for group in auto_group([b.name for b in uploaded])]

    def _merged_image(self, order: Order, group: list[Bracket], settings: dict[str, Any], at: float) -> None:
        broken = next((b for b in group if b.upload.blob is None or not b.upload.blob.decodable), None)
        image = Image(
            image_id=str(uuid.uuid4()),
            order_id=order.order_id,
            image_name=group[0].name,
            settings={**IMAGE_DEFAULTS, **settings},
            created_at=at,
            bracket_ids=[b.bracket_id for b in group],
            visible_at=at,
            image_type="jpeg",
            updated_at=at,
        )
        if broken is not None:
            image.final_status = "error"
            image.status_reason = (
                f"Bracket '{broken.name}' is not a decodable image, so its group could not be merged."
            )
        for bracket in group:
            bracket.image_id = image.image_id
        self.images[image.image_id] = image
        order.image_ids.append(image.image_id)
        self.counters.merged_images += 1
        self._start_processing(image, at)

    # -- uploads -------------------------------------------------------------------------------

    def upload_slot(self, object_key: str) -> UploadSlot:
        """The slot a presigned URL points at (404 S3 error if the image/bracket is gone)."""
        with self.lock:
            entry = self.uploads.get(object_key)
            if entry is None:
                raise S3Error(
                    404, "NoSuchUpload", "The upload target does not exist (deleted or never created)."
                )
            kind, owner = entry
            slot = self.images[owner].upload if kind == "image" else self.brackets[owner].upload
            assert slot is not None
            return slot

    def complete_upload(
        self,
        object_key: str,
        tmp: Path,
        size: int,
        etag: str,
        content_type: str | None,
        probe: Probe,
        now: float,
    ) -> None:
        """Store a finished PUT; images start (or restart) processing, brackets flip is_uploaded."""
        with self.lock:
            entry = self.uploads.get(object_key)
            if entry is None:
                tmp.unlink(missing_ok=True)
                raise S3Error(404, "NoSuchUpload", "The upload target was deleted during the upload.")
            kind, owner = entry
            target = self.images[owner] if kind == "image" else self.brackets[owner]
            slot = target.upload
            assert slot is not None
            relative = upload_relative_path(object_key)
            self.blobs.commit(tmp, relative)
            slot.blob = Blob(
                relative,
                size,
                etag,
                content_type,
                probe.decodable,
                probe.image_format,
                probe.width,
                probe.height,
                probe.error,
            )
            slot.uploaded_at = now
            if slot.upload_seq is None:
                slot.upload_seq = next(self._upload_seq)
            self.counters.uploads += 1
            if isinstance(target, Image):
                target.final_status = "processed" if probe.decodable else "error"
                target.status_reason = None if probe.decodable else probe.error
                target.image_type = probe.image_format or format_from_media_type(
                    content_type or slot.content_type
                )
                target.updated_at = now
                self._start_processing(target, now)
            self.orders[target.order_id].updated_at = now
            self._changed()

    # -- downloads -----------------------------------------------------------------------------

    def prepare_download(
        self, image_id: str, kind: str, params: DownloadParams, dev_mode: bool, now: float
    ) -> AssetRef:
        """Check the image can be served, do the purchase bookkeeping, describe the asset."""
        with self.lock:
            image = self._live_image(image_id, now)
            status = image.status(now)
            if kind == "original":
                if not image.has_bytes():
                    raise conflict(f"Image {image_id} has no uploaded file yet (status: {status}).")
                if image.bracket_ids and image.final_status == "error":
                    raise conflict(f"Image {image_id} could not be produced: {image.status_reason}")
                if not params.has_rendering:
                    return AssetRef(image_id, kind, None)
                if (
                    image.upload is not None
                    and image.upload.blob is not None
                    and not image.upload.blob.decodable
                ):
                    raise conflict(
                        f"Image {image_id}'s original is not a decodable image; download it without "
                        "rendering parameters to get the stored bytes."
                    )
                fmt = params.format or (image.image_type if image.image_type in FORMATS else "jpeg")
                return AssetRef(
                    image_id, kind, self._spec(params, fmt, enhance=False, watermark=params.watermark)
                )
            if status == "error":
                raise conflict(f"Image {image_id} failed processing: {image.status_reason}")
            if status != "processed":
                raise conflict(f"Image {image_id} is not processed yet (status: {status}).")
            watermark = params.watermark
            if kind == "enhanced" and not params.preview:
                if dev_mode:
                    watermark = True  # development mode: free, but marked
                else:
                    self._purchase(image)
            spec = self._spec(
                params, params.format or "jpeg", enhance=bool(image.settings["enhance"]), watermark=watermark
            )
            return AssetRef(image_id, kind, spec)

    @staticmethod
    def _spec(params: DownloadParams, fmt: str, *, enhance: bool, watermark: bool) -> RenderSpec:
        return RenderSpec(
            enhance, params.preview, watermark, fmt, params.quality, params.max_width, params.scale
        )

    def _purchase(self, image: Image) -> None:
        """First full-size download of an image costs one credit; later ones are free."""
        if not image.purchased:
            if self.credits_remaining is not None:
                if self.credits_remaining <= 0:
                    raise ApiError(402, "Insufficient credits", {"credits_remaining": 0})
                self.credits_remaining -= 1
            image.purchased = True
            self.counters.purchases += 1
            self.counters.purchases_per_image[image.image_id] = (
                self.counters.purchases_per_image.get(image.image_id, 0) + 1
            )
        image.downloaded = True
        self._changed()

    def asset_source(self, image_id: str) -> AssetSource:
        """Resolve the file behind an asset (or the brackets still to be merged into it)."""
        with self.lock:
            image = self.images.get(image_id)
            if image is None or image.deleted:
                raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
            if image.upload is not None:
                blob = image.upload.blob
                if blob is None:
                    raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
                media = blob.content_type or image.upload.content_type or media_type_for(blob.image_format)
                return AssetSource(
                    image_id,
                    image.generation,
                    image.image_name,
                    self.root / blob.path,
                    media or "application/octet-stream",
                )
            if image.merged_path and (self.root / image.merged_path).exists():
                return AssetSource(
                    image_id, image.generation, image.image_name, self.root / image.merged_path, "image/jpeg"
                )
            inputs = []
            for bracket_id in image.bracket_ids:
                blob = self.brackets[bracket_id].upload.blob
                if blob is None or not blob.decodable:
                    raise S3Error(404, "NoSuchKey", "The merged image could not be produced.")
                inputs.append(self.root / blob.path)
            return AssetSource(
                image_id,
                image.generation,
                image.image_name,
                None,
                "image/jpeg",
                inputs,
                f"derived/{image_id}.jpg",
            )

    def set_merged_path(self, image_id: str, relative: str) -> None:
        with self.lock:
            image = self.images.get(image_id)
            if image is not None:
                image.merged_path = relative
                self._changed()

    # -- seeding -------------------------------------------------------------------------------

    def seed(
        self, orders: int, per_order: int, finish_after: float | None, error_fraction: float, now: float
    ) -> list[str]:
        """Bulk-create orders whose images are uploaded and processing (benchmarks at scale)."""
        with self.lock:
            seed_path = self.root / SEED_BLOB
            if not seed_path.exists():
                self.blobs.write_bytes(SEED_BLOB, sample_image_bytes())
            blob = Blob(
                SEED_BLOB, seed_path.stat().st_size, "seed", "image/jpeg", True, "jpeg", 96, 64, shared=True
            )
            finish = now + (self.config.processing_seconds if finish_after is None else finish_after)
            order_ids: list[str] = []
            counter = 0
            for index in range(orders):
                order = self._new_order(str(uuid.uuid4()), f"Seeded order {index + 1}", now)
                order_ids.append(order.order_id)
                for number in range(per_order):
                    counter += 1
                    failed = (counter * 0.6180339887498949) % 1.0 < error_fraction
                    image = Image(
                        image_id=str(uuid.uuid4()),
                        order_id=order.order_id,
                        image_name=f"seed_{index + 1}_{number + 1}.jpg",
                        settings=IMAGE_DEFAULTS.copy(),
                        created_at=now,
                        upload=UploadSlot(
                            f"seed/{order.order_id}/{number}", None, blob, now, next(self._upload_seq)
                        ),
                        started_at=now,
                        finish_at=finish,
                        final_status="error" if failed else "processed",
                        status_reason="Seeded failure (error_fraction)." if failed else None,
                        image_type="jpeg",
                        generation=1,
                        updated_at=now,
                    )
                    self.images[image.image_id] = image
                    order.image_ids.append(image.image_id)
                    self._schedule(image)
            self.counters.seeded_orders += orders
            self._changed()
            return order_ids

    # -- webhooks ------------------------------------------------------------------------------

    def seconds_until_next_event(self, now: float) -> float | None:
        with self.lock:
            return max(0.0, self.events[0][0] - now) if self.events else None

    def due_webhooks(self, now: float) -> list[dict[str, Any]]:
        """Pop due ``image_processed`` events; ``order_is_processing`` is computed one by one so
        only the last image of an order to finish reports ``false``."""
        with self.lock:
            payloads: list[dict[str, Any]] = []
            while self.events and self.events[0][0] <= now:
                _, _, image_id, generation = heapq.heappop(self.events)
                image = self.images.get(image_id)
                if image is None or image.deleted or image.generation != generation:
                    continue
                if image.notified_generation >= generation:
                    continue
                image.notified_generation = generation
                order = self.orders[image.order_id]
                payloads.append(
                    {
                        "event": "image_processed",
                        "image_id": image_id,
                        "error": image.status(now) == "error",
                        "order_id": image.order_id,
                        "order_is_processing": self._order_busy(order, now),
                    }
                )
            return payloads

    def _order_busy(self, order: Order, now: float) -> bool:
        if order.merge_until is not None and now < order.merge_until:
            return True
        for image_id in order.image_ids:
            image = self.images[image_id]
            if image.deleted or image.started_at is None:
                continue
            if image.status(now) == "processing" or image.notified_generation < image.generation:
                return True
        return False

    def requeue_unnotified(self) -> None:
        """After a restart, queue webhooks for runs that finished while we were down."""
        with self.lock:
            for image in self.images.values():
                if not image.deleted and image.generation > image.notified_generation:
                    self._schedule(image)

    def record_webhook(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.webhook_log.append(record)
            if record.get("status_code") is not None:
                self.counters.webhooks_sent += 1

    # -- stats ---------------------------------------------------------------------------------

    def stats(self, now: float | None = None) -> dict[str, Any]:
        """The ``/_sandbox/stats`` document (counters plus values derived from live state)."""
        now = time.time() if now is None else now
        with self.lock:
            data = self.counters.to_dict()
            live_orders = {oid for oid, order in self.orders.items() if not order.deleted}
            names: dict[str, dict[str, int]] = {}
            live_images = 0
            for image in self.images.values():
                if image.deleted or image.visible_at > now or image.order_id not in live_orders:
                    continue
                live_images += 1
                per_order = names.setdefault(image.order_id, {})
                per_order[image.image_name] = per_order.get(image.image_name, 0) + 1
            duplicates = {
                oid: {name: n for name, n in counts.items() if n > 1}
                for oid, counts in names.items()
                if any(n > 1 for n in counts.values())
            }
            data.update(
                credits_remaining=self.credits_remaining,
                live_orders=len(live_orders),
                live_images=live_images,
                duplicate_image_names=duplicates,
            )
            return data

    # -- persistence ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of everything worth keeping across a restart."""
        with self.lock:
            self.dirty = False
            return {
                "format": 1,
                "orders": [_dump(o) for o in self.orders.values()],
                "images": [_dump(i) for i in self.images.values()],
                "brackets": [_dump(b) for b in self.brackets.values()],
                "reports": list(self.reports),
                "counters": self.counters.to_dict(),
                "credits_remaining": self.credits_remaining,
                "seq": self.order_list[-1][0] if self.order_list else 0,
                "upload_seq": max(
                    [s.upload_seq or 0 for s in self._all_slots()] or [0],
                ),
            }

    def _all_slots(self) -> list[UploadSlot]:
        slots = [i.upload for i in self.images.values() if i.upload is not None]
        return slots + [b.upload for b in self.brackets.values()]

    def restore(self, data: dict[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        with self.lock:
            self._clear()
            for raw in sorted(data.get("orders", []), key=lambda o: o["seq"]):
                order = Order(**raw)
                self.orders[order.order_id] = order
                self.order_list.append((order.seq, order.order_id))
            for raw in data.get("images", []):
                image = Image(**{**raw, "upload": _load_slot(raw.get("upload"))})
                self.images[image.image_id] = image
                if (
                    image.upload is not None
                    and not image.deleted
                    and not image.upload.object_key.startswith("seed/")
                ):
                    self.uploads[image.upload.object_key] = ("image", image.image_id)
            for raw in data.get("brackets", []):
                bracket = Bracket(**{**raw, "upload": _load_slot(raw["upload"])})
                self.brackets[bracket.bracket_id] = bracket
                if not bracket.deleted:
                    self.uploads[bracket.upload.object_key] = ("bracket", bracket.bracket_id)
            self.reports = list(data.get("reports", []))
            self.counters = Counters.from_dict(data.get("counters", {}))
            self.credits_remaining = data.get("credits_remaining", self.config.credits)
            self._seq = itertools.count(int(data.get("seq", 0)) + 1)
            self._upload_seq = itertools.count(int(data.get("upload_seq", 0)) + 1)
            self.dirty = False


def order_status(statuses: set[str], is_merging: bool) -> str:
    """The order status rule documented in the module docstring."""
    if is_merging or "processing" in statuses:
        return "processing"
    if not statuses or "waiting" in statuses:
        return "waiting"
    if statuses == {"processed"}:
        return "processed"
    return "error"


def _dump(obj: Any) -> dict[str, Any]:
    """Shallow, fast dataclass -> dict (nested UploadSlot/Blob converted, lists copied)."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, (UploadSlot, Blob)):
            value = _dump(value)
        elif isinstance(value, list):
            value = list(value)
        out[f.name] = value
    return out


def _load_slot(raw: dict[str, Any] | None) -> UploadSlot | None:
    if raw is None:
        return None
    blob = raw.get("blob")
    return UploadSlot(**{**raw, "blob": Blob(**blob) if blob else None})
