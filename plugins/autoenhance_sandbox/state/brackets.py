"""Brackets: register, list, and ``/process``/``/merge`` grouping into merged images."""

from __future__ import annotations

import re
import uuid
from typing import Any

from autoenhance_sandbox.errors import ApiError, conflict, validation_error
from autoenhance_sandbox.schemas import IMAGE_DEFAULTS, ProcessRequest
from autoenhance_sandbox.state.core import StateCore
from autoenhance_sandbox.state.model import (
    Bracket,
    Image,
    Order,
    UploadSlot,
)
from autoenhance_sandbox.storage import BRACKET_CONTENT_TYPE

AUTO_GROUP_FALLBACK = 3
_SUFFIX_RE = re.compile(
    r"[\s_\-.]*(?:\(\d{1,2}\)|(?<![0-9])\d{1,2}|ev[+-]?\d+(?:[.,]\d+)?|[+-]?\d+(?:[.,]\d+)?ev|bracket\d{1,2})$",
    re.IGNORECASE,
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


class BracketsMixin(StateCore):
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
