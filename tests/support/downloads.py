"""A fake order to download: the API's GET order, its ``/v3/images/<id>/<kind>`` redirects and the
asset host's bytes (requests-mock), and the DownloadImagesOperator that fetches them.

The ``downloads`` fixture of tests/unit/conftest.py installs :class:`FakeDownloads` for :data:`IMAGES`.
"""

from __future__ import annotations

import re

from autoenhance_provider.files.manifest import MANIFEST_NAME
from autoenhance_provider.operators.download import DownloadImagesOperator
from support.api import ASSET_HOST, BASE_URL, ORDER_ID, api, image, order, path_of

FAST = {"retry_limit": 1, "retry_delay": 0, "retry_max_delay": 0}
IMAGES = [
    image("11111111-aaaa-4aaa-8aaa-000000000001", "processed", "Kitchen.jpg"),
    image("22222222-bbbb-4bbb-8bbb-000000000002", "processed", "Living Room.png"),
    image("33333333-cccc-4ccc-8ccc-000000000003", "error", "broken.jpg", status_reason="corrupt file"),
    image("44444444-dddd-4ddd-8ddd-000000000004", "expired", "later.jpg"),
]

#: Downloads are verified as images: fake bodies start like a JPEG and end with its EOI marker.
JPEG_MAGIC = b"\xff\xd8\xff\xe0"
JPEG_END = b"\xff\xd9"


def listing(folder):
    """The files a download left in ``folder``, without the manifest that records them."""
    return [p for p in folder.iterdir() if p.name != MANIFEST_NAME]


class FakeDownloads:
    """GET order; ``/v3/images/<id>/<kind>`` answers 302 to an asset host that serves the bytes."""

    def __init__(self, requests_mock, images: list[dict]) -> None:
        self.mock = requests_mock
        self.asset_status = 200
        requests_mock.get(api(f"/v3/orders/{ORDER_ID}"), json=order(ORDER_ID, images, status="processed"))
        requests_mock.get(re.compile(re.escape(api("/v3/images/")) + r"[^/]+/\w+"), text=self._redirect)
        self.asset_url_pattern = re.compile(re.escape(ASSET_HOST) + r"/.*")
        requests_mock.get(self.asset_url_pattern, content=self._asset)

    @staticmethod
    def _redirect(request, context) -> str:
        image_id = path_of(request.url).split("/")[3]
        context.status_code = 302
        context.headers["Location"] = f"{ASSET_HOST}/render/{image_id}?X-Amz-Signature=feedface"
        context.headers["Content-Type"] = "text/html"
        return '<a href="elsewhere">redirect</a>'

    def _asset(self, request, context) -> bytes:
        context.status_code = self.asset_status
        if self.asset_status >= 400:
            return b"<Error><Code>SlowDown</Code></Error>"
        context.headers["Content-Type"] = "image/jpeg"
        return JPEG_MAGIC + f"IMAGE:{path_of(request.url).rsplit('/', 1)[-1]}".encode() + JPEG_END

    def api_downloads(self) -> list:
        return [r for r in self.mock.request_history if r.url.startswith(BASE_URL) and "/v3/images/" in r.url]

    def asset_requests(self) -> list:
        return [r for r in self.mock.request_history if r.url.startswith(ASSET_HOST)]

    def downloaded_ids(self) -> list[str]:
        return [path_of(r.url).split("/")[3] for r in self.api_downloads()]


def content_of(image_id: str) -> bytes:
    return JPEG_MAGIC + f"IMAGE:{image_id}".encode() + JPEG_END


def download_op(destination, **kwargs) -> DownloadImagesOperator:
    kwargs.setdefault("task_id", "download")
    kwargs.setdefault("order_id", ORDER_ID)
    kwargs.setdefault("hook_params", dict(FAST))
    return DownloadImagesOperator(destination=destination, **kwargs)
