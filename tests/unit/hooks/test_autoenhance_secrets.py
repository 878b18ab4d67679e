"""Secrets hygiene: the API key and presigned signatures never reach logs or error messages.

Also covers ``test_connection``, whose message is shown in the UI.
"""

from __future__ import annotations

import io
import socket
import traceback

import pytest
import requests
import urllib3.exceptions

from autoenhance_provider.exceptions import (
    AutoenhanceConnectionError,
    AutoenhanceError,
    AutoenhanceStorageError,
    AutoenhanceTransientError,
)
from support.api import FAKE_KEY, SIGNATURE, UPLOAD_URL, api, image, order, validation_error

UPLOAD_BASE = UPLOAD_URL.split("?")[0]


def chain_text(exc: BaseException) -> str:
    """What a traceback of ``exc`` shows (str, repr and the chained causes Python prints)."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


@pytest.fixture
def direct_loopback(monkeypatch):
    """Real sockets to 127.0.0.1 only: make sure no proxy setting reroutes them."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------ the key
def test_config_repr_never_shows_the_key(hook):
    assert hook.config.api_key == FAKE_KEY  # the key is there ...
    assert FAKE_KEY not in repr(hook.config)  # ... but not in its repr
    assert FAKE_KEY not in str(hook.config)
    assert "api.autoenhance.test" in repr(hook.config)


def test_the_key_is_registered_with_airflows_secrets_masker(hook, monkeypatch):
    import autoenhance_provider.hooks.autoenhance as module

    masked: list[str] = []
    monkeypatch.setattr(module, "mask_secret", masked.append)

    hook.config  # noqa: B018 - first access registers the key

    assert masked == [FAKE_KEY]


def test_key_never_logged_or_raised_across_many_calls(hook, requests_mock, tmp_path, sleeps, log_capture):
    errors: list[BaseException] = []

    def attempt(call):
        try:
            return call()
        except AutoenhanceError as exc:
            errors.append(exc)
            return None

    requests_mock.post(api("/v3/orders/"), json=order("o-1"))
    requests_mock.get(api("/v3/orders/o-1"), [{"status_code": 503}, {"json": order("o-1", [image("i-1")])}])
    requests_mock.get(api("/v3/orders/missing"), status_code=404, json={"message": "Not Found", "detail": {}})
    requests_mock.get(api("/v3/orders/"), status_code=401, json={"message": "Unauthorized", "detail": {}})
    requests_mock.post(
        api("/v3/images/"),
        status_code=422,
        json=validation_error("json", "enhance_type", "Not a valid choice."),
    )
    requests_mock.get(api("/v3/images/i-1"), exc=requests.exceptions.ConnectionError("connection reset"))
    requests_mock.delete(api("/v3/images/i-1"), status_code=500, text="Internal Server Error")
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        status_code=302,
        headers={"Location": "https://cdn.test/i-1.jpg?sig=1"},
    )
    requests_mock.get("https://cdn.test/i-1.jpg", content=b"\xff\xd8\xff\xd9")
    requests_mock.get(api("/v3/images/i-2/enhanced"), status_code=429, headers={"Retry-After": "0"})

    attempt(lambda: hook.create_order(name="n"))
    attempt(lambda: hook.get_order("o-1"))
    attempt(lambda: hook.get_order("missing"))
    attempt(lambda: list(hook.list_orders()))
    attempt(lambda: hook.create_image("a.jpg", order_id="o-1"))
    attempt(lambda: hook.get_image("i-1"))
    attempt(lambda: hook.delete_image("i-1"))
    attempt(lambda: hook.download_image("i-1", io.BytesIO()))
    attempt(lambda: hook.download_image("i-2", io.BytesIO()))
    attempt(lambda: hook.wait_for_order("o-1", poll_interval=0, timeout=5))
    ok, message = hook.test_connection()

    text = log_capture.text()
    # The capture really sees the hook's own log lines (so the absence below means something).
    assert "retry 1 of 5" in text
    assert "/v3/orders/o-1" in text
    assert len(errors) == 6
    assert FAKE_KEY not in text
    for exc in errors:
        assert FAKE_KEY not in chain_text(exc)
    assert not ok
    assert FAKE_KEY not in message


def test_key_in_the_base_url_password_is_never_shown(set_connection, make_hook, requests_mock):
    # A user pasting credentials into the host field gets a config error without them echoed.
    set_connection(host=f"https://user:{FAKE_KEY}@api.autoenhance.test")

    with pytest.raises(AutoenhanceError) as info:
        make_hook().get_order("o-1")

    assert "credentials" in str(info.value)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    "host",
    [
        f"ftp://user:{FAKE_KEY}@api.autoenhance.ai",
        f"https://:{FAKE_KEY}@api.autoenhance.ai:99999",
        f"//{FAKE_KEY}@",
    ],
)
def test_invalid_base_url_errors_do_not_echo_credentials(set_connection, make_hook, requests_mock, host):
    set_connection(host=host)

    with pytest.raises(AutoenhanceError, match="invalid API base URL") as info:
        make_hook().get_order("o-1")

    assert FAKE_KEY not in chain_text(info.value)
    assert "***@" in str(info.value)  # still shows what was typed, minus the secret
    assert requests_mock.call_count == 0


# ------------------------------------------------------------------------------ presigned URLs
def test_upload_403_signature_mismatch_leaks_no_signature(hook, requests_mock, tmp_path, log_capture):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"\xff\xd8\xffdata")
    xml = (
        "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not "
        f"match the signature you provided.</Message><SignatureProvided>{SIGNATURE}</SignatureProvided>"
        f"<StringToSign>AWS4-HMAC-SHA256 X-Amz-Signature={SIGNATURE}</StringToSign></Error>"
    )
    requests_mock.put(UPLOAD_BASE, status_code=403, text=xml, headers={"Content-Type": "application/xml"})

    with pytest.raises(AutoenhanceStorageError) as info:
        hook.upload_file(UPLOAD_URL, src, "image/jpeg")

    assert "SignatureDoesNotMatch" in str(info.value)
    assert SIGNATURE not in chain_text(info.value)
    assert "X-Amz-Credential" not in chain_text(info.value)
    assert SIGNATURE not in log_capture.text()


def test_upload_server_errors_leak_no_signature(hook, requests_mock, tmp_path, sleeps, log_capture):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"data")
    requests_mock.put(
        UPLOAD_BASE,
        status_code=503,
        text="<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>",
    )

    with pytest.raises(AutoenhanceTransientError) as info:
        hook.upload_file(UPLOAD_URL, src, "image/jpeg")

    text = log_capture.text()
    assert "retry 1 of 5" in text
    assert "bucket.s3.amazonaws.test/uploads/img.jpg" in text
    assert SIGNATURE not in text
    assert SIGNATURE not in chain_text(info.value)
    assert requests_mock.call_count == 6


def test_upload_network_errors_quoting_the_url_leak_no_signature(
    hook, requests_mock, tmp_path, sleeps, log_capture
):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"data")
    # requests puts the full request URL into connection error texts.
    path_and_query = UPLOAD_URL.split(".test", 1)[1]
    message = (
        "HTTPSConnectionPool(host='bucket.s3.amazonaws.test', port=443): Max retries exceeded with url: "
        f"{path_and_query} (Caused by ProtocolError('Connection aborted.', "
        "ConnectionResetError(104, 'Connection reset by peer')))"
    )
    requests_mock.put(UPLOAD_BASE, exc=requests.exceptions.ConnectionError(message))

    with pytest.raises(AutoenhanceConnectionError) as info:
        hook.upload_file(UPLOAD_URL, src, "image/jpeg")

    assert "Max retries exceeded" in str(info.value)
    assert SIGNATURE not in chain_text(info.value)
    assert SIGNATURE not in log_capture.text()


def test_redirect_and_indirect_download_urls_are_not_logged_with_queries(
    hook, requests_mock, sleeps, log_capture
):
    signed = f"https://cdn.test/i-1.jpg?X-Amz-Signature={SIGNATURE}"
    requests_mock.get(
        api("/v3/images/i-1/enhanced"), json={"url": signed}, headers={"Content-Type": "application/json"}
    )
    requests_mock.get("https://cdn.test/i-1.jpg", [{"status_code": 503}, {"status_code": 500}] * 3)

    with pytest.raises(AutoenhanceTransientError) as info:
        hook.download_image("i-1", io.BytesIO())

    assert "cdn.test/i-1.jpg" in log_capture.text()
    assert SIGNATURE not in log_capture.text()
    assert SIGNATURE not in chain_text(info.value)


# ------------------------------------------------------------------------------ test_connection
def test_test_connection_success(hook, requests_mock):
    requests_mock.get(api("/v3/orders/"), json={"orders": [], "pagination": {"next_offset": None}})

    ok, message = hook.test_connection()

    assert ok is True
    assert "https://api.autoenhance.test" in message
    assert FAKE_KEY not in message
    req = requests_mock.last_request
    assert req.headers["x-api-key"] == FAKE_KEY  # an authenticated endpoint really checks the key
    assert req.qs == {"per_page": ["1"]}
    assert req.timeout == (5.0, 10.0)
    assert req.method == "GET"


@pytest.mark.parametrize("status", [401, 403])
def test_test_connection_rejected_key(hook, requests_mock, status):
    requests_mock.get(
        api("/v3/orders/"), status_code=status, json={"message": f"Invalid key {FAKE_KEY}", "detail": {}}
    )

    ok, message = hook.test_connection()

    assert ok is False
    assert f"HTTP {status}" in message
    assert "API key" in message
    assert FAKE_KEY not in message
    assert requests_mock.call_count == 1


def test_test_connection_refused_mocked(hook, requests_mock, sleeps):
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
    requests_mock.get(
        api("/v3/orders/"),
        exc=requests.exceptions.ConnectionError(
            urllib3.exceptions.MaxRetryError(None, "/v3/orders/", reason)
        ),
    )

    ok, message = hook.test_connection()

    assert ok is False
    assert "ConnectionError" in message
    assert FAKE_KEY not in message
    assert requests_mock.call_count == 2  # bounded: test_connection must answer quickly


def test_test_connection_refused_for_real_on_loopback(set_connection, make_hook, sleeps, direct_loopback):
    port = closed_port()
    set_connection(host=f"127.0.0.1:{port}")

    ok, message = make_hook().test_connection()

    assert ok is False
    assert "ConnectionError" in message
    assert FAKE_KEY not in message


def test_real_refused_connection_is_classified_as_never_sent(direct_loopback):
    # The mocked "refused" errors in the retry tests must look like what requests really raises.
    from autoenhance_provider.http.sync import _may_have_been_sent

    port = closed_port()
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        requests.get(f"http://127.0.0.1:{port}/v3/orders/", timeout=2)
    assert _may_have_been_sent(info.value) is False


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ({}, "autoenhance_default"),
        ({"password": ""}, "no API key"),
        ({"host": "http://api.example.com"}, "refusing plain http://"),
        ({"extra": {"api_version": "latest"}}, "api_version"),
    ],
)
def test_test_connection_never_raises_on_bad_configuration(
    set_connection, make_hook, requests_mock, setup, needle
):
    if setup:
        set_connection(**setup)
    else:
        import os

        os.environ.pop("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", None)

    ok, message = make_hook().test_connection()

    assert ok is False
    assert needle in message
    assert FAKE_KEY not in message
    assert requests_mock.call_count == 0


def test_test_connection_server_error_is_reported(hook, requests_mock, sleeps):
    requests_mock.get(api("/v3/orders/"), status_code=503, json={"message": "Service Unavailable"})

    ok, message = hook.test_connection()

    assert ok is False
    assert "503" in message
    assert requests_mock.call_count == 2
