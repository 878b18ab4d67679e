"""Where the SDK 1.1.0 is strict, the sandbox is strict too: unknown fields and out-of-range
values in order, bracket, report and process bodies answer 422 in APIFlask's shape, which the
SDK's ``ValidationError`` model parses."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from autoenhance_sandbox.testing import SandboxServer
from support.images import jpeg_bytes


def assert_422(response: requests.Response, field: str, location: str = "json") -> list[str]:
    from autoenhance import ValidationError

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"] == "Validation error"
    assert set(body["detail"]) == {location}
    assert field in body["detail"][location], body
    messages = body["detail"][location][field]
    assert isinstance(messages, list)
    assert all(isinstance(m, str) and m for m in messages)
    ValidationError.from_dict(body)  # the SDK's own error model accepts it
    return messages


@pytest.fixture
def order_id(http: requests.Session, sandbox: SandboxServer) -> str:
    return http.post(sandbox.url("/v3/orders/"), json={"name": "strict"}).json()["order_id"]


@pytest.fixture
def image_id(http: requests.Session, sandbox: SandboxServer, order_id: str) -> str:
    created = http.post(sandbox.url("/v3/images/"), json={"image_name": "a.jpg", "order_id": order_id}).json()
    return created["image_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": 5}, "name"),
        ({"order_id": ["not", "a", "string"]}, "order_id"),
    ],
)
def test_order_create_rejects_unknown_and_wrong_fields(
    http: requests.Session, sandbox: SandboxServer, body: dict[str, Any], field: str
) -> None:
    assert_422(http.post(sandbox.url("/v3/orders/"), json=body), field)


def test_order_update_rejects_unknown_fields(
    http: requests.Session, sandbox: SandboxServer, order_id: str
) -> None:
    messages = assert_422(
        http.patch(sandbox.url(f"/v3/orders/{order_id}"), json={"status": "done"}), "status"
    )
    assert messages == ["Unknown field."]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "b.jpg", "exposure": -2}, "exposure"),
        ({"name": "b.jpg"}, "order_id"),
        ({"order_id": "ORDER"}, "name"),
        ({"name": "b.jpg", "metadata": "ev=-2"}, "metadata"),
    ],
)
def test_bracket_create_is_strict(
    http: requests.Session, sandbox: SandboxServer, order_id: str, body: dict[str, Any], field: str
) -> None:
    body = {k: (order_id if v == "ORDER" else v) for k, v in body.items()}
    if field != "order_id" and "order_id" not in body:
        body["order_id"] = order_id
    assert_422(http.post(sandbox.url("/v3/brackets/"), json=body), field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"categories": ["SKY_REPLACEMENT"], "urgent": True}, "urgent"),
        ({"categories": ["sky_replacement"]}, "categories"),  # enum spelt exactly, as the SDK does
        ({"categories": ["OTHER"], "score": 6}, "score"),
        ({"categories": ["OTHER"], "score": -1}, "score"),
        ({"categories": ["OTHER"], "source": "EMAIL"}, "source"),
        ({"comment": "no categories"}, "categories"),
    ],
)
def test_report_is_strict(
    http: requests.Session, sandbox: SandboxServer, image_id: str, body: dict[str, Any], field: str
) -> None:
    assert_422(http.post(sandbox.url(f"/v3/images/{image_id}/report"), json=body), field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"threesixty": True}, "threesixty"),  # an image setting, not in OrderHDRProcessIn
        ({"metadata": {}}, "metadata"),
        ({"number_of_brackets_per_image": -1}, "number_of_brackets_per_image"),
        ({"number_of_brackets_per_image": "3"}, "number_of_brackets_per_image"),
        ({"enhance_type": "WARM"}, "enhance_type"),
        ({"enhance_type": "authentic"}, "enhance_type"),  # only before 2025-01-01
        ({"cloud_type": "LOW_CLOUD_LOW_SAT"}, "cloud_type"),  # only from 2026-01-01
        ({"ai_version": "latest"}, "ai_version"),  # alias only from 2026-01-01
        ({"ai_version": 4.5}, "ai_version"),
        ({"window_pull_type": "ONLY_WINDOWS"}, "window_pull_type"),  # only from 2025-08-31
        ({"images": [{"bracket_ids": ["x"], "name": "hall"}]}, "images"),
        ({"auto_privacy": True}, "auto_privacy"),
    ],
)
def test_process_is_strict(
    http: requests.Session, sandbox: SandboxServer, order_id: str, body: dict[str, Any], field: str
) -> None:
    bracket = http.post(sandbox.url("/v3/brackets/"), json={"order_id": order_id, "name": "b.jpg"}).json()
    headers = {"Content-Type": "application/octet-stream"}
    assert (
        requests.put(bracket["upload_url"], data=jpeg_bytes(), headers=headers, timeout=30).status_code == 200
    )
    assert_422(http.post(sandbox.url(f"/v3/orders/{order_id}/process"), json=body), field)
    assert http.get(sandbox.url(f"/v3/orders/{order_id}")).json()["is_merging"] is False  # nothing done


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image_name": "a.jpg", "rating": 6}, "rating"),
        ({"image_name": "a.jpg", "enhance_type": "Warm"}, "enhance_type"),
        ({"image_name": "a.jpg", "ai_version": "stable"}, "ai_version"),
        ({"image_name": "a.jpg", "cloud_type": "clear"}, "cloud_type"),
        ({"image_name": "a.jpg", "privacy": "yes"}, "privacy"),
        ({"image_name": "a.jpg", "metadata": []}, "metadata"),
        ({"image_name": None}, "image_name"),
    ],
)
def test_image_create_checks_values(
    http: requests.Session, sandbox: SandboxServer, body: dict[str, Any], field: str
) -> None:
    assert_422(http.post(sandbox.url("/v3/images/"), json=body), field)


def test_image_bodies_ignore_undeclared_keys_by_default(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    """ImageIn declares additionalProperties (the SDK keeps them, and its own
    ``v3_images_id_process_post`` wrapper even sends ``id``), so unknown keys are dropped."""
    body = {"image_name": "a.jpg", "auto_privacy": True, "contentType": "image/jpeg", "mood": "sunny"}
    created = http.post(sandbox.url("/v3/images/"), json=body)
    assert created.status_code == 200, created.text
    assert "mood" not in created.json()
    assert created.json()["privacy"] is False
    sandbox.set_options(unknown_image_fields="reject")
    assert_422(http.post(sandbox.url("/v3/images/"), json=body), "mood")
    assert assert_422(http.post(sandbox.url("/v3/images/"), json=body), "auto_privacy") == ["Unknown field."]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"quality": 0}, "quality"),
        ({"quality": 91}, "quality"),
        ({"format": "gif"}, "format"),
        ({"max_width": 0}, "max_width"),
        ({"scale": 1.5}, "scale"),
        ({"preview": "maybe"}, "preview"),
    ],
)
def test_download_query_out_of_range(
    http: requests.Session, sandbox: SandboxServer, image_id: str, query: dict[str, Any], field: str
) -> None:
    assert_422(http.get(sandbox.url(f"/v3/images/{image_id}/enhanced"), params=query), field, "query")


def test_per_page_range(http: requests.Session, sandbox: SandboxServer) -> None:
    for value in (0, 16):
        assert_422(http.get(sandbox.url("/v3/orders/"), params={"per_page": value}), "per_page", "query")
    sandbox.set_options(per_page_over_max="clamp")
    clamped = http.get(sandbox.url("/v3/orders/"), params={"per_page": 50})
    assert clamped.status_code == 200
    assert clamped.json()["pagination"]["per_page"] == 15
