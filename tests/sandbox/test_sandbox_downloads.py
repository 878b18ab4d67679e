"""Downloads: 302 to the other host, rendering params, purchases, credits, dev mode, leaks."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from autoenhance_sandbox_helpers import (
    create_image,
    download,
    image_bytes,
    keyed,
    open_image,
    pixel_difference,
    processed_image,
    spread,
    uploaded_image,
    wait_image_status,
)

from autoenhance_sandbox.testing import SandboxServer

pytestmark = pytest.mark.integration


def fetch(http: requests.Session, response: requests.Response) -> requests.Response:
    """Follow the redirect *without* the API key, as a careful client does."""
    assert response.status_code == 302, response.text
    asset = http.get(response.headers["Location"])
    assert asset.status_code == 200
    return asset


def test_enhanced_redirects_to_the_other_host(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox, data=image_bytes(1600, 1000))
    response = download(
        http, sandbox, image["image_id"], "enhanced", preview="false", format="png", max_width=400
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).netloc == f"localhost:{urlsplit(sandbox.base_url).port}"
    assert urlsplit(location).path.startswith("/_assets/")
    assert response.headers["content-type"].startswith("text/html")
    assert f'href="{location}"' in response.text
    asset = fetch(http, response)
    assert asset.headers["content-type"] == "image/png"
    img = open_image(asset.content)
    assert (img.format, img.size) == ("PNG", (400, 250))
    assert sandbox.stats()["downloads"] == {"original": 0, "enhanced": 1, "preview": 0, "watermark": 0}
    assert sandbox.stats()["requests"]["GET /_assets/{token}"] == {"200": 1}


@pytest.mark.parametrize(
    ("params", "fmt", "size"),
    [
        ({"format": "jpeg", "quality": 1}, "JPEG", (1000, 500)),
        ({"format": "webp", "scale": 0.5}, "WEBP", (500, 250)),
        ({"format": "png", "scale": 0.5, "max_width": 100}, "PNG", (100, 50)),
        ({}, "JPEG", (1000, 500)),
    ],
)
def test_rendering_parameters(
    http: requests.Session, sandbox: SandboxServer, params: dict, fmt: str, size: tuple[int, int]
) -> None:
    image = processed_image(http, sandbox, data=image_bytes(1000, 500))
    asset = fetch(http, download(http, sandbox, image["image_id"], "enhanced", preview="false", **params))
    img = open_image(asset.content)
    assert (img.format, img.size) == (fmt, size)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("quality", 0),
        ("quality", 91),
        ("quality", "high"),
        ("format", "gif"),
        ("max_width", 0),
        ("scale", 0),
        ("scale", 1.5),
        ("preview", "maybe"),
        ("watermark", "sure"),
    ],
)
def test_invalid_rendering_parameters_are_422(
    http: requests.Session, sandbox: SandboxServer, param: str, value: object
) -> None:
    image = processed_image(http, sandbox)
    for kind in ("enhanced", "original"):
        response = download(http, sandbox, image["image_id"], kind, **{param: value})
        assert response.status_code == 422
        assert list(response.json()["detail"]["query"]) == [param]
    assert sandbox.stats()["purchases"] == 0


def test_quality_limits_inclusive(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox)
    for quality in (1, 90):
        assert download(http, sandbox, image["image_id"], "enhanced", quality=quality).status_code == 302


def test_enhanced_defaults_to_preview_and_preview_endpoint(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    image = processed_image(http, sandbox, data=image_bytes(2000, 1000))
    default = open_image(fetch(http, download(http, sandbox, image["image_id"], "enhanced")).content)
    assert default.size == (800, 400)
    preview = open_image(
        fetch(http, download(http, sandbox, image["image_id"], "preview", key=False)).content
    )
    assert preview.size == (800, 400)
    stats = sandbox.stats()
    assert (stats["purchases"], stats["credits_remaining"]) == (0, None)
    assert http.get(sandbox.url(f"/v3/images/{image['image_id']}")).json()["downloaded"] is False


def test_enhanced_looks_better_than_the_dull_input(http: requests.Session, sandbox: SandboxServer) -> None:
    data = image_bytes(400, 300)
    image = processed_image(http, sandbox, data=data)
    enhanced = open_image(
        fetch(http, download(http, sandbox, image["image_id"], "enhanced", preview="false")).content
    )
    assert spread(enhanced) > spread(open_image(data)) * 2


def test_watermark_is_visible(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox, data=image_bytes(800, 400))
    preview = open_image(
        fetch(http, download(http, sandbox, image["image_id"], "preview", key=False)).content
    )
    marked = open_image(
        fetch(http, download(http, sandbox, image["image_id"], "watermark", key=False)).content
    )
    assert marked.size == preview.size
    centre = (
        marked.width // 2 - 150,
        marked.height // 2 - 30,
        marked.width // 2 + 150,
        marked.height // 2 + 30,
    )
    assert pixel_difference(marked.crop(centre), preview.crop(centre)) > 10_000
    stats = sandbox.stats()["downloads"]
    assert (stats["preview"], stats["watermark"]) == (1, 1)


def test_purchase_marks_downloaded_and_counts_once(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox)
    for _ in range(3):
        fetch(http, download(http, sandbox, image["image_id"], "enhanced", preview="false"))
    assert http.get(sandbox.url(f"/v3/images/{image['image_id']}")).json()["downloaded"] is True
    stats = sandbox.stats()
    assert stats["purchases"] == 1
    assert stats["purchases_per_image"] == {image["image_id"]: 1}
    assert stats["downloads"]["enhanced"] == 3


def test_credits_exhausted_is_402(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.config.credits = 1
    sandbox.reset()
    first = processed_image(http, sandbox)
    second = processed_image(http, sandbox)
    assert download(http, sandbox, first["image_id"], "enhanced", preview="false").status_code == 302
    assert sandbox.stats()["credits_remaining"] == 0
    refused = download(http, sandbox, second["image_id"], "enhanced", preview="false")
    assert refused.status_code == 402
    assert refused.json()["message"] == "Insufficient credits"
    assert http.get(sandbox.url(f"/v3/images/{second['image_id']}")).json()["downloaded"] is False
    again = download(http, sandbox, first["image_id"], "enhanced", preview="false")
    assert again.status_code == 302  # already bought: free
    assert download(http, sandbox, second["image_id"], "enhanced").status_code == 302  # previews are free


def test_dev_mode_spends_no_credits(http: requests.Session, sandbox: SandboxServer) -> None:
    sandbox.config.credits = 0
    sandbox.reset()
    image = processed_image(http, sandbox, data=image_bytes(600, 300))
    response = http.get(
        sandbox.url(f"/v3/images/{image['image_id']}/enhanced"),
        params={"preview": "false"},
        headers=keyed(sandbox, **{"x-dev-mode": "true"}),
        allow_redirects=False,
    )
    assert open_image(fetch(http, response).content).size == (600, 300)
    stats = sandbox.stats()
    assert (stats["purchases"], stats["credits_remaining"], stats["purchases_per_image"]) == (0, 0, {})
    assert http.get(sandbox.url(f"/v3/images/{image['image_id']}")).json()["downloaded"] is False


def test_not_processed_is_409_and_unknown_is_404(http: requests.Session, sandbox: SandboxServer) -> None:
    waiting = create_image(http, sandbox)
    for kind in ("enhanced", "preview", "watermark", "original"):
        response = download(http, sandbox, waiting["image_id"], kind)
        assert response.status_code == 409, kind
        assert waiting["image_id"] in response.json()["message"]
    sandbox.config.processing_seconds = 3600  # stays "processing" until the clock is advanced
    processing = uploaded_image(http, sandbox)
    busy = download(http, sandbox, processing["image_id"], "enhanced")
    assert busy.status_code == 409
    assert "not processed" in busy.json()["message"]
    assert download(http, sandbox, processing["image_id"], "original").status_code == 302
    assert download(http, sandbox, "missing", "enhanced").status_code == 404


def test_original_streams_the_stored_bytes(http: requests.Session, sandbox: SandboxServer) -> None:
    payload = b"%PDF-1.4 definitely not an image\n" * 1000
    image = uploaded_image(http, sandbox, "scan.pdf", data=payload, content_type="application/pdf")
    wait_image_status(http, sandbox, image["image_id"], "error")
    asset = fetch(http, download(http, sandbox, image["image_id"], "original", key=False))
    assert asset.content == payload
    assert asset.headers["content-type"] == "application/pdf"
    assert download(http, sandbox, image["image_id"], "original", format="png").status_code == 409
    assert download(http, sandbox, image["image_id"], "enhanced").status_code == 409
    jpeg = image_bytes(300, 200)
    ok = processed_image(http, sandbox, data=jpeg)
    assert fetch(http, download(http, sandbox, ok["image_id"], "original", key=False)).content == jpeg
    small = fetch(
        http, download(http, sandbox, ok["image_id"], "original", key=False, max_width=30, format="webp")
    )
    assert open_image(small.content).size == (30, 20)


def test_enhanced_requires_key(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox)
    assert download(http, sandbox, image["image_id"], "enhanced", key=False).status_code == 401


def test_key_forwarded_to_asset_host_is_counted(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox)
    response = http.get(sandbox.url(f"/v3/images/{image['image_id']}/enhanced"), headers=keyed(sandbox))
    assert response.status_code == 200  # requests followed the redirect and kept x-api-key
    assert sandbox.stats()["leaked_api_key"] == {"storage": 0, "assets": 1}


def test_tampered_asset_token_is_403(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox)
    location = download(http, sandbox, image["image_id"], "preview").headers["Location"]
    response = http.get(location[:-4] + "abcd")
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text


def test_legacy_size_for_old_api_versions(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox, data=image_bytes(1200, 600))

    def width(version: str) -> int:
        response = http.get(
            sandbox.url(f"/v3/images/{image['image_id']}/original"),
            params={"size": "small"},
            headers={"x-api-version": version},
            allow_redirects=False,
        )
        return open_image(fetch(http, response).content).width

    assert width("2024-06-01") == 800
    assert width("2025-01-01") == 1200
    bad = http.get(sandbox.url(f"/v3/images/{image['image_id']}/original"), params={"size": "huge"})
    assert bad.status_code == 422


def test_asset_base_url_override(http: requests.Session) -> None:
    from autoenhance_sandbox.testing import run_sandbox

    with run_sandbox(processing_seconds=0.05, asset_base_url="http://assets.test:9/") as server:
        created = http.post(
            server.url("/v3/images"), json={"image_name": "a.jpg"}, headers=keyed(server)
        ).json()
        assert created["upload_url"].startswith("http://assets.test:9/_storage/")
