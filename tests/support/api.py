"""The fake Autoenhance API of the unit tests: its address, a key, and the JSON it answers with."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAKE_KEY = "ae-test-KEY-4f9c2d71b8"
BASE_URL = "https://api.autoenhance.test"
APP_URL = "https://app.autoenhance.ai"
STORAGE_HOST = "https://bucket.storage.test"
ASSET_HOST = "https://assets.autoenhance-cdn.test"
ORDER_ID = "7b0c6f0e-0d1e-4d0c-9a4f-2f1e8b9c0a11"
SIGNATURE = "5ec12e7deadbeefcafe0123456789abcdef0123456789abcdef0123456789ab"
UPLOAD_URL = (
    "https://bucket.s3.amazonaws.test/uploads/img.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    f"&X-Amz-Signature={SIGNATURE}"
)


def api(path: str) -> str:
    return f"{BASE_URL}{path}"


def _url(request_or_url: Any) -> str:
    return str(getattr(request_or_url, "url", request_or_url))


def path_of(request_or_url: Any) -> str:
    """The path of a URL or of a request's URL, with its case (requests-mock lower-cases ``request.path``)."""
    return urlsplit(_url(request_or_url)).path


def query_of(request_or_url: Any) -> dict[str, list[str]]:
    """The query string of a URL or of a request's URL, case preserved (unlike ``request.qs``)."""
    return parse_qs(urlsplit(_url(request_or_url)).query, keep_blank_values=True)


def body_of(request: Any) -> Any:
    body = request.body
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode()
    return json.loads(body)


# ------------------------------------------------------------------------------ API payloads
def image(image_id: str, status: str = "processed", name: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"image_id": image_id, "image_name": name or f"{image_id}.jpg", "status": status, **fields}


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


def processing_order(order_id: str = ORDER_ID) -> dict[str, Any]:
    return order(
        order_id,
        [image("img-1", "processed", "kitchen.jpg"), image("img-2", "processing", "garden.jpg")],
        is_processing=True,
    )


def done_order(order_id: str = ORDER_ID) -> dict[str, Any]:
    return order(
        order_id,
        [image("img-1", "processed", "kitchen.jpg"), image("img-2", "processed", "garden.jpg")],
        status="processed",
    )


def failed_order(order_id: str = ORDER_ID) -> dict[str, Any]:
    return order(
        order_id,
        [
            image("img-1", "processed", "kitchen.jpg"),
            image("img-2", "error", "garden.jpg", status_reason="Duplicate file name limit reached"),
        ],
        status="error",
    )


def validation_error(location: str, field: str, message: str) -> dict[str, Any]:
    return {"message": "Validation error", "detail": {location: {field: [message]}}}


# ------------------------------------------------------------------------------ scripted answers
@dataclass(frozen=True)
class Status:
    """A script step answering with an HTTP error status."""

    code: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


#: A script step where the connection cannot be established.
CONNECT_ERROR = "connect-error"
#: A script step where the request is sent but no answer arrives within the read timeout.
READ_TIMEOUT = "read-timeout"


class OrderScript:
    """``GET /v3/orders/<id>`` answered from a script, whichever hook asks (sync or async).

    Each step is an order dict (200), a :class:`Status`, or :data:`CONNECT_ERROR`. Once the
    script is down to its last step, that step repeats forever.
    """

    def __init__(self, *steps: Any, order_id: str = ORDER_ID) -> None:
        self.steps = list(steps)
        self.order_id = order_id
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return api(f"/v3/orders/{self.order_id}")

    def next_step(self, method: str, url: str, headers: dict[str, str]) -> Any:
        with self._lock:
            self.requests.append((method, url, headers))
            return self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]

    def install_sync(self, requests_mock: Any) -> None:
        """Answer the sync hook (``requests``) through the ``requests_mock`` fixture."""
        import requests

        def callback(request: Any, context: Any) -> str:
            step = self.next_step(request.method, request.url, dict(request.headers))
            if step == CONNECT_ERROR:
                raise requests.exceptions.ConnectionError("connection refused")
            if step == READ_TIMEOUT:
                raise requests.exceptions.ReadTimeout("read timed out")
            if isinstance(step, Status):
                context.status_code = step.code
                context.headers.update(step.headers)
                return json.dumps(step.body or {"message": "error", "detail": {}})
            context.status_code = 200
            context.headers["Content-Type"] = "application/json"
            return json.dumps(step)

        requests_mock.get(self.url, text=callback)

    def handler(self, request: Any) -> Any:
        """Answer the async hook (``aiohttp``): a handler for the ``aio_api`` fixture."""
        from support.aio import Reply, read_timeout, refused

        step = self.next_step(request.method, str(request.url), dict(request.headers))
        if step == CONNECT_ERROR:
            raise refused(request.url)
        if step == READ_TIMEOUT:
            raise read_timeout()
        if isinstance(step, Status):
            return Reply(step.code, step.body or {"message": "error", "detail": {}}, step.headers)
        if str(request.url) != self.url:
            return Reply(404, {"message": "Not Found", "detail": {}})
        return Reply(200, step)

    @property
    def count(self) -> int:
        return len(self.requests)
