"""Plain helpers shared by the hook unit tests (constants mirror tests/unit/conftest.py)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAKE_KEY = "ae-test-KEY-4f9c2d71b8"
BASE_URL = "https://api.autoenhance.test"
UPLOAD_URL = (
    "https://bucket.s3.amazonaws.test/uploads/img.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Signature=5ec12e7deadbeefcafe0123456789abcdef0123456789abcdef0123456789ab"
)
SIGNATURE = "5ec12e7deadbeefcafe0123456789abcdef0123456789abcdef0123456789ab"


def api(path: str) -> str:
    return f"{BASE_URL}{path}"


def path_of(request: Any) -> str:
    """The request path with its case (requests-mock lower-cases ``request.path``)."""
    return urlsplit(request.url).path


def query_of(request: Any) -> dict[str, list[str]]:
    """The query string, case preserved (requests-mock lower-cases ``request.qs``)."""
    return parse_qs(urlsplit(request.url).query, keep_blank_values=True)


def body_of(request: Any) -> Any:
    body = request.body
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode()
    return json.loads(body)


def order(order_id: str = "o-1", images: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    data = {
        "order_id": order_id,
        "name": "Listing 1",
        "status": "processing",
        "is_processing": False,
        "is_merging": False,
        "is_deleted": False,
        "images": images or [],
    }
    data.update(fields)
    return data


def image(image_id: str, status: str = "processed", name: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"image_id": image_id, "image_name": name or f"{image_id}.jpg", "status": status, **fields}


def validation_error(location: str, field: str, message: str) -> dict[str, Any]:
    return {"message": "Validation error", "detail": {location: {field: [message]}}}


class FakeClock:
    """A clock that moves only when told: call it (a stand-in for ``time.monotonic``), or put it
    in place of a module's ``time``, where ``sleep`` records the seconds and advances it at once."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
