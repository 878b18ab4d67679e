"""``image_processed`` webhook scheduling and the delivery log."""

from __future__ import annotations

import heapq
from typing import Any

from autoenhance_sandbox.state.core import StateCore
from autoenhance_sandbox.state.model import (
    Order,
)


class WebhooksMixin(StateCore):
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
