"""Version-aware values: what a request may send and what it gets back depends on x-api-version."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from autoenhance_sandbox.testing import SandboxServer

NEW = "2026-02-01"
SDK = "2025-05-08"
OLD = "2025-01-01"
VERY_OLD = "2024-10-01"


def post_image(
    http: requests.Session, sandbox: SandboxServer, version: str | None, **body: Any
) -> requests.Response:
    headers = {"x-api-version": version}  # None drops the session's pinned header
    return http.post(sandbox.url("/v3/images/"), json={"image_name": "a.jpg", **body}, headers=headers)


def get_image(http: requests.Session, sandbox: SandboxServer, image_id: str, version: str | None) -> dict:
    headers = {"x-api-version": version}  # None drops the session's pinned header
    return http.get(sandbox.url(f"/v3/images/{image_id}"), headers=headers).json()


@pytest.mark.parametrize(
    ("version", "default", "url_key"),
    [(None, "latest", "upload_url"), (NEW, "latest", "upload_url"), (SDK, "5.x", "upload_url"),
     (OLD, "4.x", "s3PutObjectUrl"), (VERY_OLD, "4.x", "s3PutObjectUrl")],
)  # fmt: skip
def test_default_ai_version_and_upload_url_key(
    http: requests.Session, sandbox: SandboxServer, version: str | None, default: str, url_key: str
) -> None:
    created = post_image(http, sandbox, version)
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["ai_version"] == default
    assert url_key in body
    assert ({"upload_url", "s3PutObjectUrl"} - {url_key}).isdisjoint(body)


def test_aliases_only_from_2026(http: requests.Session, sandbox: SandboxServer) -> None:
    for alias in ("latest", "stable", "beta", "5.3"):
        assert post_image(http, sandbox, NEW, ai_version=alias).status_code == 200
        assert post_image(http, sandbox, SDK, ai_version=alias).status_code == 422
    stored = post_image(http, sandbox, NEW, ai_version="beta").json()["image_id"]
    assert get_image(http, sandbox, stored, NEW)["ai_version"] == "beta"
    assert get_image(http, sandbox, stored, SDK)["ai_version"] == "5.x"  # shown in the SDK's enum


def test_enhance_type_authentic_only_very_old(http: requests.Session, sandbox: SandboxServer) -> None:
    assert post_image(http, sandbox, VERY_OLD, enhance_type="authentic").status_code == 200
    for version in (OLD, SDK, NEW, None):
        assert post_image(http, sandbox, version, enhance_type="authentic").status_code == 422


def test_low_cloud_low_sat_only_newer(http: requests.Session, sandbox: SandboxServer) -> None:
    created = post_image(http, sandbox, NEW, cloud_type="LOW_CLOUD_LOW_SAT")
    assert created.status_code == 200
    assert get_image(http, sandbox, created.json()["image_id"], SDK)["cloud_type"] == "LOW_CLOUD"
    assert post_image(http, sandbox, SDK, cloud_type="LOW_CLOUD_LOW_SAT").status_code == 422


def test_window_pull_type_from_2025_08_31(http: requests.Session, sandbox: SandboxServer) -> None:
    created = post_image(http, sandbox, "2025-08-31", window_pull_type="ONLY_WINDOWS")
    assert created.status_code == 200
    assert (created.json()["window_pull_type"], created.json()["window_pull"]) == ("ONLY_WINDOWS", True)
    assert "window_pull_type" not in get_image(http, sandbox, created.json()["image_id"], SDK)
    assert post_image(http, sandbox, "2025-08-31", window_pull_type="ALL").status_code == 422
    ignored = post_image(http, sandbox, SDK, window_pull_type="ONLY_WINDOWS")  # unknown there: dropped
    assert ignored.status_code == 200
    assert ignored.json()["window_pull"] is None
    sandbox.set_options(unknown_image_fields="reject")
    assert post_image(http, sandbox, SDK, window_pull_type="ONLY_WINDOWS").status_code == 422


def test_sdk_models_reject_what_newer_versions_return(http: requests.Session, sandbox: SandboxServer) -> None:
    """The oracle bites: an answer shaped for 2026 (``latest``) does not parse with SDK 1.1.0,
    which is why the sandbox shapes answers by the caller's pinned version."""
    from autoenhance import ImageOut

    image_id = post_image(http, sandbox, NEW).json()["image_id"]
    with pytest.raises(ValueError, match="ai_version"):
        ImageOut.from_dict(get_image(http, sandbox, image_id, NEW))
    assert ImageOut.from_dict(get_image(http, sandbox, image_id, SDK)).ai_version == "5.x"
