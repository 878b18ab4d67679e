"""Pillow work: probing uploads, merging brackets and rendering downloads.

Pure functions on file paths (no sandbox state) so they can run in worker threads. Pillow is
imported lazily to keep the CLI's start-up fast.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

PREVIEW_MAX_WIDTH = 800
WATERMARK_TEXT = "AUTOENHANCE SANDBOX"
VERIFY_MAX_BYTES = 64 * 1024 * 1024  # full-file verify only below this; header parse always
#: download format -> (Pillow format, media type, file extension)
FORMATS: dict[str, tuple[str, str, str]] = {
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "png": ("PNG", "image/png", "png"),
    "webp": ("WEBP", "image/webp", "webp"),
}
DEFAULT_QUALITY = 85
#: Pillow format name (lower-case) -> media type, for uploads we did not render ourselves
UPLOAD_MEDIA_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "heif": "image/heic",
    "avif": "image/avif",
}


def media_type_for(image_format: str | None) -> str | None:
    """``"jpeg"`` -> ``"image/jpeg"`` (None if unknown)."""
    return UPLOAD_MEDIA_TYPES.get(image_format or "")


def format_from_media_type(content_type: str | None) -> str | None:
    """``"image/jpeg; q=1"`` -> ``"jpeg"``; non-image types -> None (the ``image_type`` field)."""
    if not content_type or not content_type.lower().startswith("image/"):
        return None
    subtype = content_type.split("/", 1)[1].split(";")[0].strip().lower()
    return {"jpg": "jpeg"}.get(subtype, subtype)


@dataclass(frozen=True)
class Probe:
    """What a cheap look at an uploaded file told us."""

    decodable: bool
    image_format: str | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None


def probe(path: str) -> Probe:
    """Identify an upload without decoding its pixels (header parse + format-level verify)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            fmt = (img.format or "").lower() or None
            width, height = img.size
            if os.path.getsize(path) <= VERIFY_MAX_BYTES:
                img.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        return Probe(False, error=f"The uploaded file is not a decodable image ({exc.__class__.__name__}).")
    except (OSError, SyntaxError, ValueError) as exc:
        return Probe(False, error=f"The uploaded file is a damaged image ({exc}).")
    return Probe(True, fmt, width, height)


@dataclass(frozen=True)
class RenderSpec:
    """Everything that determines the bytes of one rendered download."""

    enhance: bool
    preview: bool
    watermark: bool
    format: str
    quality: int | None
    max_width: int | None
    scale: float | None

    def cache_key(self) -> str:
        return (
            f"e{int(self.enhance)}p{int(self.preview)}w{int(self.watermark)}-{self.format}"
            f"-q{self.quality}-mw{self.max_width}-s{self.scale}"
        )


def target_size(width: int, height: int, spec: RenderSpec) -> tuple[int, int]:
    """Apply ``scale``, then the preview cap, then ``max_width`` (never upscales)."""
    new_w = float(width)
    if spec.scale is not None:
        new_w *= spec.scale
    if spec.preview:
        new_w = min(new_w, PREVIEW_MAX_WIDTH)
    if spec.max_width is not None:
        new_w = min(new_w, spec.max_width)
    out_w = max(1, round(new_w))
    out_h = max(1, round(height * out_w / width))
    return out_w, out_h


def render(source: str, destination: str, spec: RenderSpec) -> None:
    """Decode ``source``, resize, optionally enhance and watermark, encode to ``destination``."""
    from PIL import Image

    with Image.open(source) as img:
        size = target_size(img.width, img.height, spec)
        if img.format == "JPEG" and size != img.size:
            img.draft("RGB", size)  # let libjpeg decode at a reduced scale: much faster
        frame = img.convert("RGB")
    if frame.size != size:
        frame = frame.resize(size, Image.Resampling.LANCZOS)
    if spec.enhance:
        frame = enhance(frame)
    if spec.watermark:
        frame = watermark(frame)
    _save(frame, destination, spec.format, spec.quality)


def enhance(img: PILImage) -> PILImage:
    """A visible, deterministic "enhancement": auto-contrast, richer colour, a little sharpening."""
    from PIL import ImageEnhance, ImageFilter, ImageOps

    out = ImageOps.autocontrast(img, cutoff=1)
    out = ImageEnhance.Color(out).enhance(1.3)
    out = ImageEnhance.Brightness(out).enhance(1.04)
    return out.filter(ImageFilter.UnsharpMask(radius=2, percent=70, threshold=2))


def watermark(img: PILImage) -> PILImage:
    """Stamp a translucent "AUTOENHANCE SANDBOX" across the middle of the image."""
    from PIL import Image, ImageDraw, ImageFont

    base = img.convert("RGBA")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    size = max(10, base.width // 14)
    try:
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow without FreeType
        font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), WATERMARK_TEXT, font=font, stroke_width=2)
    x = (base.width - (right - left)) // 2 - left
    y = (base.height - (bottom - top)) // 2 - top
    draw.text(
        (x, y),
        WATERMARK_TEXT,
        font=font,
        fill=(255, 255, 255, 170),
        stroke_width=2,
        stroke_fill=(0, 0, 0, 170),
    )
    band = max(2, base.height // 60)
    draw.rectangle((0, y - band * 2, base.width, y - band), fill=(255, 255, 255, 110))
    return Image.alpha_composite(base, overlay).convert("RGB")


def merge_average(sources: list[str], destination: str) -> None:
    """Merge HDR brackets by averaging them (running blend), resized to the first bracket."""
    from PIL import Image

    merged: PILImage | None = None
    for count, path in enumerate(sources, start=1):
        with Image.open(path) as img:
            frame = img.convert("RGB")
        if merged is None:
            merged = frame
            continue
        if frame.size != merged.size:
            frame = frame.resize(merged.size, Image.Resampling.BILINEAR)
        merged = Image.blend(merged, frame, 1.0 / count)
    if merged is None:
        raise ValueError("no brackets to merge")
    _save(merged, destination, "jpeg", 92)


def _save(img: PILImage, destination: str, fmt: str, quality: int | None) -> None:
    pil_format = FORMATS[fmt][0]
    options: dict[str, object] = {}
    if fmt == "jpeg":
        options = {"quality": quality or DEFAULT_QUALITY}
    elif fmt == "webp":
        options = {"quality": quality or DEFAULT_QUALITY, "method": 2}
    else:
        options = {"compress_level": 1}
    img.save(destination, pil_format, **options)


def sample_image_bytes(width: int = 96, height: int = 64, fmt: str = "jpeg", shade: int = 0) -> bytes:
    """A small, dull gradient photo stand-in (used for seeded orders)."""
    from PIL import Image

    img = Image.new("RGB", (width, height))
    img.putdata(
        [
            (100 + (x * 40) // width + shade % 20, 110 + (y * 30) // height, 120 - (x * 20) // width)
            for y in range(height)
            for x in range(width)
        ]
    )
    buffer = io.BytesIO()
    img.save(buffer, FORMATS[fmt][0])
    return buffer.getvalue()
