"""AutoenhanceHook.download_image: kinds, parameters, redirects, indirect bodies and atomic writes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import requests

from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceConnectionError,
    AutoenhanceError,
    AutoenhanceNotFoundError,
    AutoenhanceValidationError,
)
from support.api import FAKE_KEY, api, path_of, query_of

JPEG = b"\xff\xd8\xff\xe0" + b"J" * 2000 + b"\xff\xd9"  # ends with the EOI marker: complete
CDN = "https://assets.autoenhance-cdn.test/render/i-1.jpg"
SIGNED_CDN = f"{CDN}?X-Amz-Signature=abc123sig&X-Amz-Expires=300"


def keyed(request) -> bool:
    return "x-api-key" in {k.lower() for k in request.headers}


class BrokenBody(io.RawIOBase):
    """A response body that dies after ``good`` bytes, like a dropped connection mid-download."""

    def __init__(self, good: bytes) -> None:
        self._good = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def read(self, amt: int = -1) -> bytes:
        chunk = self._good.read(amt if amt and amt > 0 else -1)
        if chunk:
            return chunk
        raise ConnectionResetError(104, "Connection reset by peer")


# ------------------------------------------------------------------------------ kinds and params
@pytest.mark.parametrize("refusal", [404, 405])
def test_preview_falls_back_to_the_older_preview_route(hook, requests_mock, tmp_path, refusal):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"), status_code=refusal, json={"message": "no", "detail": {}}
    )
    older = requests_mock.get(
        api("/v3/images/i-1/preview"), content=JPEG, headers={"Content-Type": "image/jpeg"}
    )

    result = hook.download_image("i-1", tmp_path / "p.jpg", kind="preview")

    assert (result["kind"], older.call_count) == ("preview", 1)
    assert (tmp_path / "p.jpg").read_bytes() == JPEG


@pytest.mark.parametrize("kind", ["original", "enhanced", "preview"])
def test_download_kinds_request_shape(hook, requests_mock, tmp_path, kind):
    route = "enhanced" if kind == "preview" else kind  # the current spec: /enhanced?preview=true
    requests_mock.get(api(f"/v3/images/i-1/{route}"), content=JPEG, headers={"Content-Type": "image/jpeg"})
    dest = tmp_path / "out" / "i-1.jpg"

    result = hook.download_image("i-1", dest, kind=kind)

    assert result == {
        "image_id": "i-1",
        "kind": kind,
        "bytes": len(JPEG),
        "content_type": "image/jpeg",
        "destination": str(dest),
    }
    assert dest.read_bytes() == JPEG
    req = requests_mock.last_request
    assert req.method == "GET"
    assert path_of(req) == f"/v3/images/i-1/{route}"
    assert req.headers["x-api-key"] == FAKE_KEY
    assert query_of(req) == ({"preview": ["true"]} if kind == "preview" else {})


def test_download_default_kind_is_enhanced(hook, requests_mock):
    requests_mock.get(api("/v3/images/i-1/enhanced"), content=JPEG, headers={"Content-Type": "image/jpeg"})

    assert hook.download_image("i-1", io.BytesIO())["kind"] == "enhanced"


def test_download_kind_is_normalised_in_the_path(hook, requests_mock):
    requests_mock.get(api("/v3/images/i-1/enhanced"), content=JPEG, headers={"Content-Type": "image/jpeg"})

    result = hook.download_image("i-1", io.BytesIO(), kind=" Enhanced ")

    assert urlpath(requests_mock.last_request.url) == "/v3/images/i-1/enhanced"
    assert result["kind"] == "enhanced"


def urlpath(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def test_download_rendering_params_are_validated_and_sent(hook, requests_mock):
    requests_mock.get(api("/v3/images/i-1/enhanced"), content=JPEG, headers={"Content-Type": "image/jpeg"})

    hook.download_image(
        "i-1",
        io.BytesIO(),
        format="JPG",
        quality="80",
        max_width=1024,
        scale=0.5,
        preview=False,
        watermark="no",
    )

    assert query_of(requests_mock.last_request) == {
        "format": ["jpeg"],
        "quality": ["80"],
        "max_width": ["1024"],
        "scale": ["0.5"],
        "preview": ["false"],
        "watermark": ["false"],
    }


def test_download_none_params_are_left_out(hook, requests_mock):
    requests_mock.get(api("/v3/images/i-1/original"), content=JPEG, headers={"Content-Type": "image/jpeg"})

    hook.download_image("i-1", io.BytesIO(), kind="original", quality=None, format=None)

    assert query_of(requests_mock.last_request) == {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"kind": "thumbnail"},
            r"Invalid download kind 'thumbnail'; allowed values: original, enhanced, preview",
        ),
        ({"quality": 0}, "quality must be between 1 and 90, got 0"),
        ({"quality": 91}, "quality must be between 1 and 90, got 91"),
        ({"format": "gif"}, "allowed values: jpeg, png, webp"),
        ({"scale": 0}, "scale must be greater than 0"),
        ({"scale": 1.5}, "scale must be between"),
        ({"max_width": 0}, "max_width must be at least 1"),
        ({"preview": "perhaps"}, "preview must be true or false"),
        ({"size": "huge"}, "allowed values: small, large, big"),
        ({"dpi": 300}, r"Unknown download parameter 'dpi'; allowed: format, quality"),
    ],
)
def test_download_bad_params_fail_before_any_request_or_file(hook, requests_mock, tmp_path, kwargs, match):
    dest = tmp_path / "new-dir" / "x.jpg"

    with pytest.raises(AutoenhanceValidationError, match=match) as info:
        hook.download_image("i-1", dest, **kwargs)

    assert requests_mock.call_count == 0
    assert not dest.exists()
    assert FAKE_KEY not in str(info.value)


def test_download_404_is_not_found_and_leaves_no_file(hook, requests_mock, tmp_path):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"), status_code=404, json={"message": "Not Found", "detail": {}}
    )
    dest = tmp_path / "i-1.jpg"

    with pytest.raises(AutoenhanceNotFoundError):
        hook.download_image("i-1", dest)

    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ redirects
def test_redirect_to_another_host_drops_the_key_and_keeps_the_signed_url(hook, requests_mock):
    requests_mock.get(api("/v3/images/i-1/enhanced"), status_code=302, headers={"Location": SIGNED_CDN})
    requests_mock.get(CDN, content=JPEG, headers={"Content-Type": "image/jpeg"})
    out = io.BytesIO()

    result = hook.download_image("i-1", out, format="png", quality=70)

    assert out.getvalue() == JPEG
    assert result["bytes"] == len(JPEG)
    first, second = requests_mock.request_history
    assert keyed(first)
    assert query_of(first) == {"format": ["png"], "quality": ["70"]}
    assert not keyed(second), "the API key was sent to the asset host"
    # The presigned Location must be requested exactly as given: adding the rendering
    # parameters again would invalidate its signature.
    assert second.url == SIGNED_CDN


def test_redirect_chain_api_to_asset_server_to_storage(hook, requests_mock):
    requests_mock.get(api("/v3/images/i-1/enhanced"), status_code=302, headers={"Location": CDN})
    requests_mock.get(CDN, status_code=307, headers={"Location": "https://s3.storage.test/b/i-1.jpg?sig=1"})
    requests_mock.get(
        "https://s3.storage.test/b/i-1.jpg", content=JPEG, headers={"Content-Type": "image/jpeg"}
    )

    hook.download_image("i-1", io.BytesIO())

    history = requests_mock.request_history
    assert [keyed(r) for r in history] == [True, False, False]
    assert history[-1].url == "https://s3.storage.test/b/i-1.jpg?sig=1"


def test_same_host_redirect_keeps_the_key(hook, requests_mock):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        status_code=302,
        headers={"Location": "/v3/images/i-1/enhanced/render"},
    )
    requests_mock.get(
        api("/v3/images/i-1/enhanced/render"), content=JPEG, headers={"Content-Type": "image/jpeg"}
    )

    hook.download_image("i-1", io.BytesIO())

    second = requests_mock.last_request
    assert path_of(second) == "/v3/images/i-1/enhanced/render"
    assert second.headers["x-api-key"] == FAKE_KEY


def test_redirect_to_other_port_of_same_host_drops_the_key(hook, requests_mock):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        status_code=302,
        headers={"Location": "https://api.autoenhance.test:8443/v3/images/i-1/raw"},
    )
    requests_mock.get("https://api.autoenhance.test:8443/v3/images/i-1/raw", content=JPEG)

    hook.download_image("i-1", io.BytesIO())

    assert not keyed(requests_mock.last_request)


def test_redirect_downgrading_to_plain_http_is_refused_before_any_request(hook, requests_mock):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        status_code=302,
        headers={"Location": "http://api.autoenhance.test/v3/images/i-1/raw"},
    )
    plain = requests_mock.get("http://api.autoenhance.test/v3/images/i-1/raw", content=JPEG)

    with pytest.raises(AutoenhanceAPIError, match="refusing plain http:// to another machine"):
        hook.download_image("i-1", io.BytesIO())
    assert plain.call_count == 0


def test_endless_redirects_are_an_error(hook, requests_mock):
    requests_mock.get(api("/v3/images/i-1/enhanced"), status_code=302, headers={"Location": CDN})
    requests_mock.get(CDN, status_code=302, headers={"Location": CDN})

    with pytest.raises(AutoenhanceAPIError, match="too many redirects"):
        hook.download_image("i-1", io.BytesIO())
    assert requests_mock.call_count <= 7


# ------------------------------------------------------------------------------ indirect bodies
def test_json_body_naming_the_image_url_is_followed_without_key(hook, requests_mock):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        json={"image_url": SIGNED_CDN},
        headers={"Content-Type": "application/json"},
    )
    requests_mock.get(CDN, content=JPEG, headers={"Content-Type": "image/jpeg"})
    out = io.BytesIO()

    hook.download_image("i-1", out)

    assert out.getvalue() == JPEG
    assert requests_mock.last_request.url == SIGNED_CDN
    assert not keyed(requests_mock.last_request)


def test_flask_html_redirect_page_is_followed(hook, requests_mock):
    html = (
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n"
        f'<p>You should be redirected automatically to the target URL: <a href="{CDN}">{CDN}</a>. '
        "If not, click the link.\n"
    )
    requests_mock.get(
        api("/v3/images/i-1/enhanced"), text=html, headers={"Content-Type": "text/html; charset=utf-8"}
    )
    requests_mock.get(CDN, content=JPEG, headers={"Content-Type": "image/jpeg"})
    out = io.BytesIO()

    hook.download_image("i-1", out)

    assert out.getvalue() == JPEG
    assert not keyed(requests_mock.last_request)


def test_json_body_without_an_image_url_is_an_error(hook, requests_mock, tmp_path):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        json={"status": "processing"},
        headers={"Content-Type": "application/json"},
    )
    dest = tmp_path / "i-1.jpg"

    with pytest.raises(AutoenhanceAPIError, match="expected image bytes"):
        hook.download_image("i-1", dest)
    assert not dest.exists()


# ------------------------------------------------------------------------------ writing
def test_download_to_a_path_is_atomic_and_replaces_an_old_file(hook, requests_mock, tmp_path):
    dest = tmp_path / "i-1.jpg"
    dest.write_bytes(b"old content")
    requests_mock.get(api("/v3/images/i-1/enhanced"), content=JPEG, headers={"Content-Type": "image/jpeg"})

    hook.download_image("i-1", dest)

    assert dest.read_bytes() == JPEG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i-1.jpg"]


def test_download_broken_mid_stream_is_retried_and_the_file_is_whole(hook, requests_mock, tmp_path, sleeps):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        [
            {"body": BrokenBody(JPEG[:500]), "headers": {"Content-Type": "image/jpeg"}},
            {"content": JPEG, "headers": {"Content-Type": "image/jpeg"}},
        ],
    )
    dest = tmp_path / "i-1.jpg"

    result = hook.download_image("i-1", dest)

    assert result["bytes"] == len(JPEG)
    assert dest.read_bytes() == JPEG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i-1.jpg"]
    assert requests_mock.call_count == 2


def test_download_that_keeps_breaking_leaves_neither_file_nor_temp(
    make_hook, requests_mock, tmp_path, sleeps
):
    hook = make_hook(retry_limit=2)
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        [{"body": BrokenBody(JPEG[:100]), "headers": {"Content-Type": "image/jpeg"}} for _ in range(3)],
    )
    dest = tmp_path / "i-1.jpg"

    with pytest.raises(AutoenhanceConnectionError):
        hook.download_image("i-1", dest)

    assert list(tmp_path.iterdir()) == []
    assert requests_mock.call_count == 3


def test_download_to_a_file_object_rewinds_on_retry(hook, requests_mock, sleeps):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        [
            {"body": BrokenBody(JPEG[:300]), "headers": {"Content-Type": "image/jpeg"}},
            {"content": JPEG, "headers": {"Content-Type": "image/jpeg"}},
        ],
    )
    out = io.BytesIO()
    out.write(b"PREFIX")

    result = hook.download_image("i-1", out)

    assert result["destination"] is None
    assert out.getvalue() == b"PREFIX" + JPEG


def test_download_to_an_unseekable_stream_is_not_retried_after_partial_write(hook, requests_mock, sleeps):
    class Pipe:
        def __init__(self) -> None:
            self.data = b""

        def write(self, chunk: bytes) -> int:
            self.data += chunk
            return len(chunk)

        def seekable(self) -> bool:
            return False

    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        [
            {"body": BrokenBody(JPEG[:300]), "headers": {"Content-Type": "image/jpeg"}},
            {"content": JPEG, "headers": {"Content-Type": "image/jpeg"}},
        ],
    )

    with pytest.raises(AutoenhanceConnectionError):
        hook.download_image("i-1", Pipe())
    assert requests_mock.call_count == 1


def test_destination_directory_not_writable(hook, requests_mock, tmp_path):
    if os.geteuid() == 0:
        # root ignores permission bits; a parent that is a regular file fails for everyone.
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("file")
        dest = blocker / "i-1.jpg"
        expected = "cannot be created"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        dest = locked / "i-1.jpg"
        expected = "is not writable"
    try:
        with pytest.raises(AutoenhanceValidationError, match=expected) as info:
            hook.download_image("i-1", dest)
    finally:
        if os.geteuid() != 0:
            (tmp_path / "locked").chmod(0o700)
    assert str(dest.parent) in str(info.value)
    assert requests_mock.call_count == 0


def test_destination_under_a_regular_file_fails_for_everyone(hook, requests_mock, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("file")

    with pytest.raises(
        AutoenhanceValidationError, match=r"Destination directory .*blocker.* cannot be created"
    ):
        hook.download_image("i-1", blocker / "sub" / "i-1.jpg")
    assert requests_mock.call_count == 0


def test_destination_that_is_a_directory_is_refused(hook, requests_mock, tmp_path):
    with pytest.raises(AutoenhanceValidationError, match="is a directory"):
        hook.download_image("i-1", tmp_path)
    assert requests_mock.call_count == 0


def test_destination_of_wrong_type_is_refused(hook, requests_mock):
    with pytest.raises(AutoenhanceValidationError, match="file path or a binary file object"):
        hook.download_image("i-1", 42)
    assert requests_mock.call_count == 0


def test_missing_parent_directories_are_created(hook, requests_mock, tmp_path):
    requests_mock.get(api("/v3/images/i-1/enhanced"), content=JPEG, headers={"Content-Type": "image/jpeg"})
    dest = tmp_path / "a" / "b" / "i-1.jpg"

    hook.download_image("i-1", str(dest), kind="preview")

    assert Path(dest).read_bytes() == JPEG


def test_read_timeout_on_download_is_retried(hook, requests_mock, sleeps):
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        [{"exc": requests.exceptions.ReadTimeout("read timed out")}, {"content": JPEG}],
    )
    out = io.BytesIO()

    hook.download_image("i-1", out)

    assert out.getvalue() == JPEG
    assert requests_mock.call_count == 2


def test_one_retry_budget_per_image_however_its_gets_fail(hook, requests_mock, tmp_path, sleeps):
    """Failed answers and broken bodies share the hook's retry budget: never a retry loop inside
    another (five 503s then a broken body, three times over, used to be 18 GETs)."""
    unavailable = {"status_code": 503, "json": {"message": "busy"}}
    broken = {"body": BrokenBody(JPEG[:100]), "headers": {"Content-Type": "image/jpeg"}}
    requests_mock.get(api("/v3/images/i-1/enhanced"), ([unavailable] * 5 + [broken]) * 3)

    with pytest.raises(AutoenhanceError):
        hook.download_image("i-1", tmp_path / "i-1.jpg")

    assert requests_mock.call_count == hook.retry_policy.max_attempts == 6
    assert list(tmp_path.iterdir()) == []
