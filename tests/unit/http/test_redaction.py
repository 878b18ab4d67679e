"""Redaction (``http.redaction``): URLs lose their query strings and credentials, in text and in the
HTTP libraries' own log lines. What the hooks never show: tests/unit/hooks/test_autoenhance_secrets.py."""

from __future__ import annotations

import logging

import pytest

from autoenhance_provider.http.redaction import redact_url, redact_urls_in
from support.api import SIGNATURE, UPLOAD_URL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (UPLOAD_URL, "https://bucket.s3.amazonaws.test/uploads/img.jpg?<redacted>"),
        ("https://api.autoenhance.ai/v3/orders/", "https://api.autoenhance.ai/v3/orders/"),
        ("https://user:secret@host.test:8443/p?token=abc#frag", "https://host.test:8443/p?<redacted>"),
        ("http://127.0.0.1:8765/x#frag", "http://127.0.0.1:8765/x"),
        ("http://[::1", "<unparseable URL>"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_redact_urls_in_free_text():
    text = (
        f"PUT {UPLOAD_URL} failed; retried /uploads/img.jpg?X-Amz-Signature={SIGNATURE} "
        "and 'https://cdn.test/a.jpg?sig=1' (then http://x.test/b?c=d)"
    )

    redacted = redact_urls_in(text)

    assert SIGNATURE not in redacted
    assert "sig=1" not in redacted
    assert "c=d" not in redacted
    assert "https://bucket.s3.amazonaws.test/uploads/img.jpg?<redacted>" in redacted
    assert "/uploads/img.jpg?<redacted>" in redacted
    assert "'https://cdn.test/a.jpg?<redacted>'" in redacted
    assert "http://x.test/b?<redacted>)" in redacted
    assert redact_urls_in("no urls here, just a question?") == "no urls here, just a question?"


def test_urllib3_debug_lines_have_their_query_strings_redacted(hook, caplog):
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("urllib3.connectionpool")
    path_and_query = UPLOAD_URL.split(".test", 1)[1]

    # The exact calls urllib3 2.x makes.
    log.debug("Starting new HTTPS connection (%d): %s:%s", 1, "bucket.s3.amazonaws.test", 443)
    log.debug(
        '%s://%s:%s "%s %s %s" %s %s',
        "https",
        "bucket.s3.amazonaws.test",
        443,
        "PUT",
        path_and_query,
        "HTTP/1.1",
        403,
        None,
    )
    log.debug(f"Incremented Retry for (url='{path_and_query}'): Retry(total=0)")

    assert "PUT /uploads/img.jpg?<redacted> HTTP/1.1" in caplog.text
    assert SIGNATURE not in caplog.text
    assert "X-Amz-Credential" not in caplog.text
    assert len([r for r in caplog.records if r.name == "urllib3.connectionpool"]) == 3


def test_log_filter_is_installed_once_on_each_http_library_logger(hook):
    from autoenhance_provider.http.redaction import RedactQueryStrings, install_log_redaction

    install_log_redaction()
    install_log_redaction()

    for name in ("urllib3.connectionpool", "urllib3.response", "aiohttp.client", "aiohttp.internal"):
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RedactQueryStrings)]
        assert len(filters) == 1, name
