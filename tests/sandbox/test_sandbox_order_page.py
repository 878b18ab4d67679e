"""``GET /orders/{order_id}``: the HTML page the provider's "Autoenhance order" link opens."""

from __future__ import annotations

import re

import requests
from autoenhance_sandbox_helpers import create_image, create_order, keyed, open_image, processed_image

from autoenhance_sandbox.testing import SandboxServer


def thumbnails(page: str) -> dict[str, str]:
    """``{"original": url, "enhanced": url}`` of the first image row (``—`` cells are absent)."""
    row = page.split("<tbody>", 1)[1]
    return {
        cls: src.replace("&amp;", "&")
        for cls, src in re.findall(r'<td class="(\w+)"><img src="([^"]+)"', row)
    }


def test_order_page_lists_images_with_thumbnails(http: requests.Session, sandbox: SandboxServer) -> None:
    order = create_order(http, sandbox, name="Flat <3> & garden")
    done = processed_image(http, sandbox, name="kitchen.jpg", order_id=order["order_id"])
    create_image(http, sandbox, "waiting<script>.jpg", order_id=order["order_id"])
    response = http.get(sandbox.url(f"/orders/{order['order_id']}"))  # no API key: a browser page
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<h1>Flat &lt;3&gt; &amp; garden</h1>" in page
    assert '<span class="status" id="order-status">waiting</span>' in page
    assert "waiting&lt;script&gt;.jpg" in page
    assert "<script>" not in page
    assert f'data-image-id="{done["image_id"]}"' in page
    thumbs = thumbnails(page)
    assert set(thumbs) == {"original", "enhanced"}
    original = open_image(http.get(thumbs["original"]).content)
    enhanced = open_image(http.get(thumbs["enhanced"]).content)
    assert (original.format, original.size[0]) == ("JPEG", 240)
    assert (enhanced.format, enhanced.size[0]) == ("JPEG", 240)
    assert original.tobytes() != enhanced.tobytes()
    stats = sandbox.stats()
    assert stats["purchases"] == 0  # thumbnails never buy anything
    assert stats["downloads"].get("page") == 2
    assert not any(key.startswith("GET /orders") for key in stats["requests"])  # never counted/faulted


def test_waiting_image_has_no_thumbnails_and_unknown_order_is_404(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    image = create_image(http, sandbox, "later.jpg")
    page = http.get(sandbox.url(f"/orders/{image['order_id']}")).text
    assert "later.jpg" in page
    assert thumbnails(page) == {}
    missing = http.get(sandbox.url("/orders/no-such-order"))
    assert missing.status_code == 404
    assert "Order not found" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    http.delete(sandbox.url(f"/v3/orders/{image['order_id']}"), headers=keyed(sandbox))
    assert http.get(sandbox.url(f"/orders/{image['order_id']}")).status_code == 404


def test_empty_order_page(http: requests.Session, sandbox: SandboxServer) -> None:
    order = create_order(http, sandbox, name="Empty")
    page = http.get(sandbox.url(f"/orders/{order['order_id']}/")).text  # trailing slash too
    assert "No images yet." in page
