"""Images: register (implicit orders), read, reprocess, delete, report; ImageOut."""

from __future__ import annotations

import re
import uuid
from typing import Any

from autoenhance_sandbox.errors import ApiError, conflict
from autoenhance_sandbox.limits import DUPLICATE_NAME_MESSAGE
from autoenhance_sandbox.schemas import IMAGE_DEFAULTS, ImageRequest
from autoenhance_sandbox.state.core import StateCore
from autoenhance_sandbox.state.model import (
    Image,
    Order,
    UploadSlot,
    iso,
)


class ImagesMixin(StateCore):
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
            assert request.image_name is not None
            refused_name = self._check_duplicate_name(request.image_name, now)
            order = self._order_for_create(request.order_id, now)
            order.updated_at = now
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
            if refused_name is not None:  # duplicate_name_reading=error: the image is refused
                image.final_status, image.status_reason = "error", refused_name
                image.refused = "duplicate_name"
                image.started_at = image.finish_at = now
            self.images[image_id] = image
            self.uploads[key] = ("image", image_id)
            order.image_ids.append(image_id)
            self.counters.images_created += 1
            self._changed()
            return self.image_out(image, now), key

    def _check_duplicate_name(self, name: str, now: float) -> str | None:
        """Count a registration of ``name`` this hour; beyond ``duplicate_name_limit`` answer 429
        (``duplicate_name_reading=429``) or return the reason the new image is refused with."""
        limit = self.config.duplicate_name_limit
        if limit is None or self.limit_counters.register_name(name, limit, now):
            return None
        self.count_refusal("duplicate_name")
        message = DUPLICATE_NAME_MESSAGE.format(name=name, limit=limit)
        if self.config.duplicate_name_reading == "429":
            raise ApiError(429, message, headers=self.retry_after(self.seconds_to_next_hour(now)))
        return message

    def get_image(self, image_id: str, now: float) -> dict[str, Any]:
        with self.lock:
            return self.image_out(self._live_image(image_id, now), now)

    def reprocess_image(self, image_id: str, request: ImageRequest, now: float) -> dict[str, Any]:
        """Merge new settings over the old ones and, if the bytes exist, process again."""
        with self.lock:
            image = self._live_image(image_id, now)
            if image.refused == "daily_limit":
                if self.config.refused_image_reprocess == "reregister":
                    raise conflict(
                        f"Image {image_id} was refused by the daily enhancement limit and cannot be "
                        "processed again: upload the file again as a new image"
                    )
                image.final_status, image.status_reason, image.refused = "processed", None, None
            image.settings = {**image.settings, **request.settings}
            if request.image_name:
                image.image_name = request.image_name
            if image.has_bytes():
                self._start_processing(image, now)
            image.updated_at = now
            self._changed()
            return self.image_out(image, now)

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
