"""Fault injection: determinism, kinds, phases, per-endpoint rates, admin immunity."""

from __future__ import annotations

import time

import pytest
import requests
from autoenhance_sandbox_helpers import create_image, create_order, get_image, image_bytes, keyed

from autoenhance_sandbox.testing import SandboxServer
from support.timing import wait_until

pytestmark = pytest.mark.integration


def statuses(http: requests.Session, sandbox: SandboxServer, order_id: str, n: int = 30) -> list[int]:
    return [http.get(sandbox.url(f"/v3/orders/{order_id}")).status_code for _ in range(n)]


def test_same_seed_same_sequence_different_seed_different(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    sandbox.set_faults(0.5, kinds=["500", "503"], seed=42, phase="before")
    first = statuses(http, sandbox, order_id)
    assert set(first) == {200, 500, 503}
    sandbox.set_faults(0.5, seed=42)  # restarts the per-endpoint sequences
    assert statuses(http, sandbox, order_id) == first
    sandbox.set_faults(0.5, seed=43)
    assert statuses(http, sandbox, order_id) != first


def test_sequence_ignores_traffic_to_other_endpoints(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    sandbox.set_faults(0.5, kinds=["500"], seed=7, phase="before")
    alone = statuses(http, sandbox, order_id, 20)
    sandbox.set_faults(0.5, seed=7)
    mixed = []
    for _ in range(20):
        http.get(sandbox.url("/v3/orders"), headers=keyed(sandbox))
        mixed.append(http.get(sandbox.url(f"/v3/orders/{order_id}")).status_code)
    assert mixed == alone


def test_429_has_retry_after_and_changes_nothing(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.set_faults(1.0, kinds=["429"], phase="after")
    response = http.post(sandbox.url("/v3/orders"), json={}, headers=keyed(sandbox))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json()["message"].startswith("Too Many Requests")
    stats = sandbox.stats()
    assert (stats["orders_created"], stats["live_orders"]) == (0, 0)
    assert stats["faults_injected"]["429"] == 1
    assert stats["requests"]["POST /v3/orders"] == {"429": 1}


def test_before_phase_5xx_changes_nothing(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.set_faults(1.0, kinds=["502"], phase="before")
    response = http.post(sandbox.url("/v3/orders"), json={}, headers=keyed(sandbox))
    assert response.status_code == 502
    assert response.headers["x-sandbox-fault"] == "502-before"
    assert response.json()["detail"] == {}
    assert sandbox.stats()["live_orders"] == 0


def test_after_phase_commits_the_change_then_fails(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.set_faults(1.0, kinds=["500"], phase="after")
    response = http.post(sandbox.url("/v3/orders"), json={"order_id": "after-1"}, headers=keyed(sandbox))
    assert response.status_code == 500
    assert response.headers["x-sandbox-fault"] == "500-after"
    sandbox.clear_faults()
    assert http.get(sandbox.url("/v3/orders/after-1")).status_code == 200
    retry = http.post(sandbox.url("/v3/orders"), json={"order_id": "after-1"}, headers=keyed(sandbox))
    assert retry.status_code == 409  # what a naive retry of a non-idempotent create runs into
    assert sandbox.stats()["requests"]["POST /v3/orders"] == {"500": 1, "409": 1}


def test_drop_breaks_the_connection(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    sandbox.set_faults(1.0, kinds=["drop"], phase="before")
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        http.get(sandbox.url(f"/v3/orders/{order_id}"))
    stats = sandbox.stats()
    assert stats["requests"]["GET /v3/orders/{order_id}"] == {"drop": 1}
    assert stats["faults_injected"]["drop"] == 1
    sandbox.clear_faults()
    assert http.get(sandbox.url(f"/v3/orders/{order_id}")).status_code == 200


def test_drop_after_an_upload_keeps_the_upload(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox, contentType="image/jpeg")
    sandbox.set_faults(0.0, endpoints={"PUT /_storage/{object_key}": 1.0}, kinds=["drop"], phase="after")
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        http.put(image["upload_url"], data=image_bytes(), headers={"Content-Type": "image/jpeg"})
    assert get_image(http, sandbox, image["image_id"])["status"] in ("processing", "processed")
    assert sandbox.stats()["uploads"] == 1


def test_after_phase_on_delete_and_download(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox)
    sandbox.set_faults(0.0, endpoints={"DELETE /v3/images/{image_id}/": 1.0}, kinds=["503"], phase="after")
    response = http.delete(sandbox.url(f"/v3/images/{image['image_id']}"), headers=keyed(sandbox))
    assert response.status_code == 503
    assert http.get(sandbox.url(f"/v3/images/{image['image_id']}")).status_code == 404


def test_per_endpoint_rates_override_the_global_rate(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.set_faults(0.0, kinds=["500"], phase="before", endpoints={"POST /v3/images": 1.0})
    for _ in range(5):
        assert http.post(sandbox.url("/v3/orders"), json={}, headers=keyed(sandbox)).status_code == 200
        assert (
            http.post(
                sandbox.url("/v3/images"), json={"image_name": "a.jpg"}, headers=keyed(sandbox)
            ).status_code
            == 500
        )
    sandbox.set_faults(1.0, endpoints={"POST /v3/images": 0.0, "POST /v3/orders": 0.0})
    assert http.post(sandbox.url("/v3/images"), json={"image_name": "a.jpg"}, headers=keyed(sandbox)).ok
    assert http.get(sandbox.url("/v3/orders"), headers=keyed(sandbox)).status_code == 500


def test_slow_sleeps_then_serves(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    sandbox.set_faults(1.0, kinds=["slow"], slow_seconds=0.3)
    started = time.monotonic()
    assert http.get(sandbox.url(f"/v3/orders/{order_id}")).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert sandbox.stats()["faults_injected"]["slow"] == 1


def test_storage_faults_are_s3_xml(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox)
    sandbox.set_faults(1.0, kinds=["503"], phase="before")
    response = http.put(image["upload_url"], data=b"x")
    assert response.status_code == 503
    assert "<Code>SlowDown</Code>" in response.text


def test_admin_endpoints_are_never_faulted(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.set_faults(1.0, kinds=["500", "drop"])
    for path in ("/_sandbox/health", "/_sandbox/stats", "/_sandbox/webhooks", "/_sandbox/faults"):
        assert http.get(sandbox.url(path)).status_code == 200
    assert sandbox.stats()["requests"] == {}


def test_faults_over_http_admin_keep_omitted_values(http: requests.Session, sandbox: SandboxServer) -> None:
    url = sandbox.url("/_sandbox/faults")
    first = http.post(url, json={"rate": 0.25, "kinds": ["429", 500], "seed": 9, "phase": "after"}).json()
    assert first == {
        "rate": 0.25,
        "kinds": ["429", "500"],
        "endpoints": {},
        "seed": 9,
        "phase": "after",
        "slow_seconds": sandbox.config.slow_seconds,
    }
    second = http.post(url, json={"endpoints": {"post /v3/images/": 1}}).json()
    assert (second["rate"], second["seed"], second["phase"]) == (0.25, 9, "after")
    assert second["endpoints"] == {"POST /v3/images": 1.0}
    for bad in ({"rate": 2}, {"kinds": ["404"]}, {"phase": "during"}, {"endpoints": {"GET /x": -1}}):
        response = http.post(url, json=bad)
        assert response.status_code == 422, bad
    assert http.post(url, json={"rate": 0}).json()["rate"] == 0


def test_config_fault_rate_applies_from_start(http: requests.Session) -> None:
    from autoenhance_sandbox.testing import run_sandbox

    with run_sandbox(fault_rate=1.0, fault_kinds=("503",), fault_phase="before", seed=1) as server:
        assert http.get(server.url("/v3/orders"), headers=keyed(server)).status_code == 503
        server.clear_faults()
        wait_until(lambda: http.get(server.url("/v3/orders"), headers=keyed(server)).status_code == 200)
