"""The Autoenhance status vocabulary and the one rule that decides when an order is done.

Shared by the hook's blocking wait, the sensor and the deferrable trigger, so that all three
modes agree on what "done" and "failed" mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ImageStatus(str, Enum):
    """Image statuses of the v3 API, plus ``UNKNOWN`` for anything new (treated as not finished)."""

    WAITING = "waiting"
    PROCESSING = "processing"
    PROCESSED = "processed"
    ERROR = "error"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: Any) -> ImageStatus:
        """Map the API's word (and the synonyms third-party clients have seen) to a member."""
        text = str(value or "").strip().lower()
        return _IMAGE_SYNONYMS.get(text) or next((m for m in cls if m.value == text), cls.UNKNOWN)

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_IMAGE_STATUSES

    @property
    def is_failure(self) -> bool:
        return self in FAILED_IMAGE_STATUSES


_IMAGE_SYNONYMS = {
    "complete": ImageStatus.PROCESSED,
    "completed": ImageStatus.PROCESSED,
    "enhanced": ImageStatus.PROCESSED,
    "failed": ImageStatus.ERROR,
}

TERMINAL_IMAGE_STATUSES = frozenset({ImageStatus.PROCESSED, ImageStatus.ERROR, ImageStatus.EXPIRED})
FAILED_IMAGE_STATUSES = frozenset({ImageStatus.ERROR, ImageStatus.EXPIRED})
NON_TERMINAL_IMAGE_STATUSES = frozenset(set(ImageStatus) - TERMINAL_IMAGE_STATUSES)


class OrderStatus(str, Enum):
    """Order statuses of the v3 API (the order mirrors its images)."""

    WAITING = "waiting"
    PROCESSING = "processing"
    PROCESSED = "processed"
    ERROR = "error"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: Any) -> OrderStatus:
        text = str(value or "").strip().lower()
        return next((m for m in cls if m.value == text), cls.UNKNOWN)


TERMINAL_ORDER_STATUSES = frozenset({OrderStatus.PROCESSED, OrderStatus.ERROR})


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


@dataclass(frozen=True)
class OrderProgress:
    """What one look at an order tells us."""

    order_id: str
    done: bool
    total: int
    processed: int
    pending: int
    is_merging: bool
    is_processing: bool
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.done and not self.failed

    def describe(self) -> str:
        if self.is_merging:
            return f"order {self.order_id}: grouping HDR brackets"
        if self.total == 0:
            return f"order {self.order_id}: no images yet"
        return (
            f"order {self.order_id}: {self.processed}/{self.total} processed, "
            f"{len(self.failed)} failed, {self.pending} pending"
        )

    def to_dict(self) -> dict[str, Any]:
        """A small JSON-able summary (for trigger events and XCom)."""
        return {
            "order_id": self.order_id,
            "done": self.done,
            "total": self.total,
            "processed": self.processed,
            "pending": self.pending,
            "failed": self.failed,
        }


def image_failure(image: dict[str, Any]) -> dict[str, Any]:
    """The fields worth reporting about a failed image."""
    return {
        "image_id": image.get("image_id"),
        "image_name": image.get("image_name"),
        "status": str(image.get("status")),
        "status_reason": image.get("status_reason"),
    }


def evaluate_order(order: dict[str, Any]) -> OrderProgress:
    """Decide whether an order is finished.

    Done means: not grouping brackets, not processing, at least one image, and every image in a
    terminal state. Unknown statuses count as still running, so a new API word can delay the
    end of a wait but never end it early.
    """
    images = order.get("images") or []
    statuses = [ImageStatus.parse(img.get("status")) for img in images]
    failed = [image_failure(img) for img, st in zip(images, statuses, strict=True) if st.is_failure]
    processed = sum(st is ImageStatus.PROCESSED for st in statuses)
    pending = sum(not st.is_terminal for st in statuses)
    is_merging = _truthy(order.get("is_merging"))
    is_processing = _truthy(order.get("is_processing"))
    done = bool(images) and not is_merging and not is_processing and pending == 0
    return OrderProgress(
        order_id=str(order.get("order_id", "")),
        done=done,
        total=len(images),
        processed=processed,
        pending=pending,
        is_merging=is_merging,
        is_processing=is_processing,
        failed=failed,
    )
