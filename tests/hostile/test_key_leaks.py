"""7. The API key never leaks, whatever a server echoes back, on every path (sync hook, async hook,
trigger event), in every place (exception text, repr, body, traceback, event payload, logs at
DEBUG including urllib3/aiohttp).

Every key here contains ``MARKER`` (letters and digits), so the key is found however the server
encoded it: raw, JSON-escaped, percent-encoded, in a redirect or in a header.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
from servers import (
    FAST,
    GET_ORDER,
    KEY,
    KEY_ESCAPED,
    MARKER,
    Request,
    assert_no_marker,
    async_get_order,
    describe,
    exception_texts,
    first_trigger_event,
    head,
    json_reply,
    reply,
    run_bounded,
)

from autoenhance_provider.exceptions import AutoenhanceConfigError, AutoenhanceError

GUARD = 15
ONE_TRY = {**FAST, "retry_limit": 0}


def _echo_app(mode: str):
    def app(request: Request):
        key = request.header("x-api-key")
        if mode == "raw":
            return reply(400, f"Invalid API key {key} for this account", "text/plain")
        if mode == "json":
            return json_reply(
                422, {"message": f"Invalid key {key}", "detail": {"header": {"x-api-key": [key]}}}
            )
        if mode == "json-escaped-slash":
            body = json.dumps({"message": f"Invalid key {key}"}).replace("/", "\\/")
            return reply(400, body, "application/json")
        if mode == "percent":
            return reply(400, f"bad request: key={quote(key, safe='')}", "text/plain")
        if mode == "location-query":
            if request.path == "/v3/orders/o-1":
                return [head(302, [("Location", f"/v3/orders/o-2?api_key={quote(key, safe='')}")], length=0)]
            return json_reply(404, {"message": "Order not found"})
        if mode == "location-path":
            if request.path == "/v3/orders/o-1":
                return [head(302, [("Location", f"/v3/orders/{quote(key, safe='')}")], length=0)]
            return json_reply(404, {"message": f"Order {request.path} not found"})
        if mode == "header":
            return json_reply(
                500, {"message": "boom"}, [("X-Echo-Key", key), ("WWW-Authenticate", f'ApiKey realm="{key}"')]
            )
        raise AssertionError(mode)

    return app


MODES = ["raw", "json", "json-escaped-slash", "percent", "location-query", "location-path", "header"]
KEYS = {"plain": KEY, "escapable": KEY_ESCAPED}


@pytest.fixture(params=sorted(KEYS))
def key(request) -> str:
    return KEYS[request.param]


def _check_outcome(outcome, logs) -> None:
    assert outcome.finished, describe(outcome)
    assert_no_marker("the exception", *exception_texts(outcome.error))
    assert_no_marker("the result", outcome.value)
    assert_no_marker("the logs", logs.text())


class TestKeyNeverLeaks:
    @pytest.mark.parametrize("get_order", GET_ORDER)
    @pytest.mark.parametrize("mode", MODES)
    def test_hook(self, serve, connect, logs, key, mode, get_order) -> None:
        server = serve(_echo_app(mode))
        conn = connect(server, key=key)
        outcome = run_bounded(lambda: get_order(conn, **ONE_TRY), GUARD)
        assert server.seen(), "the server was never asked: the echo was not exercised"
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
        _check_outcome(outcome, logs)

    @pytest.mark.parametrize("mode", MODES)
    def test_sync_test_connection(self, serve, connect, logs, key, mode) -> None:
        from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

        app = _echo_app(mode)
        server = serve(lambda r: app(Request(r.method, "/v3/orders/o-1", r.headers, r.body)))
        conn = connect(server, key=key)
        outcome = run_bounded(lambda: AutoenhanceHook(conn, **ONE_TRY).test_connection(), GUARD)
        assert outcome.error is None, describe(outcome)
        _check_outcome(outcome, logs)

    @pytest.mark.parametrize("mode", MODES)
    def test_trigger_event(self, serve, connect, logs, key, mode) -> None:
        server = serve(_echo_app(mode))
        conn = connect(server, key=key)
        outcome = run_bounded(
            lambda: first_trigger_event(
                conn, poll_interval=0.05, end_time=time.time() + 10, error_budget=1, hook_params=dict(ONE_TRY)
            ),
            GUARD,
        )
        assert outcome.finished, describe(outcome)
        assert outcome.error is None, describe(outcome)
        assert outcome.value is not None
        assert_no_marker("the trigger event", json.dumps(outcome.value.payload), repr(outcome.value))
        assert_no_marker("the logs", logs.text())


BAD_KEYS = {
    "newline": f"ae-{MARKER}\nsecond-line",
    "crlf-header-injection": f"ae-{MARKER}\r\nX-Injected: 1",
    "non-ascii": f"ae-{MARKER}-\u00e9t\u00e9",
    "non-latin1": f"ae-{MARKER}-\u2603",
    "nul": f"ae-{MARKER}\x00nul",
}


class TestUnsendableKeyIsAConfigError:
    @pytest.mark.parametrize("get_order", GET_ORDER)
    @pytest.mark.parametrize("name", sorted(BAD_KEYS))
    def test_get_order(self, serve, connect, logs, name, get_order) -> None:
        server = serve(lambda r: json_reply(200, {"order_id": "o-1", "images": []}))
        conn = connect(server, key=BAD_KEYS[name])
        outcome = run_bounded(lambda: get_order(conn, **ONE_TRY), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceConfigError), describe(outcome)
        assert server.seen() == [], "a request was sent with a key that cannot go in a header"
        assert_no_marker("the exception", *exception_texts(outcome.error))
        assert_no_marker("the logs", logs.text())

    @pytest.mark.parametrize("name", sorted(BAD_KEYS))
    def test_test_connection(self, serve, connect, logs, name) -> None:
        from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

        server = serve(lambda r: json_reply(200, {"orders": []}))
        conn = connect(server, key=BAD_KEYS[name])
        outcome = run_bounded(lambda: AutoenhanceHook(conn, **ONE_TRY).test_connection(), GUARD)
        assert outcome.finished, describe(outcome)
        assert outcome.error is None, describe(outcome)
        assert outcome.value[0] is False, (
            f"a key that cannot be sent was reported as working: {outcome.value}"
        )
        assert server.seen() == []
        assert_no_marker("the message", outcome.value)


def test_aiohttp_debug_records_that_carry_the_key_are_redacted(serve, connect, logs) -> None:
    """Not only that the filter is installed: records aiohttp's own loggers emit at DEBUG with the
    key in them (a cookie name echoed by a server, an error repr naming a keyed URL) reach the
    handlers without it, while the async hook talks to a server that echoes the key in cookies."""
    import logging
    from io import StringIO

    from aiohttp import _cookie_helpers

    def app(request: Request):
        key = request.header("x-api-key")
        return json_reply(200, {"order_id": "o-1", "images": []}, [("Set-Cookie", f'bad"{key}=1')])

    server = serve(app)
    conn = connect(server, key=KEY)
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    aiohttp_logger = logging.getLogger("aiohttp")
    aiohttp_logger.addHandler(handler)
    try:
        outcome = run_bounded(lambda: async_get_order(conn, **ONE_TRY), GUARD)
        assert outcome.error is None, describe(outcome)
        # aiohttp's real DEBUG calls, with the key in their arguments:
        _cookie_helpers.parse_cookie_header(f'ok=1; bad"{KEY}=2')  # aiohttp.internal
        logging.getLogger("aiohttp.client").debug(
            "Error while closing connector: %r", OSError(f"GET http://h/v3/orders?api_key={KEY}")
        )
    finally:
        aiohttp_logger.removeHandler(handler)
    text = stream.getvalue()
    assert "Illegal cookie names" in text, text  # the records were emitted and formatted
    assert "Error while closing connector" in text, text
    assert_no_marker("aiohttp's DEBUG output", text)
    _check_outcome(outcome, logs)
