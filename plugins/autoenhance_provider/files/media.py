"""Media types Autoenhance takes: extensions, MIME types, magic bytes, safe file names."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

#: Extension -> MIME type, as the official examples map them (autoenhance-api.md §11).
CONTENT_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".heic": "image/heic",
    ".heif": "image/heic",
    ".avif": "image/avif",
    ".dng": "image/x-adobe-dng",
    ".cr2": "image/x-canon-cr2",
    ".cr3": "image/x-canon-cr3",
    ".nef": "image/x-nikon-nef",
    ".nrw": "image/x-nikon-nrw",
    ".arw": "image/x-sony-arw",
    ".sr2": "image/x-sony-sr2",
    ".srf": "image/x-sony-srf",
    ".raf": "image/x-fuji-raf",
}
SUPPORTED_EXTENSIONS = tuple(sorted(CONTENT_TYPES))
BRACKET_CONTENT_TYPE = "application/octet-stream"

#: How many leading bytes :func:`sniff_matches` needs.
SNIFF_BYTES = 32

TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_ISO_BMFF_BRANDS = {
    "image/heic": {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"},
    "image/avif": {b"avif", b"avis", b"mif1", b"msf1"},
    "image/x-canon-cr3": {b"crx "},
}


def content_type_for(name: str) -> str | None:
    """The MIME type for a file name, or None if Autoenhance does not take that type."""
    return CONTENT_TYPES.get(PurePosixPath(name).suffix.lower())


def sniff_matches(content_type: str, head: bytes) -> bool:
    """Whether a file's first bytes look like ``content_type`` (catches renamed or broken files)."""
    if content_type == "image/jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if content_type == "image/png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if content_type == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if content_type in _ISO_BMFF_BRANDS:
        return head[4:8] == b"ftyp" and head[8:12] in _ISO_BMFF_BRANDS[content_type]
    if content_type == "image/x-fuji-raf":
        return head.startswith(b"FUJIFILMCCD-RAW")
    # TIFF and the TIFF-based RAW formats (DNG, CR2, NEF, NRW, ARW, SR2, SRF).
    return head[:4] in TIFF_MAGIC


_UNSAFE = re.compile(r"[^\w.\- ()+,@=]")
MAX_NAME_CHARS = 150
#: File systems limit a name to 255 *bytes*: 150 characters of CJK text are 450 bytes in UTF-8.
#: The stem keeps room for a de-duplication suffix, the extension and the ``.part`` temp name.
MAX_NAME_BYTES = 150


def safe_stem(image_name: str, fallback: str) -> str:
    """A file-name stem derived from an image name that cannot leave the destination folder.

    Drops any directory part (``../../etc/passwd`` -> ``passwd``), control characters and NUL,
    replaces characters that are unsafe on common file systems, and bounds the length (in
    characters and in UTF-8 bytes).
    """
    text = unicodedata.normalize("NFC", str(image_name or "")).replace("\\", "/")
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = text.rsplit("/", 1)[-1]
    stem = PurePosixPath(text).stem if PurePosixPath(text).suffix.lower() in CONTENT_TYPES else text
    stem = _UNSAFE.sub("_", stem).strip(" .")
    stem = _utf8_prefix(stem[:MAX_NAME_CHARS], MAX_NAME_BYTES).rstrip(" .")
    return stem or _utf8_prefix(_UNSAFE.sub("_", fallback)[:MAX_NAME_CHARS], MAX_NAME_BYTES) or "image"


def _utf8_prefix(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_bytes`` long in UTF-8."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def extension_for(kind: str, fmt: str | None, image_name: str) -> str:
    """The extension a downloaded file gets.

    The requested format's; else, for an original, the uploaded file's own (the original comes
    back as it was uploaded: a TIFF stays ``.tiff``, a Canon RAW ``.cr2``); else ``.jpg``, what
    the API renders enhanced images and previews as.
    """
    if fmt:
        return ".jpg" if fmt in ("jpeg", "jpg") else f".{fmt}"
    if kind == "original":
        suffix = PurePosixPath(str(image_name)).suffix.lower()
        if suffix in CONTENT_TYPES:
            return ".jpg" if suffix == ".jpeg" else suffix
    return ".jpg"


def looks_like_image(head: bytes) -> bool:
    """Whether ``head`` starts like a file of a format Autoenhance reads or renders."""
    return any(sniff_matches(ct, head) for ct in set(CONTENT_TYPES.values()))


def not_an_image_reason(head: bytes) -> str:
    start = head[:16].decode("ascii", "replace").strip()
    return f"the body is not an image (it starts with {start!r})"
