"""The compatibility readings of the API (``readings.py``)."""

from __future__ import annotations

import pytest

from autoenhance_provider.readings import indirect_image_url


@pytest.mark.parametrize(
    ("content_type", "body", "url"),
    [
        ("application/json", b'{"image_url": "https://x/a.jpg"}', "https://x/a.jpg"),
        ("application/json; charset=utf-8", b'{"imageSource": "https://x/b.jpg"}', "https://x/b.jpg"),
        ("application/json", b'{"url": "/relative.jpg"}', "/relative.jpg"),
        ("application/json", b'{"image_url": 5}', None),
        ("application/json", b"[1]", None),
        ("application/json", b"{broken", None),
        ("text/html", b"<p>Redirecting to <a href='https://x/c.jpg'>here</a>", "https://x/c.jpg"),
        ("text/html", b"<p>no link</p>", None),
        ("image/jpeg", b"\xff\xd8", None),
    ],
)
def test_indirect_image_url(content_type, body, url):
    assert indirect_image_url(content_type, body) == url
