"""Helpers shared by the sandbox tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import io
from typing import Any

import requests
from PIL import Image, ImageChops, ImageStat

from autoenhance_sandbox.testing import SandboxServer
from support.timing import wait_until


def image_bytes(width: int = 320, height: int = 240, fmt: str = "JPEG", level: int = 128) -> bytes:
    """A dull, low-contrast gradient photo (so enhancement has something to improve)."""
    img = Image.new("RGB", (width, height))
    img.putdata(
        [
            (level - 10 + (x * 20) // width, level - 5 + (y * 15) // height, level + (x * 10) // width)
            for y in range(height)
            for x in range(width)
        ]
    )
    buffer = io.BytesIO()
    img.save(buffer, fmt)
    return buffer.getvalue()


def solid_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def spread(img: Image.Image) -> float:
    """Standard deviation of the grey levels: a crude contrast measure."""
    return ImageStat.Stat(img.convert("L")).stddev[0]


def pixel_difference(a: Image.Image, b: Image.Image) -> float:
    """Sum of absolute grey-level differences between two same-sized images."""
    return ImageStat.Stat(ImageChops.difference(a.convert("L"), b.convert("L"))).sum[0]


def keyed(server: SandboxServer, **extra: str) -> dict[str, str]:
    return {"x-api-key": server.api_key, **extra}


def create_order(http: requests.Session, server: SandboxServer, **body: Any) -> dict[str, Any]:
    response = http.post(server.url("/v3/orders"), json=body, headers=keyed(server))
    assert response.status_code == 200, response.text
    return response.json()


def create_image(
    http: requests.Session, server: SandboxServer, name: str = "photo.jpg", **body: Any
) -> dict[str, Any]:
    response = http.post(server.url("/v3/images"), json={"image_name": name, **body}, headers=keyed(server))
    assert response.status_code == 200, response.text
    return response.json()


def put_bytes(http: requests.Session, url: str, data: bytes, content_type: str | None) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return http.put(url, data=data, headers=headers)


def uploaded_image(
    http: requests.Session,
    server: SandboxServer,
    name: str = "photo.jpg",
    data: bytes | None = None,
    content_type: str = "image/jpeg",
    **body: Any,
) -> dict[str, Any]:
    """Create an image and upload bytes to it; returns the create response."""
    created = create_image(http, server, name, contentType=content_type, **body)
    response = put_bytes(
        http, created["upload_url"], data if data is not None else image_bytes(), content_type
    )
    assert response.status_code == 200, response.text
    return created


def get_image(http: requests.Session, server: SandboxServer, image_id: str) -> dict[str, Any]:
    response = http.get(server.url(f"/v3/images/{image_id}"))
    assert response.status_code == 200, response.text
    return response.json()


def wait_image_status(
    http: requests.Session, server: SandboxServer, image_id: str, status: str, timeout: float = 5.0
) -> dict[str, Any]:
    return wait_until(
        lambda: (image := get_image(http, server, image_id))["status"] == status and image, timeout=timeout
    )


def processed_image(http: requests.Session, server: SandboxServer, **kwargs: Any) -> dict[str, Any]:
    created = uploaded_image(http, server, **kwargs)
    return wait_image_status(http, server, created["image_id"], "processed")


def download(
    http: requests.Session,
    sandbox: SandboxServer,
    image_id: str,
    kind: str,
    key: bool = True,
    **params: object,
) -> requests.Response:
    headers = keyed(sandbox) if key else {}
    return http.get(
        sandbox.url(f"/v3/images/{image_id}/{kind}"), params=params, headers=headers, allow_redirects=False
    )
