"""Presigned-PUT targets and completed uploads (images start processing, brackets flip)."""

from __future__ import annotations

from pathlib import Path

from autoenhance_sandbox.errors import S3Error
from autoenhance_sandbox.render import (
    Probe,
    format_from_media_type,
)
from autoenhance_sandbox.state.core import StateCore
from autoenhance_sandbox.state.model import (
    Blob,
    Image,
    UploadSlot,
)
from autoenhance_sandbox.storage import upload_relative_path


class UploadsMixin(StateCore):
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
            if isinstance(target, Image) and target.refused == "duplicate_name":
                target.updated_at = now  # refused at registration: the bytes are kept, never processed
            elif isinstance(target, Image):
                target.final_status = "processed" if probe.decodable else "error"
                target.status_reason = None if probe.decodable else probe.error
                target.image_type = probe.image_format or format_from_media_type(
                    content_type or slot.content_type
                )
                target.updated_at = now
                self._start_processing(target, now)
            self.orders[target.order_id].updated_at = now
            self._changed()
