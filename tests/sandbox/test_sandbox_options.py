"""Contract options: each undocumented behaviour can be played in every plausible reading,
chosen per test (``set_options`` / ``POST /_sandbox/options``) or per start-up (CLI / env)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import requests
from autoenhance_sandbox_helpers import (
    create_image,
    create_order,
    download,
    image_bytes,
    keyed,
    processed_image,
    put_bytes,
    solid_bytes,
)

from autoenhance_sandbox.config import CONTRACT_CHOICES, SandboxConfig
from autoenhance_sandbox.testing import SandboxServer, start_sandbox_process


def test_defaults_and_admin_endpoint(http: requests.Session, sandbox: SandboxServer) -> None:
    options = http.get(sandbox.url("/_sandbox/options")).json()
    assert options == {name: choices[0] for name, choices in CONTRACT_CHOICES.items()} | {
        "out_of_credits_status": 402
    }
    changed = http.post(sandbox.url("/_sandbox/options"), json={"preview_route": "enhanced_only"})
    assert changed.json()["preview_route"] == "enhanced_only"
    for bad in ({"preview_route": "sometimes"}, {"no_such_option": 1}, {"out_of_credits_status": 500}):
        refused = http.post(sandbox.url("/_sandbox/options"), json={"process_route": "missing_404", **bad})
        assert refused.status_code == 422
    assert sandbox.config.process_route == "available"  # all-or-nothing


def test_options_are_restored_between_tests(sandbox: SandboxServer) -> None:
    assert sandbox.config.options() == SandboxConfig().options()


@pytest.mark.parametrize(
    ("mode", "status"), [("conflict", 409), ("validation", 422), ("bad_request", 400), ("existing", 200)]
)
def test_duplicate_client_order_id(
    http: requests.Session, sandbox: SandboxServer, mode: str, status: int
) -> None:
    sandbox.set_options(duplicate_order_id=mode)
    order_id = str(uuid.uuid4())
    first = create_order(http, sandbox, order_id=order_id, name="first")
    again = http.post(
        sandbox.url("/v3/orders/"), json={"order_id": order_id, "name": "second"}, headers=keyed(sandbox)
    )
    assert again.status_code == status
    if mode == "existing":
        assert again.json()["order_id"] == order_id
        assert again.json()["name"] == "first"  # the existing order, unchanged
        assert again.json()["created_at"] == first["created_at"]
    elif mode == "validation":
        assert again.json()["detail"]["json"]["order_id"]
    else:
        assert set(again.json()) == {"message", "detail"}
    assert sandbox.stats()["orders_created"] == 1


def test_upload_content_type_readings(http: requests.Session, sandbox: SandboxServer) -> None:
    signed_for_sent = create_image(http, sandbox, contentType="image/png")
    assert (
        put_bytes(
            http, signed_for_sent["upload_url"], solid_bytes((1, 2, 3)), "application/octet-stream"
        ).status_code
        == 403
    )
    assert (
        put_bytes(http, signed_for_sent["upload_url"], solid_bytes((1, 2, 3)), "image/png").status_code == 200
    )
    sandbox.set_options(upload_content_type="octet_stream")
    always_octet = create_image(http, sandbox, contentType="image/png")
    refused = put_bytes(http, always_octet["upload_url"], solid_bytes((1, 2, 3)), "image/png")
    assert refused.status_code == 403
    assert b"SignatureDoesNotMatch" in refused.content
    ok = put_bytes(http, always_octet["upload_url"], solid_bytes((1, 2, 3)), "application/octet-stream")
    assert ok.status_code == 200


def test_preview_route_readings(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox)
    assert download(http, sandbox, image["image_id"], "preview").status_code == 302
    sandbox.set_options(preview_route="enhanced_only")
    gone = download(http, sandbox, image["image_id"], "preview")
    assert (gone.status_code, gone.json()) == (404, {"message": "Not Found", "detail": {}})
    assert download(http, sandbox, image["image_id"], "enhanced", preview="true").status_code == 302


@pytest.mark.parametrize(("route", "mode", "status"), [
    ("process", "missing_404", 404), ("process", "missing_405", 405),
    ("merge", "missing_404", 404), ("merge", "missing_405", 405),
])  # fmt: skip
def test_missing_process_or_merge(
    http: requests.Session, sandbox: SandboxServer, route: str, mode: str, status: int
) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    bracket = http.post(
        sandbox.url("/v3/brackets/"), json={"order_id": order_id, "name": "a.jpg"}, headers=keyed(sandbox)
    )
    assert (
        put_bytes(http, bracket.json()["upload_url"], image_bytes(), "application/octet-stream").status_code
        == 200
    )
    sandbox.set_options(**{f"{route}_route": mode})
    gone = http.post(sandbox.url(f"/v3/orders/{order_id}/{route}"), json={}, headers=keyed(sandbox))
    assert gone.status_code == status
    assert set(gone.json()) == {"message", "detail"}
    other = "merge" if route == "process" else "process"
    fallback = http.post(sandbox.url(f"/v3/orders/{order_id}/{other}"), json={}, headers=keyed(sandbox))
    assert fallback.status_code == 200
    assert fallback.json()["is_merging"] is True


@pytest.mark.parametrize("status", [402, 403, 429])
def test_out_of_credits_status(http: requests.Session, sandbox: SandboxServer, status: int) -> None:
    sandbox.set_options(out_of_credits_status=status)
    sandbox.state.credits_remaining = 0
    image = processed_image(http, sandbox)
    refused = download(http, sandbox, image["image_id"], "enhanced", preview="false")
    assert refused.status_code == status
    assert refused.json()["message"] == "Insufficient credits"


def test_rejection_log_keeps_refused_bodies(http: requests.Session, sandbox: SandboxServer) -> None:
    body = {"name": "x", "surprise": True}
    http.post(
        sandbox.url("/v3/orders/"), json=body, headers=keyed(sandbox, **{"x-api-version": "2025-05-08"})
    )
    [record] = http.get(sandbox.url("/_sandbox/rejections")).json()["rejections"]
    assert record["method"] == "POST"
    assert record["path"] == "/v3/orders"
    assert record["api_version"] == "2025-05-08"
    assert record["body"] == body
    assert (record["status"], record["response"]["detail"]) == (
        422,
        {"json": {"surprise": ["Unknown field."]}},
    )
    assert sandbox.rejections() == [record]
    sandbox.reset()
    assert sandbox.rejections() == []


def test_clock_only_moves_forward(http: requests.Session, sandbox: SandboxServer) -> None:
    assert http.post(sandbox.url("/_sandbox/clock"), json={"advance_seconds": -1}).status_code == 422
    sandbox.config.processing_seconds = 3600
    created = create_image(http, sandbox, contentType="image/jpeg")
    assert put_bytes(http, created["upload_url"], image_bytes(), "image/jpeg").status_code == 200
    url = sandbox.url(f"/v3/images/{created['image_id']}")
    assert http.get(url).json()["status"] == "processing"
    sandbox.advance_clock(3599)
    assert http.get(url).json()["status"] == "processing"
    sandbox.advance_clock(2)
    assert http.get(url).json()["status"] == "processed"


def test_cli_flags_and_environment_pick_readings() -> None:
    env_name = "AUTOENHANCE_SANDBOX_DUPLICATE_ORDER_ID"
    old = os.environ.get(env_name)
    os.environ[env_name] = "existing"
    try:
        with start_sandbox_process(api_key="k") as proc:
            session = requests.Session()
            session.trust_env = False
            options = session.get(proc.url("/_sandbox/options")).json()
            session.close()
    finally:
        if old is None:
            os.environ.pop(env_name)
        else:
            os.environ[env_name] = old
    assert options["duplicate_order_id"] == "existing"
    result = subprocess.run(
        [sys.executable, "-m", "autoenhance_sandbox", "--preview-route", "sometimes"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--preview-route" in result.stderr
