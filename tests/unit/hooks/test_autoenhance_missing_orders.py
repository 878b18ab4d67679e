"""404 and 422 are not retried even on a GET (which the client would otherwise re-send), and an
upload into an order that does not exist fails before anything is created."""

from __future__ import annotations

import io

import pytest

from autoenhance_provider.compat import AirflowFailException
from autoenhance_provider.exceptions import AutoenhanceNotFoundError, AutoenhanceUnprocessableError
from autoenhance_provider.files.storage import SourceFile, to_storage_path
from support.api import api, validation_error


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (404, {"message": "Not Found", "detail": {}}, AutoenhanceNotFoundError),
        (422, validation_error("query", "quality", "Must be <= 90."), AutoenhanceUnprocessableError),
    ],
)
@pytest.mark.parametrize("call", ["get_order", "get_image", "download_image"])
def test_404_and_422_on_a_get_are_sent_once(hook, requests_mock, sleeps, status, body, cls, call):
    """A GET is safe to re-send (5xx and 429 are), so only the status decides: once, no backoff."""
    for path in ("/v3/orders/o-1", "/v3/images/i-1", "/v3/images/i-1/enhanced"):
        requests_mock.get(api(path), status_code=status, json=body)

    calls = {
        "get_order": lambda: hook.get_order("o-1"),
        "get_image": lambda: hook.get_image("i-1"),
        "download_image": lambda: hook.download_image("i-1", io.BytesIO()),
    }

    with pytest.raises(cls) as info:
        calls[call]()

    assert isinstance(info.value, AirflowFailException)
    assert [r.method for r in requests_mock.request_history] == ["GET"]
    assert sleeps == []


def test_upload_into_a_missing_order_fails_before_creating_anything(hook, requests_mock, sleeps, tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"x" * 64 + b"\xff\xd9")
    requests_mock.get(api("/v3/orders/typo-1"), status_code=404, json={"message": "Not Found", "detail": {}})
    item = SourceFile(
        path=to_storage_path(photo), name="a.jpg", size=photo.stat().st_size, content_type="image/jpeg"
    )

    with pytest.raises(AutoenhanceNotFoundError, match="create_missing_order=True") as info:
        hook.upload_images("typo-1", [item])

    assert "typo-1" in str(info.value)
    assert isinstance(info.value, AirflowFailException)
    assert [(r.method, r.path) for r in requests_mock.request_history] == [("GET", "/v3/orders/typo-1")]
