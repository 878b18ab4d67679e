"""Orders: create (client-chosen ids), read, list (cursor pages), rename, delete; OrderOut."""

from __future__ import annotations

import bisect
import uuid
from typing import Any

from autoenhance_sandbox.errors import ApiError, conflict, validation_error
from autoenhance_sandbox.state.core import StateCore
from autoenhance_sandbox.state.model import (
    DEFAULT_ORDER_NAME,
    Order,
    iso,
    order_status,
)


class OrdersMixin(StateCore):
    def _new_order(self, order_id: str, name: str | None, now: float) -> Order:
        order = Order(order_id, name or DEFAULT_ORDER_NAME, next(self._seq), now, now)
        self.orders[order_id] = order
        self.order_list.append((order.seq, order_id))
        return order

    def create_order(self, order_id: str | None, name: str | None, now: float) -> dict[str, Any]:
        with self.lock:
            existing = self.orders.get(order_id) if order_id else None
            if existing is not None and not existing.deleted:
                return self._duplicate_order(existing, now)
            order = self._new_order(order_id or str(uuid.uuid4()), name, now)
            self.counters.orders_created += 1
            self._changed()
            return self.order_out(order, now)

    def _duplicate_order(self, existing: Order, now: float) -> dict[str, Any]:
        """A client-chosen ``order_id`` that is live: undocumented, so the
        ``duplicate_order_id`` option picks the answer (409 / 422 / 400 / the existing order)."""
        mode = self.config.duplicate_order_id
        message = f"Order with order_id {existing.order_id} already exists"
        if mode == "existing":
            return self.order_out(existing, now)
        if mode == "validation":
            raise validation_error("json", "order_id", message)
        if mode == "bad_request":
            raise ApiError(400, message)
        raise conflict(message)

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
