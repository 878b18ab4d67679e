"""Helpers for the contract tests (plain functions)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import TypeVar

from PIL import Image

T = TypeVar("T")


def jpeg_bytes(width: int = 200, height: int = 150, level: int = 100) -> bytes:
    img = Image.new("RGB", (width, height))
    img.putdata([(level + x % 40, level + y % 30, level + 20) for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def wait_until(check: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll ``check`` (bounded) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(0.02)
