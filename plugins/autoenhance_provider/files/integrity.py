"""Whether a body is a whole image: its length, a checksum the host sends, or the format's own end."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Callable, Iterator
from typing import IO, Any

from autoenhance_provider.exceptions import (
    AutoenhanceDownloadError,
)
from autoenhance_provider.files.media import (
    SNIFF_BYTES,
    TIFF_MAGIC,
    looks_like_image,
    not_an_image_reason,
    sniff_matches,
)

#: Checksum headers a storage host may send for the whole body: header -> (algorithm, encoding).
CHECKSUM_HEADERS = {"x-amz-checksum-sha256": "sha256", "content-md5": "md5"}


def declared_checksum(headers: Any) -> tuple[str, str] | None:
    """``("sha256"|"md5", hex digest)`` from a response's checksum header, if it sends one."""
    for header, algorithm in CHECKSUM_HEADERS.items():
        value = headers.get(header)
        if not value:
            continue
        try:
            raw = base64.b64decode(str(value).strip(), validate=True)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == hashlib.new(algorithm).digest_size:
            return algorithm, raw.hex()
    return None


class ImageCheck:
    """Counts, hashes and inspects a body while it is copied; raises if it is not a whole image.

    Complete means: the declared length when there is one; else a checksum the server sent;
    else the format's own end — JPEG's EOI marker, PNG's IEND chunk, the RIFF size of a WebP,
    the structure of a TIFF (and of the TIFF-based RAW formats: every IFD and the data it points
    to lies within the file) or of an ISO-BMFF file (HEIC, AVIF, CR3: top-level boxes that end
    exactly at the end). A body whose end cannot be proven is refused.
    """

    TAIL_BYTES = 64

    def __init__(
        self,
        content_type: str | None,
        declared_length: int | None,
        checksum: tuple[str, str] | None = None,
    ) -> None:
        self.content_type = (content_type or "").split(";")[0].strip().lower()
        self.declared_length = declared_length
        self.checksum = checksum
        self.digest = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if checksum and checksum[0] == "md5" else None
        self.head = b""
        self.tail = b""

    def copy(self, chunks: Iterator[bytes], handle: IO[bytes]) -> int:
        if (
            self.content_type
            and not self.content_type.startswith("image/")
            and self.content_type
            not in (
                "application/octet-stream",
                "binary/octet-stream",
            )
        ):
            raise AutoenhanceDownloadError(f"the server sent {self.content_type!r}, not an image")
        written = 0
        for chunk in chunks:
            if not chunk:
                continue
            if len(self.head) < SNIFF_BYTES:
                self.head += chunk[: SNIFF_BYTES - len(self.head)]
                if len(self.head) >= SNIFF_BYTES and not looks_like_image(self.head):
                    raise AutoenhanceDownloadError(not_an_image_reason(self.head))
            self.digest.update(chunk)
            if self._md5 is not None:
                self._md5.update(chunk)
            self.tail = (self.tail + chunk)[-self.TAIL_BYTES :]
            handle.write(chunk)
            written += len(chunk)
        if written == 0:
            raise AutoenhanceDownloadError("the body was empty")
        if not looks_like_image(self.head):
            raise AutoenhanceDownloadError(not_an_image_reason(self.head))
        if self.declared_length is not None and written != self.declared_length:
            raise AutoenhanceDownloadError(f"got {written} of the {self.declared_length} bytes announced")
        return written

    def complete(self, written: int, read_at: Callable[[int, int], bytes] | None) -> None:
        """Raise unless the body is provably whole (see the class docstring); ``read_at(offset,
        size)`` reads back what was written, for the formats whose end is in their structure."""
        if self.declared_length is not None:
            return  # checked by copy()
        if self.checksum is not None:
            algorithm, expected = self.checksum
            got = (self._md5 if algorithm == "md5" else self.digest).hexdigest()  # type: ignore[union-attr]
            if got != expected:
                raise AutoenhanceDownloadError(
                    f"the body's {algorithm} does not match the one the server sent (cut short or changed)"
                )
            return
        problem = format_end_problem(self.head, self.tail, written, read_at)
        if problem:
            raise AutoenhanceDownloadError(f"{problem} (no Content-Length): the body was cut short")


def format_end_problem(
    head: bytes, tail: bytes, total: int, read_at: Callable[[int, int], bytes] | None
) -> str | None:
    """Why a body of ``total`` bytes is not a whole image by its format's own end, or None."""
    if sniff_matches("image/jpeg", head):
        return None if tail.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9") else "no JPEG end marker"
    if sniff_matches("image/png", head):
        return None if tail.endswith(_PNG_IEND) else "no PNG IEND chunk at the end"
    if sniff_matches("image/webp", head):
        riff = int.from_bytes(head[4:8], "little") + 8
        return None if total >= riff else f"{total} of the {riff} bytes its RIFF header announces"
    if head[:4] in TIFF_MAGIC or head[4:8] == b"ftyp":
        if read_at is None:
            return "the end of a TIFF/ISO-BMFF file cannot be checked here"
        check = _tiff_problem if head[:4] in TIFF_MAGIC else _bmff_problem
        try:
            return check(read_at, total)
        except (ValueError, IndexError, struct.error) as exc:
            return f"an unreadable structure ({exc})"
    return "a format whose end cannot be verified"


_PNG_IEND = b"IEND\xaeB`\x82"
#: TIFF field type -> bytes per value.
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
#: Tags holding data offsets and their byte counts (strips, tiles, the JPEG thumbnail).
_TIFF_DATA_TAGS = {273: 279, 324: 325, 513: 514}
#: Tags pointing to further IFDs (SubIFDs of RAW formats, EXIF, GPS).
_TIFF_IFD_TAGS = (330, 34665, 34853)
_MAX_IFDS = 256


def _tiff_problem(read_at: Callable[[int, int], bytes], total: int) -> str | None:
    """Every IFD, every value it points to and every strip/tile it names lie within the file."""
    order = "<" if read_at(0, 2) == b"II" else ">"
    magic, first = struct.unpack(order + "HI", read_at(2, 6))
    if magic != 42:
        return "a BigTIFF, whose end cannot be checked"
    queue: list[int] = [first]
    seen: set[int] = set()

    def values(field_type: int, count: int, raw: bytes) -> list[int]:
        size = _TIFF_TYPE_SIZES.get(field_type, 1) * count
        data = raw if size <= 4 else read_at(struct.unpack(order + "I", raw)[0], size)
        code = {3: "H", 4: "I", 13: "I"}.get(field_type)
        if code is None or len(data) < size:
            return []
        return list(struct.unpack(f"{order}{count}{code}", data[:size]))

    while queue:
        offset = queue.pop()
        if offset == 0 or offset in seen:
            continue
        if len(seen) >= _MAX_IFDS:
            return "too many IFDs"
        seen.add(offset)
        if offset + 2 > total:
            return "an IFD beyond the end"
        (count,) = struct.unpack(order + "H", read_at(offset, 2))
        if offset + 2 + 12 * count + 4 > total:
            return "an IFD cut short"
        table = read_at(offset + 2, 12 * count + 4)
        fields: dict[int, tuple[int, int, bytes]] = {}
        for i in range(count):
            tag, field_type, n = struct.unpack(order + "HHI", table[12 * i : 12 * i + 8])
            raw = table[12 * i + 8 : 12 * i + 12]
            size = _TIFF_TYPE_SIZES.get(field_type, 1) * n
            if size > 4 and struct.unpack(order + "I", raw)[0] + size > total:
                return f"tag {tag}'s data beyond the end"
            fields[tag] = (field_type, n, raw)
        for offsets_tag, counts_tag in _TIFF_DATA_TAGS.items():
            if offsets_tag in fields and counts_tag in fields:
                starts = values(*fields[offsets_tag])
                sizes = values(*fields[counts_tag])
                if any(s + n > total for s, n in zip(starts, sizes, strict=False)):
                    return "image data beyond the end"
        for tag in _TIFF_IFD_TAGS:
            if tag in fields:
                queue.extend(values(*fields[tag]))
        queue.append(struct.unpack(order + "I", table[-4:])[0])
    return None


def _bmff_problem(read_at: Callable[[int, int], bytes], total: int) -> str | None:
    """The top-level boxes of an ISO-BMFF file (HEIC, AVIF, CR3) end exactly at its end."""
    position = 0
    for _ in range(100_000):
        if position == total:
            return None
        header = read_at(position, 16)
        if len(header) < 8:
            return "a box header cut short"
        size = int.from_bytes(header[:4], "big")
        if size == 1:
            if len(header) < 16:
                return "a box header cut short"
            size = int.from_bytes(header[8:16], "big")
        elif size == 0:
            return None  # the last box runs to the end of the file
        if size < 8:
            return "a malformed box"
        position += size
        if position > total:
            return f"a box that needs {position} bytes, {total} received"
    return "too many boxes"
