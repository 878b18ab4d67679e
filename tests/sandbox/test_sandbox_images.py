"""Images: validation, upload URLs by API version, the presigned PUT, timeline, reprocess, report."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from autoenhance_sandbox_helpers import (
    create_image,
    create_order,
    get_image,
    image_bytes,
    keyed,
    processed_image,
    put_bytes,
    uploaded_image,
    wait_image_status,
)

from autoenhance_sandbox.testing import SandboxServer

pytestmark = pytest.mark.integration

IMAGE_FIELDS = {
    "image_id", "image_name", "order_id", "status", "status_reason", "enhance", "enhance_type", "ai_version",
    "sky_replacement", "cloud_type", "vertical_correction", "lens_correction", "window_pull",
    "window_pull_type", "privacy", "upscale", "is_threesixty", "rating", "metadata", "image_type",
    "date_added", "downloaded",
}  # fmt: skip


def post_image(
    http: requests.Session, sandbox: SandboxServer, body: dict, **headers: str
) -> requests.Response:
    return http.post(sandbox.url("/v3/images"), json=body, headers=keyed(sandbox, **headers))


def test_create_image_shape_and_implicit_order(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox, "kitchen.jpg")
    assert image.keys() >= IMAGE_FIELDS
    assert image["status"] == "waiting"
    assert image["downloaded"] is False
    assert isinstance(image["date_added"], int)
    assert abs(image["date_added"] / 1000 - time.time()) < 60
    order = http.get(sandbox.url(f"/v3/orders/{image['order_id']}")).json()
    assert [i["image_id"] for i in order["images"]] == [image["image_id"]]
    chosen = create_image(http, sandbox, "x.jpg", order_id="brand-new-order")
    assert chosen["order_id"] == "brand-new-order"
    assert http.get(sandbox.url("/v3/orders/brand-new-order")).status_code == 200
    assert sandbox.stats()["orders_created"] == 2


def test_missing_image_name_is_422(http: requests.Session, sandbox: SandboxServer) -> None:
    response = post_image(http, sandbox, {"order_id": "o1"})
    assert response.status_code == 422
    assert response.json() == {
        "message": "Validation error",
        "detail": {"json": {"image_name": ["Missing data for required field."]}},
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("enhance_type", "dramatic"),
        ("cloud_type", "STORMY"),
        ("window_pull_type", "ALL"),
        ("enhance", "yes"),
        ("sky_replacement", 1),
        ("rating", 6),
        ("rating", -1),
        ("rating", "5"),
        ("metadata", "not-an-object"),
        ("privacy", "true"),
    ],
)
def test_invalid_settings_are_422_with_field_detail(
    http: requests.Session, sandbox: SandboxServer, field: str, value: object
) -> None:
    response = post_image(http, sandbox, {"image_name": "a.jpg", field: value})
    assert response.status_code == 422
    assert list(response.json()["detail"]["json"]) == [field]
    assert sandbox.stats()["images_created"] == 0


def test_all_errors_reported_together(http: requests.Session, sandbox: SandboxServer) -> None:
    response = post_image(http, sandbox, {"enhance": "no", "cloud_type": 3})
    assert set(response.json()["detail"]["json"]) == {"image_name", "enhance", "cloud_type"}


def test_valid_settings_are_echoed(http: requests.Session, sandbox: SandboxServer) -> None:
    """Newest behaviour (no x-api-version): exact enum spellings, 2026 aliases, window pull types."""
    body = {
        "image_name": "a.jpg",
        "enhance_type": "warm",
        "cloud_type": "LOW_CLOUD_LOW_SAT",
        "window_pull_type": "ONLY_WINDOWS",
        "sky_replacement": True,
        "vertical_correction": False,
        "privacy": None,
        "threesixty": True,
        "rating": 0,
        "ai_version": "5.3",
        "metadata": {"room": "kitchen"},
        "unknown_field": "ignored (ImageIn allows additional properties)",
    }
    image = post_image(http, sandbox, body).json()
    assert image["enhance_type"] == "warm"
    assert image["cloud_type"] == "LOW_CLOUD_LOW_SAT"
    assert image["window_pull_type"] == "ONLY_WINDOWS"
    assert image["window_pull"] is True
    assert (image["sky_replacement"], image["vertical_correction"], image["privacy"]) == (True, False, None)
    assert image["is_threesixty"] is True
    assert image["rating"] == 0
    assert image["ai_version"] == "5.3"
    assert image["metadata"] == {"room": "kitchen"}
    assert "unknown_field" not in image
    for enhance_type in ("property", "property_usa", "neutral", "modern"):
        assert (
            post_image(http, sandbox, {"image_name": "b.jpg", "enhance_type": enhance_type}).status_code
            == 200
        )
    for cloud in ("CLEAR", "LOW_CLOUD", "HIGH_CLOUD", None):
        assert post_image(http, sandbox, {"image_name": "c.jpg", "cloud_type": cloud}).status_code == 200
    for wrong in (
        {"enhance_type": "WARM"},
        {"cloud_type": "clear"},
        {"ai_version": 5.3},
        {"enhance_type": "authentic"},
    ):
        response = post_image(http, sandbox, {"image_name": "d.jpg", **wrong})
        assert response.status_code == 422
        assert set(response.json()["detail"]["json"]) == set(wrong)


@pytest.mark.parametrize(
    ("version", "field"),
    [
        (None, "upload_url"),
        ("2024-06-01", "s3PutObjectUrl"),
        ("2025-01-01", "s3PutObjectUrl"),
        ("2025-05-04", "s3PutObjectUrl"),
        ("2025-05-05", "upload_url"),
        ("2026-10-01", "upload_url"),
        ("not-a-date", "upload_url"),
    ],
)
def test_upload_url_key_depends_on_api_version(
    http: requests.Session, sandbox: SandboxServer, version: str | None, field: str
) -> None:
    headers = {"x-api-version": version} if version else {}
    image = post_image(http, sandbox, {"image_name": "a.jpg", "contentType": "image/jpeg"}, **headers).json()
    other = {"upload_url", "s3PutObjectUrl"} - {field}
    assert field in image
    assert not other & image.keys()
    assert put_bytes(http, image[field], image_bytes(), "image/jpeg").status_code == 200


def test_presigned_url_is_s3_like_on_the_other_host(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox, "a.jpg", contentType="image/jpeg")
    parts = urlsplit(image["upload_url"])
    port = urlsplit(sandbox.base_url).port
    assert parts.netloc == f"localhost:{port}"
    assert parts.path.startswith("/_storage/")
    query = parse_qs(parts.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["3600"]
    assert query["X-Amz-SignedHeaders"] == ["content-type;host"]
    assert len(query["X-Amz-Signature"][0]) == 64
    via_localhost = http.post(
        f"http://localhost:{port}/v3/images", json={"image_name": "b.jpg"}, headers=keyed(sandbox)
    ).json()
    assert urlsplit(via_localhost["upload_url"]).netloc == f"127.0.0.1:{port}"


def test_upload_lifecycle_over_time(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.config.processing_seconds = 0.8  # room to observe "processing" on a busy machine
    image = create_image(http, sandbox, "a.jpg", contentType="image/jpeg")
    image_id, order_id = image["image_id"], image["order_id"]
    before = http.get(sandbox.url(f"/v3/orders/{order_id}")).json()
    response = put_bytes(http, image["upload_url"], image_bytes(), "image/jpeg")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["ETag"].startswith('"')
    processing = get_image(http, sandbox, image_id)
    assert processing["status"] == "processing"
    assert processing["image_type"] == "jpeg"
    order = http.get(sandbox.url(f"/v3/orders/{order_id}")).json()
    assert (order["status"], order["is_processing"]) == ("processing", True)
    done = wait_image_status(http, sandbox, image_id, "processed")
    assert done["status_reason"] is None
    order = http.get(sandbox.url(f"/v3/orders/{order_id}")).json()
    assert (order["status"], order["is_processing"]) == ("processed", False)
    assert order["last_updated_at"] > before["last_updated_at"]
    stats = sandbox.stats()
    assert stats["uploads"] == 1
    assert stats["requests"]["PUT /_storage/{object_key}"] == {"200": 1}


def test_content_type_mismatch_is_s3_403(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox, "a.png", contentType="image/png")
    for content_type in ("image/jpeg", "application/octet-stream", None):
        response = put_bytes(http, image["upload_url"], image_bytes(fmt="PNG"), content_type)
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/xml")
        assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert get_image(http, sandbox, image["image_id"])["status"] == "waiting"
    assert put_bytes(http, image["upload_url"], image_bytes(fmt="PNG"), "image/png").status_code == 200


def test_bad_or_missing_signature_is_403(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox, "a.jpg", contentType="image/jpeg")
    url = image["upload_url"]
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    tampered = url.replace(signature, "0" * 64)
    response = put_bytes(http, tampered, image_bytes(), "image/jpeg")
    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    unsigned = put_bytes(http, url.split("?")[0], image_bytes(), "image/jpeg")
    assert unsigned.status_code == 403
    assert "<Code>AccessDenied</Code>" in unsigned.text
    other = create_image(http, sandbox, "b.jpg", contentType="image/jpeg")
    swapped = other["upload_url"].split("?")[0] + "?" + url.split("?")[1]
    assert put_bytes(http, swapped, image_bytes(), "image/jpeg").status_code == 403


def test_image_without_content_type_accepts_any(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox, "a.jpg")
    assert parse_qs(urlsplit(image["upload_url"]).query)["X-Amz-SignedHeaders"] == ["host"]
    assert put_bytes(http, image["upload_url"], image_bytes(), None).status_code == 200
    assert put_bytes(http, image["upload_url"], image_bytes(), "image/jpeg").status_code == 200


def test_corrupt_upload_ends_in_error_with_reason(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.config.processing_seconds = 0.8
    image = uploaded_image(http, sandbox, "broken.jpg", data=b"this is not a jpeg" * 100)
    assert get_image(http, sandbox, image["image_id"])["status"] == "processing"
    failed = wait_image_status(http, sandbox, image["image_id"], "error")
    assert failed["status_reason"]
    assert "decodable" in failed["status_reason"]
    assert failed["error"] is True
    order = http.get(sandbox.url(f"/v3/orders/{image['order_id']}")).json()
    assert order["status"] == "error"


def test_repeated_put_overwrites_and_restarts(http: requests.Session, sandbox: SandboxServer) -> None:
    image = uploaded_image(http, sandbox, "a.jpg", data=b"garbage")
    wait_image_status(http, sandbox, image["image_id"], "error")
    sandbox.config.processing_seconds = 0.8
    assert put_bytes(http, image["upload_url"], image_bytes(), "image/jpeg").status_code == 200
    assert get_image(http, sandbox, image["image_id"])["status"] == "processing"
    wait_image_status(http, sandbox, image["image_id"], "processed")
    assert sandbox.stats()["uploads"] == 2


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_reprocess_keeps_unspecified_settings(
    http: requests.Session, sandbox: SandboxServer, method: str
) -> None:
    image = processed_image(http, sandbox, enhance_type="warm", sky_replacement=True)
    response = http.request(
        method,
        sandbox.url(f"/v3/images/{image['image_id']}/process"),
        json={"cloud_type": "CLEAR"},
        headers=keyed(sandbox),
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["enhance_type"], body["sky_replacement"], body["cloud_type"]) == ("warm", True, "CLEAR")
    assert body["status"] == "processing"
    wait_image_status(http, sandbox, image["image_id"], "processed")
    bad = http.post(
        sandbox.url(f"/v3/images/{image['image_id']}/process"), json={"rating": 9}, headers=keyed(sandbox)
    )
    assert bad.status_code == 422


def test_reprocess_of_waiting_image_stays_waiting(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox)
    response = http.post(sandbox.url(f"/v3/images/{image['image_id']}/process"), headers=keyed(sandbox))
    assert response.status_code == 200
    assert response.json()["status"] == "waiting"


def test_delete_image(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox, contentType="image/jpeg")
    response = http.delete(sandbox.url(f"/v3/images/{image['image_id']}"), headers=keyed(sandbox))
    assert (response.status_code, response.content) == (204, b"")
    assert http.get(sandbox.url(f"/v3/images/{image['image_id']}")).status_code == 404
    assert (
        http.delete(sandbox.url(f"/v3/images/{image['image_id']}"), headers=keyed(sandbox)).status_code == 404
    )
    late = put_bytes(http, image["upload_url"], image_bytes(), "image/jpeg")
    assert late.status_code == 404
    assert "<Code>NoSuchUpload</Code>" in late.text
    order = http.get(sandbox.url(f"/v3/orders/{image['order_id']}")).json()
    assert order["total_images"] == 0


def test_report(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox)
    url = sandbox.url(f"/v3/images/{image['image_id']}/report")
    ok = http.post(
        url,
        json={"categories": ["SKY_REPLACEMENT", "COLOUR"], "score": 2, "comment": "meh"},
        headers=keyed(sandbox),
    )
    assert ok.status_code == 200
    body = ok.json()
    assert body["categories"] == ["SKY_REPLACEMENT", "COLOUR"]
    assert (body["score"], body["comment"], body["image_id"]) == (2, "meh", image["image_id"])
    missing = http.post(url, json={"comment": "x"}, headers=keyed(sandbox))
    assert missing.json()["detail"]["json"]["categories"] == ["Missing data for required field."]
    for bad in (
        {"categories": ["UGLY"]},
        {"categories": ["colour"]},
        {"categories": ["HDR"], "extra": 1},
        {"categories": ["HDR"], "score": 6},
        {"categories": ["HDR"], "source": "X"},
    ):
        assert http.post(url, json=bad, headers=keyed(sandbox)).status_code == 422
    assert (
        http.post(
            sandbox.url("/v3/images/nope/report"), json={"categories": ["HDR"]}, headers=keyed(sandbox)
        ).status_code
        == 404
    )


def test_api_key_sent_to_storage_is_counted_as_leaked(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox, contentType="image/jpeg")
    response = http.put(
        image["upload_url"], data=image_bytes(), headers=keyed(sandbox, **{"Content-Type": "image/jpeg"})
    )
    assert response.status_code == 200
    assert sandbox.stats()["leaked_api_key"] == {"storage": 1, "assets": 0}


def test_duplicate_image_names_counts_live_images_only(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    order = create_order(http, sandbox)
    assert sandbox.stats()["duplicate_image_names"] == {}
    first = create_image(http, sandbox, "same.jpg", order_id=order["order_id"])
    create_image(http, sandbox, "same.jpg", order_id=order["order_id"])
    create_image(http, sandbox, "other.jpg", order_id=order["order_id"])
    assert sandbox.stats()["duplicate_image_names"] == {order["order_id"]: {"same.jpg": 2}}
    http.delete(sandbox.url(f"/v3/images/{first['image_id']}"), headers=keyed(sandbox))
    assert sandbox.stats()["duplicate_image_names"] == {}


def test_client_chosen_image_id(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox, image_id="img-1")
    assert image["image_id"] == "img-1"
    again = post_image(http, sandbox, {"image_name": "x.jpg", "image_id": "img-1"})
    assert again.status_code == 409
