"""Bulk seeding of processing orders for benchmarks at scale."""

from __future__ import annotations

import uuid

from autoenhance_sandbox.render import (
    sample_image_bytes,
)
from autoenhance_sandbox.schemas import IMAGE_DEFAULTS
from autoenhance_sandbox.state.core import StateCore
from autoenhance_sandbox.state.model import (
    SEED_BLOB,
    Blob,
    Image,
    UploadSlot,
)


class SeedingMixin(StateCore):
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
