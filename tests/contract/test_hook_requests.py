"""Every request body the real hook sends is one the official SDK 1.1.0 would build.

The bodies are captured with requests-mock from :class:`AutoenhanceHook` on an environment
connection pinned to the SDK's version (``2025-05-08``) and parsed with the SDK's request models
(``OrderIn``, ``ImageIn``, ``ImageInUpdate``, ``BracketIn``, ``ReportIn``, ``OrderHDRProcessIn``,
``OrderHDRMerge``). A key the model does not declare must be one of :data:`DELIBERATE`, the one
version-gated list of deliberate differences (repeated in docs/contract.md, "Request bodies").
Nothing here is skipped: a failure is a body the API may refuse.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
import requests_mock as rm

from autoenhance_provider.exceptions import AutoenhanceValidationError
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

SDK_PIN = "2025-05-08"  # what autoenhance 1.1.0 sends as x-api-version
BASE_URL = "https://api.autoenhance.test"
UPLOAD_URL = "https://bucket.s3.amazonaws.test/u/x.jpg?X-Amz-Signature=abc"


class Difference(NamedTuple):
    """A key the hook may send although the SDK model does not declare it."""

    model: str
    field: str
    since: dt.date | None  # first API version that knows it (None: every version)
    source: str  # reference tag (/work/shared/reference/autoenhance-api.md)


#: The deliberate differences from the SDK 1.1.0 request models, by API version.
DELIBERATE: tuple[Difference, ...] = (
    # The presigned URL is signed for the type named at create time; every DOCS/EX sample sends
    # the camelCase key, SDK-2502 had content_type, SDK 1.1.0 has neither (reference §4.2, §13 #15).
    Difference("ImageIn", "contentType", None, "DOCS creating-and-uploading, EX; §13 #15"),
    # Image settings the SDK 1.1.0 model lost or never had, sent only when the user sets them.
    Difference("ImageIn", "hdr", None, "SDK-2410/2502 ImageIn; §4.2"),
    Difference("ImageIn", "preset_id", None, "DOCS create spec; §4.2"),
    Difference("ImageIn", "restage", None, "DOCS create spec, 3P-notes; §4.1, §4.2"),
    Difference("ImageInUpdate", "hdr", None, "SDK-2410/2502 ImageIn; §4.2"),
    Difference("ImageInUpdate", "preset_id", None, "DOCS create spec; §4.2"),
    Difference("ImageInUpdate", "restage", None, "DOCS create spec; §4.2"),
    # Newer than the SDK's pin (DOCS /api-versions 2025-08-31 "Window Pull Types"; §9).
    Difference("ImageIn", "window_pull_type", dt.date(2025, 8, 31), "DOCS api-versions; §9"),
    Difference("ImageInUpdate", "window_pull_type", dt.date(2025, 8, 31), "DOCS api-versions; §9"),
    Difference("OrderHDRProcessIn", "window_pull_type", dt.date(2025, 8, 31), "DOCS api-versions; §9"),
    Difference("OrderHDRMerge", "window_pull_type", dt.date(2025, 8, 31), "DOCS api-versions; §9"),
)

#: Every image setting the SDK 1.1.0 ``ImageIn`` declares, with a value it accepts.
SDK_IMAGE_SETTINGS: dict[str, Any] = {
    "ai_version": "5.x",
    "cloud_type": "HIGH_CLOUD",
    "enhance": True,
    "enhance_type": "modern",
    "finetune_settings": {"exposure": 0.2},
    "lens_correction": False,
    "metadata": {"listing": "42"},
    "privacy": True,
    "rating": 4,
    "sky_replacement": True,
    "threesixty": False,
    "upscale": True,
    "vertical_correction": True,
    "window_pull": True,
}
#: Every setting the SDK 1.1.0 ``OrderHDRProcessIn`` declares (grouping keys aside).
SDK_PROCESS_SETTINGS: dict[str, Any] = {
    k: v
    for k, v in SDK_IMAGE_SETTINGS.items()
    if k not in {"finetune_settings", "metadata", "rating", "threesixty"}
}


#: SDK request model -> module (``OrderHDRMerge`` is not re-exported by ``autoenhance.models``).
SDK_MODULES = {
    "OrderIn": "order_in",
    "ImageIn": "image_in",
    "ImageInUpdate": "image_in_update",
    "BracketIn": "bracket_in",
    "ReportIn": "report_in",
    "OrderHDRProcessIn": "order_hdr_process_in",
    "OrderHDRMerge": "order_hdr_merge",
}


def sdk_model(name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(f"autoenhance.models.{SDK_MODULES[name]}"), name)


def deliberate(model: str, version: str | None) -> set[str]:
    pinned = dt.date.fromisoformat(version) if version else None
    return {
        d.field
        for d in DELIBERATE
        if d.model == model and (d.since is None or pinned is None or pinned >= d.since)
    }


def assert_sdk_body(model_name: str, body: Any, version: str | None = SDK_PIN) -> None:
    """``body`` parses with the SDK model, and every key is declared or a deliberate difference."""
    model = sdk_model(model_name)
    assert isinstance(body, dict), body
    declared = set(model.model_fields) - {"additional_properties"}
    undeclared = set(body) - declared - deliberate(model_name, version)
    assert not undeclared, f"{model_name} does not declare {sorted(undeclared)} (API version {version})"
    model.from_dict({k: v for k, v in body.items() if k in declared})  # strict types and enums


def sent(mocker: rm.Mocker, method: str, path: str) -> list[Any]:
    """JSON bodies of the captured requests to ``method path``."""
    bodies = []
    for request in mocker.request_history:
        if request.method == method and request.path.rstrip("/") == path.lower().rstrip("/"):
            bodies.append(json.loads(request.body) if request.body else None)
    assert bodies, f"no {method} {path} was sent"
    return bodies


def connect(monkeypatch: pytest.MonkeyPatch, api_version: str | None) -> AutoenhanceHook:
    extra = {"api_version": api_version} if api_version else {}
    conn = {
        "conn_type": "autoenhance",
        "password": "ae-test-KEY",
        "host": BASE_URL,
        "extra": json.dumps(extra),
    }
    monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(conn))
    return AutoenhanceHook(retry_delay=0, retry_max_delay=0)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[AutoenhanceHook]:
    h = connect(monkeypatch, SDK_PIN)
    yield h
    h.close()


@pytest.fixture
def api(requests_mock: rm.Mocker) -> rm.Mocker:
    """The API's answers the hook needs to get on (their bodies are not under test here)."""
    order = {"order_id": "o-1", "name": "n", "status": "waiting", "images": [], "is_merging": False}
    requests_mock.post(f"{BASE_URL}/v3/orders/", json=order)
    requests_mock.get(f"{BASE_URL}/v3/orders/o-1", json=order)
    requests_mock.patch(f"{BASE_URL}/v3/orders/o-1", json=order)
    requests_mock.post(f"{BASE_URL}/v3/orders/o-1/process", json={**order, "is_merging": True})
    requests_mock.post(f"{BASE_URL}/v3/orders/o-1/merge", json={**order, "is_merging": True})
    requests_mock.get(f"{BASE_URL}/v3/orders/", json={"orders": [], "pagination": {"next_offset": None}})
    requests_mock.post(
        f"{BASE_URL}/v3/images/",
        json={"image_id": "i-1", "order_id": "o-1", "image_name": "a.jpg", "upload_url": UPLOAD_URL},
    )
    requests_mock.post(f"{BASE_URL}/v3/images/i-1/process", json={"image_id": "i-1", "status": "processing"})
    requests_mock.post(f"{BASE_URL}/v3/images/i-1/report", json={})
    requests_mock.post(
        f"{BASE_URL}/v3/brackets/",
        json={"bracket_id": "b-1", "name": "ev0.jpg", "order_id": "o-1", "upload_url": UPLOAD_URL},
    )
    return requests_mock


# ------------------------------------------------------------------------------ orders
def test_create_order_body(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.create_order(name="Listing 1", order_id="o-1")
    hook.create_order()
    hook.ensure_order("o-1", name="Listing 1")

    for body in sent(api, "POST", "/v3/orders/"):
        assert_sdk_body("OrderIn", body)


def test_update_order_body(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.update_order("o-1", "Renamed")

    (body,) = sent(api, "PATCH", "/v3/orders/o-1")
    assert_sdk_body("OrderIn", body)


# ------------------------------------------------------------------------------ images
def test_create_image_body_with_every_sdk_setting(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.create_image("a.jpg", order_id="o-1", content_type="image/jpeg", **SDK_IMAGE_SETTINGS)

    (body,) = sent(api, "POST", "/v3/images/")
    assert_sdk_body("ImageIn", body)
    assert {k: body[k] for k in SDK_IMAGE_SETTINGS} == SDK_IMAGE_SETTINGS
    assert body["contentType"] == "image/jpeg"  # deliberate: the upload is signed for it


def test_create_image_body_with_the_documented_extras(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.create_image("a.jpg", order_id="o-1", hdr=False, preset_id="p-1", restage={"tvs": "BLACK_OUT"})

    (body,) = sent(api, "POST", "/v3/images/")
    assert_sdk_body("ImageIn", body)


def test_create_image_normalises_values_to_the_sdk_spelling(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.create_image(
        "a.jpg", enhance_type="WARM", cloud_type="clear", ai_version="5.X", rating="3", privacy="yes"
    )

    (body,) = sent(api, "POST", "/v3/images/")
    assert_sdk_body("ImageIn", body)
    assert (body["enhance_type"], body["cloud_type"], body["ai_version"]) == ("warm", "CLEAR", "5.x")


def test_reprocess_image_body(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.reprocess_image("i-1", **SDK_IMAGE_SETTINGS)

    (body,) = sent(api, "POST", "/v3/images/i-1/process")
    assert_sdk_body("ImageInUpdate", body)


def test_reprocess_image_patch_fallback_body(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    api.post(f"{BASE_URL}/v3/images/i-1/process", status_code=405, json={"message": "Method Not Allowed"})
    api.patch(f"{BASE_URL}/v3/images/i-1/process", json={"image_id": "i-1"})

    hook.reprocess_image("i-1", enhance_type="neutral", sky_replacement=False)

    (body,) = sent(api, "PATCH", "/v3/images/i-1/process")
    assert_sdk_body("ImageInUpdate", body)


def test_report_image_body(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.report_image("i-1", ["noise", "SKY_REPLACEMENT"], comment="too dark", score=2)
    hook.report_image("i-1", "other")

    for body in sent(api, "POST", "/v3/images/i-1/report"):
        assert_sdk_body("ReportIn", body)


# ------------------------------------------------------------------------------ brackets and HDR
def test_create_bracket_body(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.create_bracket("o-1", "ev0.jpg", metadata={"ev": 0})
    hook.create_bracket("o-1", "ev-2.jpg")

    for body in sent(api, "POST", "/v3/brackets/"):
        assert_sdk_body("BracketIn", body)


def test_process_order_body_with_settings_and_a_bracket_count(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.process_order("o-1", number_of_brackets_per_image=3, **SDK_PROCESS_SETTINGS)

    (body,) = sent(api, "POST", "/v3/orders/o-1/process")
    assert_sdk_body("OrderHDRProcessIn", body)
    assert body["number_of_brackets_per_image"] == 3


def test_process_order_body_with_explicit_groups(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.process_order("o-1", images=[["b-1", "b-2"], {"bracket_ids": ["b-3"]}], enhance_type="warm")

    (body,) = sent(api, "POST", "/v3/orders/o-1/process")
    assert_sdk_body("OrderHDRProcessIn", body)
    assert body["images"] == [{"bracket_ids": ["b-1", "b-2"]}, {"bracket_ids": ["b-3"]}]


def test_process_order_merge_fallback_body(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    api.post(f"{BASE_URL}/v3/orders/o-1/process", status_code=405, json={"message": "Method Not Allowed"})

    hook.process_order("o-1", enhance_type="neutral", ai_version="4.x", privacy=True)

    (body,) = sent(api, "POST", "/v3/orders/o-1/merge")
    assert_sdk_body("OrderHDRMerge", body)


def test_process_order_refuses_image_only_settings_before_sending(
    hook: AutoenhanceHook, api: rm.Mocker
) -> None:
    """``OrderHDRProcessIn`` has no ``threesixty``: the API answers 422 ``Unknown field.``."""
    with pytest.raises(AutoenhanceValidationError, match="threesixty"):
        hook.process_order("o-1", threesixty=True)
    assert not [r for r in api.request_history if r.path.endswith("/process")]


# ------------------------------------------------------------------------------ versions
def test_a_setting_newer_than_the_pinned_version_is_refused_before_sending(
    hook: AutoenhanceHook, api: rm.Mocker
) -> None:
    """Pinned to 2025-05-08, ``window_pull_type`` (2025-08-31) is unknown to the API."""
    with pytest.raises(AutoenhanceValidationError, match="window_pull_type"):
        hook.create_image("a.jpg", window_pull_type="ONLY_WINDOWS")
    with pytest.raises(AutoenhanceValidationError, match="window_pull_type"):
        hook.process_order("o-1", window_pull_type="NONE")
    with pytest.raises(AutoenhanceValidationError, match="latest"):
        hook.reprocess_image("i-1", ai_version="latest")
    assert api.call_count == 0


def test_window_pull_type_is_sent_from_its_version_on(
    monkeypatch: pytest.MonkeyPatch, api: rm.Mocker
) -> None:
    hook = connect(monkeypatch, "2025-08-31")
    try:
        hook.create_image("a.jpg", window_pull_type="only_windows")
        hook.process_order("o-1", window_pull_type="NONE")
    finally:
        hook.close()

    (image,) = sent(api, "POST", "/v3/images/")
    assert_sdk_body("ImageIn", image, version="2025-08-31")
    assert image["window_pull_type"] == "ONLY_WINDOWS"
    (process,) = sent(api, "POST", "/v3/orders/o-1/process")
    assert_sdk_body("OrderHDRProcessIn", process, version="2025-08-31")


def test_the_pinned_version_is_the_header_sent(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    hook.create_order(name="x")

    assert api.last_request.headers["x-api-version"] == SDK_PIN


def test_pass_through_fields_are_sent_flat(hook: AutoenhanceHook, api: rm.Mocker) -> None:
    """``settings["pass_through"]`` is the user's explicit opt-in: its keys go into the body as given."""
    hook.create_image("a.jpg", enhance_type="warm", pass_through={"window_pull_style": "SOFT"})

    (body,) = sent(api, "POST", "/v3/images/")
    assert "pass_through" not in body
    assert body["window_pull_style"] == "SOFT"
    assert_sdk_body("ImageIn", {k: v for k, v in body.items() if k != "window_pull_style"})


# ------------------------------------------------------------------------------ query parameters
@pytest.mark.parametrize("per_page", [1, 15, 16, 50])
def test_list_orders_never_asks_for_more_than_15_per_page(
    hook: AutoenhanceHook, api: rm.Mocker, per_page: int
) -> None:
    """SDK 1.1.0 declares ``per_page`` ``le=15``: more is refused before sending, or never sent."""
    refused: AutoenhanceValidationError | None = None
    try:
        list(hook.list_orders(per_page=per_page))
    except AutoenhanceValidationError as exc:
        refused = exc
    if refused is not None:
        assert per_page > 15, refused
        assert api.call_count == 0
    else:
        assert 1 <= int(api.last_request.qs["per_page"][0]) <= 15


def test_the_deliberate_differences_are_unknown_to_the_sdk() -> None:
    """The list stays honest: each entry is a key the SDK model really lacks."""
    for difference in DELIBERATE:
        assert difference.field not in sdk_model(difference.model).model_fields, difference
