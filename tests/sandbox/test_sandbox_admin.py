"""Admin endpoints, seeding at scale, persistence across restarts, webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from autoenhance_sandbox_helpers import (
    create_image,
    create_order,
    image_bytes,
    keyed,
    open_image,
    processed_image,
    uploaded_image,
)

from autoenhance_sandbox.testing import SandboxServer, run_sandbox
from support.timing import wait_until

pytestmark = pytest.mark.integration

STATS_KEYS = {
    "requests", "orders_created", "images_created", "brackets_created", "uploads", "downloads", "purchases",
    "purchases_per_image", "credits_remaining", "live_orders", "live_images", "duplicate_image_names",
    "leaked_api_key", "faults_injected",
}  # fmt: skip


def test_health_stats_and_reset(http: requests.Session, sandbox: SandboxServer) -> None:
    assert http.get(sandbox.url("/_sandbox/health")).json() == {"status": "ok"}
    processed_image(http, sandbox)
    over_http = http.get(sandbox.url("/_sandbox/stats/")).json()
    assert over_http.keys() >= STATS_KEYS
    assert over_http == sandbox.stats()
    assert over_http["downloads"] == {"original": 0, "enhanced": 0, "preview": 0, "watermark": 0}
    assert over_http["faults_injected"] == {"429": 0, "500": 0, "502": 0, "503": 0, "drop": 0, "slow": 0}
    assert over_http["leaked_api_key"] == {"storage": 0, "assets": 0}
    assert (over_http["live_orders"], over_http["live_images"], over_http["uploads"]) == (1, 1, 1)
    assert json.loads(json.dumps(over_http)) == over_http
    sandbox.set_faults(0.0, endpoints={"GET /v3/orders": 1.0}, kinds=["500"])
    assert http.post(sandbox.url("/_sandbox/reset")).status_code == 200
    stats = sandbox.stats()
    assert (stats["live_orders"], stats["orders_created"], stats["requests"]) == (0, 0, {})
    assert http.get(sandbox.url("/v3/orders"), headers=keyed(sandbox)).status_code == 500  # faults kept


def test_seed_ten_thousand_orders(http: requests.Session, sandbox: SandboxServer) -> None:
    response = http.post(
        sandbox.url("/_sandbox/seed"),
        json={"orders": 10_000, "images_per_order": 1, "finish_after_seconds": 3600, "error_fraction": 0.1},
    )
    assert response.status_code == 200
    order_ids = response.json()["order_ids"]
    assert len(order_ids) == len(set(order_ids)) == 10_000
    order = http.get(sandbox.url(f"/v3/orders/{order_ids[0]}")).json()
    assert (order["status"], order["is_processing"], order["total_images"]) == ("processing", True, 1)
    advanced = http.post(sandbox.url("/_sandbox/clock"), json={"advance_seconds": 3600})
    assert advanced.json() == {"offset_seconds": 3600.0}

    def statuses() -> list[str]:
        return [http.get(sandbox.url(f"/v3/orders/{oid}")).json()["status"] for oid in order_ids[:50]]

    finished = statuses()  # the clock moved past finish_after_seconds: no waiting
    assert set(finished) == {"processed", "error"}
    assert 1 <= finished.count("error") <= 10
    image_id = order["images"][0]["image_id"]
    assert (
        http.get(sandbox.url(f"/v3/images/{image_id}")).json()["status"] == "processed"
    )  # 1st: never failed
    asset = http.get(
        sandbox.url(f"/v3/images/{image_id}/enhanced"), headers=keyed(sandbox), allow_redirects=False
    )
    assert open_image(http.get(asset.headers["Location"]).content).format == "JPEG"
    stats = sandbox.stats()
    assert (stats["live_orders"], stats["live_images"], stats["seeded_orders"]) == (10_000, 10_000, 10_000)
    listed = http.get(sandbox.url("/v3/orders"), headers=keyed(sandbox)).json()
    assert listed["orders"][0]["order_id"] == order_ids[-1]


def test_seed_validation(http: requests.Session, sandbox: SandboxServer) -> None:
    response = http.post(sandbox.url("/_sandbox/seed"), json={"orders": -1, "error_fraction": 2})
    assert response.status_code == 422
    assert set(response.json()["detail"]["json"]) == {"orders", "error_fraction"}


def moved(url: str, server: SandboxServer) -> str:
    """The same URL on the restarted server's port (a real restart would keep the port)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{urlsplit(server.base_url).port}"))


def test_state_and_blobs_survive_a_restart(http: requests.Session, tmp_path: Path) -> None:
    data_dir = tmp_path / "sandbox-data"
    payload = image_bytes(200, 100)
    with run_sandbox(data_dir=str(data_dir), processing_seconds=0.05, credits=5) as server:
        order = create_order(http, server, order_id="persist-me", name="kept")
        image = uploaded_image(http, server, "kept.jpg", data=payload, order_id=order["order_id"])
        waiting = create_image(
            http, server, "later.jpg", order_id=order["order_id"], contentType="image/jpeg"
        )
        wait_until(
            lambda: http.get(server.url(f"/v3/images/{image['image_id']}")).json()["status"] == "processed"
        )
        bought = http.get(
            server.url(f"/v3/images/{image['image_id']}/enhanced"),
            params={"preview": "false"},
            headers=keyed(server),
            allow_redirects=False,
        )
        asset_url = bought.headers["Location"]
    assert (data_dir / "state.json").exists()
    with run_sandbox(data_dir=str(data_dir), processing_seconds=0.05, credits=5) as server:
        restored = http.get(server.url("/v3/orders/persist-me")).json()
        assert restored["name"] == "kept"
        assert [i["image_name"] for i in restored["images"]] == ["kept.jpg", "later.jpg"]
        assert restored["images"][0]["status"] == "processed"
        assert restored["images"][0]["downloaded"] is True
        assert server.stats()["credits_remaining"] == 4
        original = http.get(server.url(f"/v3/images/{image['image_id']}/original"))
        assert original.content == payload
        assert http.get(moved(asset_url, server)).status_code == 200  # old asset links still work
        put = http.put(
            moved(waiting["upload_url"], server), data=payload, headers={"Content-Type": "image/jpeg"}
        )
        assert put.status_code == 200  # old upload URLs still work
        assert create_order(http, server)["order_id"] != "persist-me"


class _Receiver:
    """A tiny webhook receiver on 127.0.0.1 that records what it gets."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], str | None]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((json.loads(body), self.headers.get("Authorization")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


def test_webhooks_are_delivered(http: requests.Session, receiver: _Receiver) -> None:
    with run_sandbox(processing_seconds=0.1, webhook_url=receiver.url, webhook_token="s3cret") as server:
        order = create_order(http, server)
        first = uploaded_image(http, server, "a.jpg", order_id=order["order_id"])
        second = uploaded_image(http, server, "b.jpg", data=b"junk", order_id=order["order_id"])
        events = wait_until(lambda: len(receiver.received) >= 3 and receiver.received, timeout=5)
        assert events[0] == ({"event": "webhook_updated"}, "s3cret")
        processed = {body["image_id"]: body for body, _ in events if body["event"] == "image_processed"}
        assert processed[first["image_id"]]["error"] is False
        assert processed[second["image_id"]]["error"] is True
        last = [body for body, _ in events][-1]
        assert last["order_is_processing"] is False
        assert last["order_id"] == order["order_id"]
        assert {auth for _, auth in events} == {"s3cret"}
        logged = wait_until(
            lambda: (
                len(http.get(server.url("/_sandbox/webhooks")).json()["events"]) >= 3
                and http.get(server.url("/_sandbox/webhooks")).json()["events"]
            )
        )
        assert {record["status_code"] for record in logged} == {204}
        assert server.stats()["webhooks_sent"] >= 3


def test_webhook_failures_are_recorded_not_raised(http: requests.Session) -> None:
    dead = _Receiver()
    url = dead.url
    dead.close()
    with run_sandbox(processing_seconds=0.05, webhook_url=url) as server:
        image = uploaded_image(http, server)
        records = wait_until(
            lambda: [r for r in server.webhooks() if r["payload"].get("image_id")], timeout=10
        )
        assert records[0]["status_code"] is None
        assert records[0]["error"]
        assert http.get(server.url(f"/v3/images/{image['image_id']}")).json()["status"] == "processed"


def test_every_endpoint_is_counted_under_its_route_template(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    image = processed_image(http, sandbox)
    image_id, order_id = image["image_id"], image["order_id"]
    key = keyed(sandbox)
    bracket_order = create_order(http, sandbox)["order_id"]
    bracket = http.post(
        sandbox.url("/v3/brackets/"), json={"order_id": bracket_order, "name": "b_1.jpg"}, headers=key
    )
    http.put(
        bracket.json()["upload_url"], data=image_bytes(), headers={"Content-Type": "application/octet-stream"}
    )
    http.get(sandbox.url(f"/v3/orders/{bracket_order}/brackets/"))
    http.post(sandbox.url(f"/v3/orders/{bracket_order}/process"), json={}, headers=key)
    http.post(sandbox.url(f"/v3/orders/{bracket_order}/merge"), json={}, headers=key)
    http.get(sandbox.url("/v3/orders"), headers=key)
    http.get(sandbox.url(f"/v3/orders/{order_id}"))
    http.patch(sandbox.url(f"/v3/orders/{order_id}"), json={"name": "n"}, headers=key)
    for kind in ("original", "enhanced", "preview", "watermark"):
        http.get(sandbox.url(f"/v3/images/{image_id}/{kind}/"), headers=key)
    http.post(sandbox.url(f"/v3/images/{image_id}/report"), json={"categories": ["HDR"]}, headers=key)
    http.patch(sandbox.url(f"/v3/images/{image_id}/process"), json={}, headers=key)
    http.post(sandbox.url(f"/v3/images/{image_id}/process"), json={}, headers=key)
    http.delete(sandbox.url(f"/v3/images/{image_id}"), headers=key)
    http.delete(sandbox.url(f"/v3/orders/{order_id}"), headers=key)
    assert set(sandbox.stats()["requests"]) == {
        "POST /v3/orders",
        "GET /v3/orders",
        "GET /v3/orders/{order_id}",
        "PATCH /v3/orders/{order_id}",
        "DELETE /v3/orders/{order_id}",
        "POST /v3/orders/{order_id}/process",
        "POST /v3/orders/{order_id}/merge",
        "GET /v3/orders/{order_id}/brackets",
        "POST /v3/images",
        "GET /v3/images/{image_id}",
        "POST /v3/images/{image_id}/process",
        "PATCH /v3/images/{image_id}/process",
        "DELETE /v3/images/{image_id}",
        "POST /v3/images/{image_id}/report",
        "GET /v3/images/{image_id}/original",
        "GET /v3/images/{image_id}/enhanced",
        "GET /v3/images/{image_id}/preview",
        "GET /v3/images/{image_id}/watermark",
        "POST /v3/brackets",
        "PUT /_storage/{object_key}",
        "GET /_assets/{token}",
    }
