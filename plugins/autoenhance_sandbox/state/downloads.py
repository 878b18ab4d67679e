"""Download checks, credit bookkeeping and the files behind asset tokens."""

from __future__ import annotations

from autoenhance_sandbox.errors import ApiError, S3Error, conflict
from autoenhance_sandbox.render import (
    FORMATS,
    RenderSpec,
    media_type_for,
)
from autoenhance_sandbox.schemas import DownloadParams
from autoenhance_sandbox.state.core import StateCore
from autoenhance_sandbox.state.model import (
    AssetRef,
    AssetSource,
    Image,
)


class DownloadsMixin(StateCore):
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
                    raise ApiError(  # status undocumented: out_of_credits_status option
                        self.config.out_of_credits_status, "Insufficient credits", {"credits_remaining": 0}
                    )
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
