"""AutoenhanceHook: images, presigned uploads, reprocessing, reports and HDR brackets."""

from __future__ import annotations

import io
import tracemalloc

import pytest

from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceNotFoundError,
    AutoenhanceSourceError,
    AutoenhanceStorageError,
    AutoenhanceValidationError,
)
from support.api import FAKE_KEY, SIGNATURE, UPLOAD_URL, api, body_of, image, path_of

UPLOAD_BASE = UPLOAD_URL.split("?")[0]


def created_image(**fields):
    data = image("i-1", status="waiting", name="kitchen.jpg", order_id="o-1")
    data.update(fields)
    return data


# ------------------------------------------------------------------------------ create_image
def test_create_image_request_shape(hook, requests_mock):
    requests_mock.post(api("/v3/images/"), json=created_image(upload_url=UPLOAD_URL))

    result = hook.create_image("kitchen.jpg", order_id="o-1", content_type="image/jpeg")

    assert result["upload_url"] == UPLOAD_URL
    assert result["image_id"] == "i-1"
    req = requests_mock.last_request
    assert req.method == "POST"
    assert path_of(req) == "/v3/images/"
    assert req.headers["x-api-key"] == FAKE_KEY
    assert body_of(req) == {"image_name": "kitchen.jpg", "order_id": "o-1", "contentType": "image/jpeg"}


def test_create_image_without_order_or_content_type(hook, requests_mock):
    requests_mock.post(api("/v3/images/"), json=created_image(upload_url=UPLOAD_URL))

    hook.create_image("kitchen.jpg")

    assert body_of(requests_mock.last_request) == {"image_name": "kitchen.jpg"}


def test_create_image_validates_and_normalises_settings(hook, requests_mock):
    requests_mock.post(api("/v3/images/"), json=created_image(upload_url=UPLOAD_URL))

    hook.create_image(
        "kitchen.jpg",
        enhance_type=" Warm ",
        cloud_type="low_cloud",
        window_pull_type="windows_with_skies",
        sky_replacement="yes",
        vertical_correction="0",
        privacy=None,
        rating="4",
        ai_version=5.3,
        metadata={"listing": 7},
    )

    body = body_of(requests_mock.last_request)
    assert body == {
        "image_name": "kitchen.jpg",
        "enhance_type": "warm",
        "cloud_type": "LOW_CLOUD",
        "window_pull_type": "WINDOWS_WITH_SKIES",
        "sky_replacement": True,
        "vertical_correction": False,
        "privacy": None,
        "rating": 4,
        "ai_version": "5.3",
        "metadata": {"listing": 7},
    }


def test_create_image_legacy_s3_put_object_url_is_normalised(hook, requests_mock):
    requests_mock.post(api("/v3/images/"), json=created_image(s3PutObjectUrl=UPLOAD_URL))

    result = hook.create_image("kitchen.jpg")

    assert result["upload_url"] == UPLOAD_URL
    assert result["s3PutObjectUrl"] == UPLOAD_URL


def test_create_image_without_any_upload_url_is_an_error(hook, requests_mock):
    requests_mock.post(api("/v3/images/"), json=created_image())

    with pytest.raises(AutoenhanceAPIError, match="no upload URL"):
        hook.create_image("kitchen.jpg")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_name": ""}, "image_name"),
        ({"image_name": "a.jpg", "enhance_type": "sepia"}, "property, property_usa, warm, neutral"),
        ({"image_name": "a.jpg", "cloud_type": "STORMY"}, "CLEAR, LOW_CLOUD, HIGH_CLOUD"),
        ({"image_name": "a.jpg", "sky_replacement": "maybe"}, "sky_replacement must be true or false"),
        ({"image_name": "a.jpg", "rating": 6}, "rating must be between 0 and 5"),
        ({"image_name": "a.jpg", "metadata": "x"}, "metadata must be an object"),
        ({"image_name": "a.jpg", "order_id": ""}, "order_id"),
    ],
)
def test_create_image_rejects_bad_input_before_any_request(hook, requests_mock, kwargs, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        hook.create_image(**kwargs)
    assert requests_mock.call_count == 0


# ------------------------------------------------------------------------------ upload_file
def _recording_put(requests_mock, url=UPLOAD_BASE, status=200, read=True, **response):
    """A PUT mock that records the body's type and, like a socket would, streams it in chunks."""
    seen: list[dict] = []

    def respond(request, context):
        body = request.body
        info = {
            "type": type(body),
            "has_read": hasattr(body, "read"),
            "bytes": 0,
            "max_chunk": 0,
            "data": b"",
        }
        if read and hasattr(body, "read"):
            while chunk := body.read(1024 * 1024):
                info["bytes"] += len(chunk)
                info["max_chunk"] = max(info["max_chunk"], len(chunk))
                if len(info["data"]) < 64:
                    info["data"] += chunk[:64]
        seen.append(info)
        context.status_code = status
        return response.get("text", "")

    requests_mock.put(url, text=respond, headers=response.get("headers", {"ETag": '"etag-1"'}))
    return seen


def test_upload_file_puts_a_stream_without_the_api_key(hook, requests_mock, tmp_path):
    src = tmp_path / "kitchen.jpg"
    src.write_bytes(b"\xff\xd8\xff" + b"x" * 997)
    seen = _recording_put(requests_mock)

    result = hook.upload_file(UPLOAD_URL, src, "image/jpeg")

    assert result == {"bytes": 1000, "etag": '"etag-1"'}
    req = requests_mock.last_request
    assert req.method == "PUT"
    assert req.url == UPLOAD_URL  # signed query string sent untouched
    assert "x-api-key" not in {k.lower() for k in req.headers}
    assert req.headers["Content-Type"] == "image/jpeg"
    assert req.headers["Content-Length"] == "1000"
    assert seen[0]["has_read"]
    assert not isinstance(seen[0]["type"], (bytes, bytearray))
    assert seen[0]["bytes"] == 1000
    assert seen[0]["data"].startswith(b"\xff\xd8\xff")


def test_upload_file_streams_a_64_mib_file_without_reading_it_into_memory(hook, requests_mock, tmp_path):
    size = 64 * 1024 * 1024
    src = tmp_path / "huge.dng"
    with src.open("wb") as handle:
        handle.truncate(size)  # sparse: costs no disk, reads as zeros
    seen = _recording_put(requests_mock)

    tracemalloc.start()
    try:
        result = hook.upload_file(UPLOAD_URL, str(src), "image/x-adobe-dng")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result["bytes"] == size
    assert requests_mock.last_request.headers["Content-Length"] == str(size)
    assert seen[0]["has_read"]
    assert seen[0]["type"] not in (bytes, bytearray)
    assert seen[0]["bytes"] == size  # the whole file went out ...
    assert seen[0]["max_chunk"] <= 1024 * 1024  # ... a chunk at a time
    assert peak < 16 * 1024 * 1024, f"peak Python memory {peak / 2**20:.1f} MiB: file was read into memory"


def test_upload_file_accepts_a_file_object_from_its_current_position(hook, requests_mock):
    data = io.BytesIO(b"HEADERjpegbytes")
    data.seek(6)
    seen = _recording_put(requests_mock)

    result = hook.upload_file(UPLOAD_URL, data, "application/octet-stream")

    assert result["bytes"] == 9
    assert requests_mock.last_request.headers["Content-Length"] == "9"
    assert requests_mock.last_request.headers["Content-Type"] == "application/octet-stream"
    assert seen[0]["data"] == b"jpegbytes"


def test_upload_file_retry_rewinds_the_stream(hook, requests_mock, tmp_path, sleeps):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"0123456789")
    seen: list[bytes] = []

    def respond(request, context):
        seen.append(request.body.read())
        context.status_code = 503 if len(seen) == 1 else 200
        return ""

    requests_mock.put(UPLOAD_BASE, text=respond)

    assert hook.upload_file(UPLOAD_URL, src, "image/jpeg")["bytes"] == 10
    assert seen == [b"0123456789", b"0123456789"]


def test_upload_file_missing_source_is_a_source_error(hook, requests_mock, tmp_path):
    missing = tmp_path / "nope.jpg"

    with pytest.raises(AutoenhanceSourceError, match=r"Source file not found: .*nope\.jpg"):
        hook.upload_file(UPLOAD_URL, missing, "image/jpeg")
    assert requests_mock.call_count == 0


def test_upload_file_rejects_a_non_file_source(hook, requests_mock):
    with pytest.raises(AutoenhanceValidationError, match="path or a binary file object"):
        hook.upload_file(UPLOAD_URL, 12345, "image/jpeg")
    assert requests_mock.call_count == 0


def test_upload_signature_mismatch_is_a_storage_error_naming_the_code(hook, requests_mock, tmp_path):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"\xff\xd8\xffdata")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code>'
        "<Message>The request signature we calculated does not match the signature you provided."
        f"</Message><SignatureProvided>{SIGNATURE}</SignatureProvided>"
        f"<CanonicalRequest>PUT /uploads/img.jpg X-Amz-Signature={SIGNATURE}</CanonicalRequest></Error>"
    )
    _recording_put(requests_mock, status=403, text=xml, headers={"Content-Type": "application/xml"})

    with pytest.raises(AutoenhanceStorageError) as info:
        hook.upload_file(UPLOAD_URL, src, "image/png")

    text = str(info.value)
    assert "SignatureDoesNotMatch" in text
    assert "HTTP 403" in text
    assert "image/png" in text
    assert SIGNATURE not in text
    assert SIGNATURE not in repr(info.value)
    assert "bucket.s3.amazonaws.test/uploads/img.jpg" in text
    assert "application/octet-stream" in text  # the other signing the sources describe was tried
    types = [r.headers["Content-Type"] for r in requests_mock.request_history]
    assert types == ["image/png", "application/octet-stream"]  # once each, never more


def test_upload_redirect_is_not_mistaken_for_success(hook, requests_mock, tmp_path):
    # A streamed body cannot be re-sent to a redirect target, so the file was NOT stored.
    src = tmp_path / "a.jpg"
    src.write_bytes(b"\xff\xd8\xffdata")
    requests_mock.put(
        UPLOAD_BASE,
        status_code=307,
        headers={"Location": "https://bucket.s3.eu-west-1.amazonaws.test/uploads/img.jpg?X-Amz-Signature=x"},
    )

    with pytest.raises(AutoenhanceStorageError, match="HTTP 307") as info:
        hook.upload_file(UPLOAD_URL, src, "image/jpeg")

    assert SIGNATURE not in str(info.value)
    assert "X-Amz-Signature=x" not in str(info.value)
    assert requests_mock.call_count == 1


# ------------------------------------------------------------------------------ get / reprocess / delete
def test_get_image(hook, requests_mock):
    requests_mock.get(api("/v3/images/i-1"), json=image("i-1"))

    assert hook.get_image("i-1")["status"] == "processed"
    assert path_of(requests_mock.last_request) == "/v3/images/i-1"
    assert requests_mock.last_request.method == "GET"


def test_reprocess_image_posts_validated_settings(hook, requests_mock):
    requests_mock.post(api("/v3/images/i-1/process"), json=image("i-1", status="processing"))

    result = hook.reprocess_image("i-1", enhance_type="NEUTRAL", lens_correction=False)

    assert result["status"] == "processing"
    req = requests_mock.last_request
    assert req.method == "POST"
    assert path_of(req) == "/v3/images/i-1/process"
    assert body_of(req) == {"enhance_type": "neutral", "lens_correction": False}
    assert requests_mock.call_count == 1


def test_reprocess_image_falls_back_to_patch_on_405(hook, requests_mock):
    requests_mock.post(api("/v3/images/i-1/process"), status_code=405, json={"message": "Method Not Allowed"})
    requests_mock.patch(api("/v3/images/i-1/process"), json=image("i-1", status="processing"))

    hook.reprocess_image("i-1", sky_replacement=True)

    assert [r.method for r in requests_mock.request_history] == ["POST", "PATCH"]
    assert body_of(requests_mock.last_request) == {"sky_replacement": True}


def test_reprocess_image_other_client_errors_do_not_fall_back(hook, requests_mock):
    requests_mock.post(api("/v3/images/i-1/process"), status_code=404, json={"message": "Not Found"})
    patch = requests_mock.patch(api("/v3/images/i-1/process"), json={})

    with pytest.raises(AutoenhanceNotFoundError):
        hook.reprocess_image("i-1")
    assert patch.call_count == 0


def test_reprocess_image_bad_setting_sends_nothing(hook, requests_mock):
    with pytest.raises(AutoenhanceValidationError, match="allowed values"):
        hook.reprocess_image("i-1", cloud_type="PURPLE")
    assert requests_mock.call_count == 0


def test_delete_image(hook, requests_mock):
    requests_mock.delete(api("/v3/images/i-1"), status_code=204)

    assert hook.delete_image("i-1") is None
    assert requests_mock.last_request.method == "DELETE"
    assert path_of(requests_mock.last_request) == "/v3/images/i-1"


def test_delete_image_missing(hook, requests_mock):
    requests_mock.delete(api("/v3/images/i-1"), status_code=404, json={"message": "Not Found"})

    with pytest.raises(AutoenhanceNotFoundError):
        hook.delete_image("i-1")
    hook.delete_image("i-1", missing_ok=True)
    assert requests_mock.call_count == 2


# ------------------------------------------------------------------------------ report
def test_report_image_request_shape(hook, requests_mock):
    requests_mock.post(api("/v3/images/i-1/report"), json={"ok": True})

    assert hook.report_image("i-1", ["sky_replacement", "Noise"], comment="grainy", score="2") == {"ok": True}

    req = requests_mock.last_request
    assert path_of(req) == "/v3/images/i-1/report"
    assert body_of(req) == {
        "categories": ["SKY_REPLACEMENT", "NOISE"],
        "source": "API",
        "comment": "grainy",
        "score": 2,
    }


def test_report_image_single_category_string_and_empty_answer(hook, requests_mock):
    requests_mock.post(api("/v3/images/i-1/report"), status_code=200, text="")

    assert hook.report_image("i-1", "OTHER") == {}
    assert body_of(requests_mock.last_request) == {"categories": ["OTHER"], "source": "API"}


@pytest.mark.parametrize(
    ("categories", "score", "match"),
    [
        (["BLURRY"], None, "allowed values: AUTO_PRIVACY"),
        ([], None, "at least one category"),
        (["OTHER"], 6, "score must be between 0 and 5"),
        (["OTHER"], -1, "score must be between 0 and 5"),
        (["OTHER"], "high", "score must be a whole number"),
    ],
)
def test_report_image_validation(hook, requests_mock, categories, score, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        hook.report_image("i-1", categories, score=score)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("score", [0, 5])
def test_report_image_score_bounds_are_inclusive(hook, requests_mock, score):
    requests_mock.post(api("/v3/images/i-1/report"), json={})

    hook.report_image("i-1", ["OTHER"], score=score)

    assert body_of(requests_mock.last_request)["score"] == score


# ------------------------------------------------------------------------------ brackets
def test_create_bracket_request_shape(hook, requests_mock):
    requests_mock.post(
        api("/v3/brackets/"),
        json={
            "bracket_id": "b-1",
            "name": "ev0.jpg",
            "order_id": "o-1",
            "is_uploaded": False,
            "upload_url": "u",
        },
    )

    result = hook.create_bracket("o-1", "ev0.jpg", metadata={"ev": 0})

    assert result["bracket_id"] == "b-1"
    assert result["upload_url"] == "u"
    req = requests_mock.last_request
    assert req.method == "POST"
    assert path_of(req) == "/v3/brackets/"
    assert body_of(req) == {"order_id": "o-1", "name": "ev0.jpg", "metadata": {"ev": 0}}


def test_create_bracket_accepts_legacy_upload_key(hook, requests_mock):
    requests_mock.post(api("/v3/brackets/"), json={"bracket_id": "b-1", "s3PutObjectUrl": "legacy"})

    assert hook.create_bracket("o-1", "ev0.jpg")["upload_url"] == "legacy"
    assert body_of(requests_mock.last_request) == {"order_id": "o-1", "name": "ev0.jpg"}


@pytest.mark.parametrize(
    ("args", "match"),
    [(("o-1", ""), "bracket name"), (("", "a.jpg"), "order_id"), (("o-1", "a.jpg", ["x"]), "metadata")],
)
def test_create_bracket_validation(hook, requests_mock, args, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        hook.create_bracket(*args)
    assert requests_mock.call_count == 0


def test_list_brackets(hook, requests_mock):
    brackets = [{"bracket_id": "b-1", "name": "a", "is_uploaded": True}, {"bracket_id": "b-2", "name": "b"}]
    requests_mock.get(api("/v3/orders/o-1/brackets"), json={"brackets": brackets})

    assert hook.list_brackets("o-1") == brackets
    assert path_of(requests_mock.last_request) == "/v3/orders/o-1/brackets"
    assert requests_mock.last_request.method == "GET"


def test_list_brackets_accepts_a_bare_list(hook, requests_mock):
    requests_mock.get(api("/v3/orders/o-1/brackets"), json=[{"bracket_id": "b-1"}])

    assert hook.list_brackets("o-1") == [{"bracket_id": "b-1"}]
