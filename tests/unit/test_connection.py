"""The ``autoenhance`` connection: JSON and URI forms, defaults, and every way it can be wrong."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow.sdk import Connection

from autoenhance_provider.compat import AirflowFailException, BaseHook
from autoenhance_provider.connection import (
    DEFAULT_BASE_URL,
    AutoenhanceConnectionConfig,
    is_loopback,
    normalise_base_url,
)
from autoenhance_provider.exceptions import AutoenhanceConfigError
from support.api import FAKE_KEY, api, order
from support.connections import FORM_SAVED_EXTRAS


def config_for(set_connection, make_hook, **kwargs) -> AutoenhanceConnectionConfig:
    set_connection(**kwargs)
    return make_hook().config


# ------------------------------------------------------------------------------ JSON form
def test_json_form_extras_keep_their_types(set_connection, make_hook):
    cfg = config_for(
        set_connection,
        make_hook,
        extra={"api_version": "2025-05-08", "dev_mode": True, "timeout": 30, "connect_timeout": 2.5},
    )

    assert cfg.conn_id == "autoenhance_default"
    assert cfg.base_url == "https://api.autoenhance.test"
    assert cfg.api_key == FAKE_KEY
    assert cfg.api_version == "2025-05-08"
    assert cfg.dev_mode is True
    assert (cfg.connect_timeout, cfg.read_timeout) == (2.5, 30.0)
    assert cfg.verify is True


def test_json_form_defaults(set_connection, make_hook):
    cfg = config_for(set_connection, make_hook)

    assert cfg.api_version is None
    assert cfg.dev_mode is False
    assert (cfg.connect_timeout, cfg.read_timeout) == (10.0, 60.0)
    assert cfg.app_url == "https://app.autoenhance.ai"
    assert cfg.api_headers() == {"x-api-key": FAKE_KEY, "Accept": "application/json"}


def test_json_form_with_extra_as_a_json_string(set_connection, make_hook):
    cfg = config_for(set_connection, make_hook, extra=json.dumps({"dev_mode": "true", "timeout": "12"}))

    assert cfg.dev_mode is True
    assert cfg.read_timeout == 12.0


def test_other_connection_ids(set_connection, make_hook, requests_mock):
    set_connection("autoenhance_sandbox", host="http://127.0.0.1:8765")
    requests_mock.get("http://127.0.0.1:8765/v3/orders/o-1", json=order())

    hook = make_hook(autoenhance_conn_id="autoenhance_sandbox")
    hook.get_order("o-1")

    assert hook.config.conn_id == "autoenhance_sandbox"
    assert requests_mock.last_request.url == "http://127.0.0.1:8765/v3/orders/o-1"


# ------------------------------------------------------------------------------ URI form
def test_uri_form_extras_arrive_as_strings_and_are_coerced(set_connection, make_hook, requests_mock):
    set_connection(
        uri=f"autoenhance://:{FAKE_KEY}@127.0.0.1:8765?dev_mode=true&timeout=30&api_version=2025-05-08"
    )
    hook = make_hook()
    requests_mock.get("http://127.0.0.1:8765/v3/orders/o-1", json=order())

    hook.get_order("o-1")

    cfg = hook.config
    assert cfg.base_url == "http://127.0.0.1:8765"  # loopback without scheme -> http
    assert cfg.api_key == FAKE_KEY
    assert cfg.dev_mode is True
    assert cfg.read_timeout == 30.0
    assert cfg.api_version == "2025-05-08"
    headers = requests_mock.last_request.headers
    assert headers["x-dev-mode"] == "true"
    assert headers["x-api-version"] == "2025-05-08"
    assert requests_mock.last_request.timeout == (10.0, 30.0)


def test_uri_form_with_url_encoded_host_and_scheme(set_connection, make_hook):
    cfg = config_for(
        set_connection, make_hook, uri=f"autoenhance://:{FAKE_KEY}@http%3A%2F%2F127.0.0.1%3A8765"
    )

    assert cfg.base_url == "http://127.0.0.1:8765"
    assert cfg.api_key == FAKE_KEY


def test_uri_form_with_url_encoded_https_host_and_v3_path(set_connection, make_hook):
    cfg = config_for(
        set_connection, make_hook, uri=f"autoenhance://:{FAKE_KEY}@https%3A%2F%2Fapi.autoenhance.ai%2Fv3"
    )

    assert cfg.base_url == "https://api.autoenhance.ai"


def test_uri_form_dev_mode_false_and_allow_insecure_http_string(set_connection, make_hook):
    cfg = config_for(
        set_connection,
        make_hook,
        uri=f"autoenhance://:{FAKE_KEY}@http%3A%2F%2Fsandbox.internal%3A8080?dev_mode=false&allow_insecure_http=true",
    )

    assert cfg.base_url == "http://sandbox.internal:8080"
    assert cfg.dev_mode is False


# ------------------------------------------------------------------------------ base URL rules
@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, DEFAULT_BASE_URL),
        ("", None, DEFAULT_BASE_URL),
        ("   ", None, DEFAULT_BASE_URL),
        ("api.autoenhance.ai", None, "https://api.autoenhance.ai"),
        ("api.autoenhance.ai/v3", None, "https://api.autoenhance.ai"),
        ("https://api.autoenhance.ai/v3/", None, "https://api.autoenhance.ai"),
        ("https://api.autoenhance.ai/", None, "https://api.autoenhance.ai"),
        ("https://gateway.example.com/autoenhance/v3", None, "https://gateway.example.com/autoenhance"),
        ("127.0.0.1", 8765, "http://127.0.0.1:8765"),
        ("localhost:8765", None, "http://localhost:8765"),
        ("sandbox.localhost", 9000, "http://sandbox.localhost:9000"),
        ("[::1]:8765", None, "http://[::1]:8765"),
        ("https://api.example.com", 8443, "https://api.example.com:8443"),
        ("https://api.example.com:9443", 8443, "https://api.example.com:9443"),
        ("HTTPS://API.Example.com", None, "https://api.example.com"),
        ("http://127.0.0.1:8765/v3", None, "http://127.0.0.1:8765"),
    ],
)
def test_normalise_base_url(host, port, expected):
    assert normalise_base_url(host, port, "c") == expected


def test_port_field_is_used_from_a_json_connection(set_connection, make_hook):
    cfg = config_for(set_connection, make_hook, host="127.0.0.1", port=8765)

    assert cfg.base_url == "http://127.0.0.1:8765"


def test_empty_host_uses_the_production_api(set_connection, make_hook, requests_mock):
    set_connection(host="")
    requests_mock.get("https://api.autoenhance.ai/v3/orders/o-1", json=order())

    make_hook().get_order("o-1")

    assert requests_mock.last_request.url == "https://api.autoenhance.ai/v3/orders/o-1"


def test_http_to_a_public_host_needs_allow_insecure_http(set_connection, make_hook):
    cfg = config_for(
        set_connection, make_hook, host="http://api.example.com", extra={"allow_insecure_http": True}
    )

    assert cfg.base_url == "http://api.example.com"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("example.com", False),
        (None, False),
    ],
)
def test_is_loopback(name, expected):
    assert is_loopback(name) is expected


# ------------------------------------------------------------------------------ bad connections
def test_no_connection_defined_names_the_conn_id(make_hook, monkeypatch, requests_mock):
    monkeypatch.delenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_AUTOENHANCE_MISSING", raising=False)
    hook = make_hook(autoenhance_conn_id="autoenhance_missing")

    with pytest.raises(Exception, match="autoenhance_missing") as info:
        hook.get_order("o-1")

    assert "isn't defined" in str(info.value) or "not defined" in str(info.value)
    assert requests_mock.call_count == 0


BAD_CONNECTIONS = [
    pytest.param({"password": ""}, "has no API key", id="empty-key"),
    pytest.param({"password": "   "}, "has no API key", id="blank-key"),
    pytest.param(
        {"host": "ftp://api.autoenhance.ai"}, "invalid API base URL 'ftp://api.autoenhance.ai'", id="scheme"
    ),
    pytest.param({"host": "https://"}, "invalid API base URL", id="no-hostname"),
    pytest.param({"host": "http://[::1"}, "invalid API base URL", id="unparseable"),
    pytest.param({"host": "https://api.example.com:99999"}, "invalid API base URL", id="bad-port"),
    pytest.param(
        {"host": "https://api.example.com/?a=1"}, "must not contain credentials, a query", id="query"
    ),
    pytest.param({"host": "http://api.example.com"}, "refusing plain http:// to api.example.com", id="http"),
    pytest.param(
        {"host": "http://api.example.com", "extra": {"allow_insecure_http": "nope"}},
        "allow_insecure_http must be true or false",
        id="bad-allow-http",
    ),
    pytest.param(
        {"extra": {"api_version": "2025-5-8"}}, "api_version must look like YYYY-MM-DD", id="api-version"
    ),
    pytest.param({"extra": {"api_version": "latest"}}, "got 'latest'", id="api-version-word"),
    pytest.param({"extra": {"timeout": "abc"}}, "invalid extra: timeout must be a number", id="timeout-text"),
    pytest.param({"extra": {"timeout": 0}}, "timeout must be between 0.1 and 3600", id="timeout-zero"),
    pytest.param({"extra": {"timeout": -5}}, "timeout must be between", id="timeout-negative"),
    pytest.param({"extra": {"timeout": True}}, "timeout must be a number", id="timeout-bool"),
    pytest.param(
        {"extra": {"connect_timeout": 1000}}, "connect_timeout must be between", id="connect-timeout"
    ),
    pytest.param({"extra": {"dev_mode": "sometimes"}}, "dev_mode must be true or false", id="dev-mode"),
    pytest.param({"extra": {"verify": False}}, "TLS verification cannot be switched off", id="verify-false"),
    pytest.param(
        {"extra": {"verify_ssl": "false"}}, "TLS verification cannot be switched off", id="verify-ssl"
    ),
]


@pytest.mark.parametrize(("fields", "needle"), BAD_CONNECTIONS)
def test_bad_connections_fail_clearly_before_any_request(
    set_connection, make_hook, requests_mock, fields, needle
):
    set_connection(**fields)
    hook = make_hook()

    with pytest.raises(AutoenhanceConfigError) as info:
        hook.get_order("o-1")

    message = str(info.value)
    assert needle in message
    assert "'autoenhance_default'" in message
    assert FAKE_KEY not in message
    assert FAKE_KEY not in repr(info.value)
    assert isinstance(info.value, AirflowFailException)
    assert requests_mock.call_count == 0


NON_OBJECT_EXTRAS = [
    pytest.param("not json", "not valid JSON", id="extra-not-json"),
    pytest.param("[1, 2]", "must be a JSON object", id="extra-list"),
]
#: Airflow 3.0's base hook (airflow.hooks.base) looks connections up as airflow.models.Connection,
#: which rejects an extra that is not a JSON object, so such a connection never reaches the
#: provider: the lookup reports it as not defined. On 3.3 the SDK Connection arrives as it is.
LOOKUP_REJECTS_NON_OBJECT_EXTRA = BaseHook.__module__ == "airflow.hooks.base"


@pytest.mark.parametrize(("extra", "needle"), NON_OBJECT_EXTRAS)
def test_an_extra_that_is_not_a_json_object_fails_before_any_request(
    set_connection, make_hook, requests_mock, extra, needle
):
    # The provider's own check, on the Connection a task gets from the API server (every version).
    task_conn = Connection(
        conn_id="autoenhance_default", conn_type="autoenhance", password=FAKE_KEY, extra=extra
    )
    with pytest.raises(AutoenhanceConfigError) as direct:
        AutoenhanceConnectionConfig.from_connection(task_conn)
    assert needle in str(direct.value)
    assert "'autoenhance_default'" in str(direct.value)
    assert isinstance(direct.value, AirflowFailException)

    # The same connection from an AIRFLOW_CONN_ variable, through the hook.
    set_connection(extra=extra)
    hook = make_hook()
    if LOOKUP_REJECTS_NON_OBJECT_EXTRA:
        from airflow.exceptions import AirflowNotFoundException

        with pytest.raises(AirflowNotFoundException) as info:
            hook.get_order("o-1")
        assert "autoenhance_default" in str(info.value)
    else:
        with pytest.raises(AutoenhanceConfigError) as info:
            hook.get_order("o-1")
        assert needle in str(info.value)
        assert "'autoenhance_default'" in str(info.value)
        assert isinstance(info.value, AirflowFailException)
    assert FAKE_KEY not in str(info.value)
    assert FAKE_KEY not in repr(info.value)
    assert requests_mock.call_count == 0


def test_unknown_extras_are_reported_by_name_only(set_connection, make_hook, log_capture):
    set_connection(extra={"api_key_backup": FAKE_KEY, "dev_mode": False})

    make_hook().config  # noqa: B018

    text = log_capture.text()
    assert "api_key_backup" in text
    assert FAKE_KEY not in text


def test_ca_bundle_is_used_for_verification(set_connection, make_hook, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    hook = make_hook()
    set_connection(extra={"ca_bundle": str(bundle)})

    assert hook.config.verify == str(bundle)
    assert hook.session.verify == str(bundle)
    assert hook.storage_session.verify == str(bundle)


def test_app_url_extra_changes_the_order_link(set_connection, make_hook):
    set_connection(extra={"app_url": "https://app.example.test/"})

    assert make_hook().order_url("o-1") == "https://app.example.test/orders/o-1"


def test_from_connection_accepts_any_connection_like_object():
    conn = SimpleNamespace(conn_id="x", password=FAKE_KEY, host=None, port=None, extra_dejson={})

    cfg = AutoenhanceConnectionConfig.from_connection(conn)

    assert cfg.base_url == DEFAULT_BASE_URL
    assert cfg.conn_id == "x"


@pytest.mark.parametrize(
    ("url", "same"),
    [
        (api("/v3/x"), True),
        ("https://api.autoenhance.test:443/v3/x", False),
        ("http://api.autoenhance.test/v3/x", False),
        ("https://cdn.autoenhance.test/v3/x", False),
        ("https://API.autoenhance.test/v3/x", True),
    ],
)
def test_same_origin(hook, url, same):
    assert hook.config.same_origin(url) is same


def test_no_connection_lookup_until_first_use(monkeypatch):
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    monkeypatch.delenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", raising=False)

    hook = AutoenhanceHook()  # must not raise although the connection does not exist

    assert "config" not in hook.__dict__
    assert hook.autoenhance_conn_id == "autoenhance_default"


# ------------------------------------------------------------------------------ as the UI form saves it
@pytest.mark.parametrize("extra", [FORM_SAVED_EXTRAS, json.dumps(FORM_SAVED_EXTRAS)])
def test_form_saved_empty_extras_mean_unset(set_connection, make_hook, extra, requests_mock):
    cfg = config_for(set_connection, make_hook, extra=extra, port=None, login="", schema="")

    assert (cfg.api_version, cfg.dev_mode, cfg.verify) == (None, False, True)
    assert (cfg.connect_timeout, cfg.read_timeout) == (10.0, 60.0)
    assert cfg.app_url == "https://app.autoenhance.ai"
    # and a call with it goes out with defaults
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1"))
    assert make_hook().get_order("o-1")["order_id"] == "o-1"
    assert "x-api-version" not in requests_mock.last_request.headers


def test_form_saved_filled_extras(set_connection, make_hook):
    cfg = config_for(
        set_connection,
        make_hook,
        extra={
            "api_version": "2025-05-08",
            "dev_mode": True,
            "timeout": "30",
            "connect_timeout": "5",
            "allow_insecure_http": False,
            "app_url": "https://app.example.test/",
        },
    )
    assert (cfg.api_version, cfg.dev_mode) == ("2025-05-08", True)
    assert (cfg.read_timeout, cfg.connect_timeout) == (30, 5)
    assert cfg.order_url("o-1") == "https://app.example.test/orders/o-1"


def test_sandbox_connection_links_to_the_sandbox_order_page(set_connection, make_hook):
    cfg = config_for(set_connection, make_hook, host="http://127.0.0.1:8765")
    assert cfg.order_url("o-1") == "http://127.0.0.1:8765/orders/o-1"


def test_wrong_key_message_names_the_connection_and_the_fix(set_connection, make_hook, requests_mock):
    from autoenhance_provider.exceptions import AutoenhanceAuthError

    set_connection("listing_photos")
    requests_mock.get(api("/v3/orders/o-1"), status_code=401, json={"message": "Unauthorized", "detail": {}})
    hook = make_hook(autoenhance_conn_id="listing_photos")
    with pytest.raises(AutoenhanceAuthError) as info:
        hook.get_order("o-1")
    text = str(info.value)
    assert "connection 'listing_photos'" in text
    assert "Admin → Connections → listing_photos" in text
    assert "HTTP 401" in text
    assert FAKE_KEY not in text
    assert requests_mock.call_count == 1  # permanent: not retried
