"""Records of the sandbox (orders, images, brackets, uploads) and helpers shared by all resources."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from autoenhance_sandbox.render import (
    RenderSpec,
)

DEFAULT_ORDER_NAME = "Untitled order"
SEED_BLOB = "uploads/_seed.jpg"


def iso(ts: float) -> str:
    """ISO-8601 in UTC *without* a timezone suffix, as the live API returns (§1)."""
    return (
        dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)
        .replace(tzinfo=None)
        .isoformat(timespec="microseconds")
    )


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
    #: ``"daily_limit"`` or ``"duplicate_name"`` while an account limit holds the image in ``error``.
    refused: str | None = None

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
