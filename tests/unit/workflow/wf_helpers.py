"""Plain helpers for the workflow tests (operators, sensor, trigger): fake API, fake task instance."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAKE_KEY = "ae-test-KEY-wf-7c1e5a90d3"
BASE_URL = "https://api.autoenhance.test"
APP_URL = "https://app.autoenhance.ai"
STORAGE_HOST = "https://bucket.storage.test"
ASSET_HOST = "https://assets.autoenhance-cdn.test"
ORDER_ID = "7b0c6f0e-0d1e-4d0c-9a4f-2f1e8b9c0a11"


def api(path: str) -> str:
    return f"{BASE_URL}{path}"


def path_of(url: str) -> str:
    return urlsplit(url).path


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


# ------------------------------------------------------------------------------ API payloads
def image(image_id: str, status: str = "processed", name: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"image_id": image_id, "image_name": name or f"{image_id}.jpg", "status": status, **fields}


def order(
    images: list[dict[str, Any]] | None = None, order_id: str = ORDER_ID, **fields: Any
) -> dict[str, Any]:
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
        [image("img-1", "processed", "kitchen.jpg"), image("img-2", "processing", "garden.jpg")],
        order_id,
        is_processing=True,
    )


def done_order(order_id: str = ORDER_ID) -> dict[str, Any]:
    return order(
        [image("img-1", "processed", "kitchen.jpg"), image("img-2", "processed", "garden.jpg")],
        order_id,
        status="processed",
    )


def failed_order(order_id: str = ORDER_ID) -> dict[str, Any]:
    return order(
        [
            image("img-1", "processed", "kitchen.jpg"),
            image("img-2", "error", "garden.jpg", status_reason="Duplicate file name limit reached"),
        ],
        order_id,
        status="error",
    )


@dataclass(frozen=True)
class Status:
    """A script step answering with an HTTP error status."""

    code: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


#: A script step where the connection cannot be established.
CONNECT_ERROR = "connect-error"


class OrderScript:
    """``GET /v3/orders/<id>`` answered from a script, whichever client asks (requests or httpx).

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

    # requests-mock
    def install_sync(self, requests_mock: Any) -> None:
        import requests

        def callback(request: Any, context: Any) -> str:
            step = self.next_step(request.method, request.url, dict(request.headers))
            if step == CONNECT_ERROR:
                raise requests.exceptions.ConnectionError("connection refused")
            if isinstance(step, Status):
                context.status_code = step.code
                context.headers.update(step.headers)
                return json.dumps(step.body or {"message": "error", "detail": {}})
            context.status_code = 200
            context.headers["Content-Type"] = "application/json"
            return json.dumps(step)

        requests_mock.get(self.url, text=callback)

    # the async hook (conftest.httpx_handler)
    def handler(self, request: Any) -> Any:
        import httpx

        step = self.next_step(request.method, str(request.url), dict(request.headers))
        if step == CONNECT_ERROR:
            raise httpx.ConnectError("connection refused", request=request)
        if isinstance(step, Status):
            return httpx.Response(
                step.code, json=step.body or {"message": "error", "detail": {}}, headers=step.headers
            )
        if str(request.url) != self.url:
            return httpx.Response(404, json={"message": "Not Found", "detail": {}})
        return httpx.Response(200, json=step)

    @property
    def count(self) -> int:
        return len(self.requests)


# ------------------------------------------------------------------------------ task context
class FakeTI:
    """Just enough of a RuntimeTaskInstance for execute(): identity, XCom push, reschedule date."""

    def __init__(
        self,
        *,
        dag_id: str = "wf_dag",
        run_id: str = "manual__2026-01-01T00:00:00",
        task_id: str = "wf_task",
        map_index: int = -1,
        try_number: int = 1,
    ) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        self.map_index = map_index
        self.try_number = try_number
        self.xcoms: dict[str, Any] = {}
        self.pushes: list[tuple[str, Any]] = []
        self.first_reschedule_date: Any = None

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value
        self.pushes.append((key, value))

    def get_first_reschedule_date(self, context: Any) -> Any:
        return self.first_reschedule_date


def make_context(ti: FakeTI | None = None) -> dict[str, Any]:
    # Airflow's own accessor: it keys events by asset identity (an Asset is not hashable on 3.0).
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = ti or FakeTI()
    return {"ti": ti, "task_instance": ti, "run_id": ti.run_id, "outlet_events": OutletEventAccessors()}


# ------------------------------------------------------------------------------ image files
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
) -> Any:
    """A small real image whose format matches the file's extension."""
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=_PIL_FORMATS[path.suffix.lower()])
    return path


def rendered(events: list[dict[str, Any]], level: str | None = None) -> list[str]:
    """Messages of structlog events captured with ``structlog.testing.capture_logs``."""
    out = []
    for event in events:
        if level and event.get("log_level") != level:
            continue
        text = str(event.get("event"))
        args = event.get("positional_args")
        if args:
            with contextlib.suppress(TypeError):
                text = text % tuple(args)
        out.append(text)
    return out


Handler = Callable[[Any], Any]
