"""Small real image files for uploads and downloads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image


def jpeg_bytes(width: int = 64, height: int = 48, level: int = 110, quality: int = 85) -> bytes:
    """A small real JPEG (FF D8 FF … FF D9), a soft pattern around the brightness ``level``.

    Other levels give other bytes and a brighter or darker picture (what bracket tests tell apart).
    """
    img = Image.new("RGB", (width, height))
    img.putdata(
        [
            ((level + x % 30) % 256, (level + y % 20) % 256, (level + 10) % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


_PIL_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}


def write_image(
    path: Any, size: tuple[int, int] = (16, 12), color: tuple[int, int, int] = (200, 120, 40)
) -> Path:
    """A small real image whose format matches the file's extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=_PIL_FORMATS[path.suffix.lower()])
    return path
