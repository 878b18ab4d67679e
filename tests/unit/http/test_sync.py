"""The sync transport (``http.sync``) on its own; the hook tests (tests/unit/hooks) run every request
through it."""

from __future__ import annotations

from autoenhance_provider.http.sync import storage_error_text


def test_storage_error_text():
    xml = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message><X>secret</X></Error>"
    assert storage_error_text(xml) == "AccessDenied: Request has expired"
    assert storage_error_text("<Error><Code>SlowDown</Code></Error>") == "SlowDown"
    assert storage_error_text("oops https://h/p?sig=SECRET") == "oops https://h/p?<redacted>"
    assert len(storage_error_text("y" * 1000)) == 200
