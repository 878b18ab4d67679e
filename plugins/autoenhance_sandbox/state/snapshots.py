"""Statistics document and the persistence snapshot/restore of all state."""

from __future__ import annotations

import itertools
from typing import Any

from autoenhance_sandbox.state.core import StateCore
from autoenhance_sandbox.state.model import (
    Bracket,
    Image,
    Order,
    UploadSlot,
    _dump,
    _load_slot,
)
from autoenhance_sandbox.stats import Counters


class SnapshotsMixin(StateCore):
    def stats(self, now: float | None = None) -> dict[str, Any]:
        """The ``/_sandbox/stats`` document (counters plus values derived from live state)."""
        now = self.now() if now is None else now
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
                limits=self.limits_status(now),
                credits_remaining=self.credits_remaining,
                live_orders=len(live_orders),
                live_images=live_images,
                duplicate_image_names=duplicates,
            )
            return data

    def limits_status(self, now: float | None = None) -> dict[str, Any]:
        """The account limits in force and today's use (``GET /_sandbox/limits``)."""
        now = self.now() if now is None else now
        with self.lock:
            return {
                **self.config.limits(),
                "enhancements_today": self.limit_counters.used_today(now),
                "peak_requests_per_second": self.limit_counters.peak_per_second,
                "refusals": dict(self.counters.limit_refusals),
            }

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
