"""Redirects: the sync and the async transport follow the same rule (``http.policy.Redirects``).

The same answers go to both hooks; the outcome (the error class and message, or the order) and the
requests the server saw must agree, except where the rule says they differ: the async session
carries the key to every hop, so it refuses a redirect to another host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from servers import (
    FAST,
    GET_ORDER,
    Request,
    async_get_order,
    describe,
    head,
    json_reply,
    run_bounded,
    sync_get_order,
)

from autoenhance_provider.exceptions import AutoenhanceAPIError, AutoenhanceTransientError

GUARD = 15
ORDER = {"order_id": "o-1", "name": "n", "images": []}


def _run(serve: Any, connect: Any, app: Callable[[Request], list], call: Callable[[str], Any]) -> Any:
    server = serve(app)
    outcome = run_bounded(lambda: call(connect(server)), GUARD)
    assert outcome.finished, describe(outcome)
    return outcome, server.requests


@pytest.mark.parametrize("call", GET_ORDER)
def test_a_redirect_within_the_api_host_is_followed(serve, connect, call) -> None:
    def app(r: Request) -> list:
        if r.path == "/v3/orders/o-1":
            return [head(308, [("Location", "/v3/orders/o-1/")], length=0)]
        return json_reply(200, ORDER)

    outcome, requests = _run(serve, connect, app, call)
    assert outcome.error is None, describe(outcome)
    assert outcome.value["order_id"] == "o-1"
    assert [r.path for r in requests] == ["/v3/orders/o-1", "/v3/orders/o-1/"]


@pytest.mark.parametrize("call", GET_ORDER)
def test_a_redirect_without_location_is_a_malformed_answer_retried_like_a_5xx(serve, connect, call) -> None:
    outcome, requests = _run(serve, connect, lambda r: [head(302, length=0)], call)
    assert isinstance(outcome.error, AutoenhanceTransientError), describe(outcome)
    assert "HTTP 302 without a Location" in str(outcome.error)
    assert len(requests) == 1 + FAST["retry_limit"]  # one attempt and its retry


@pytest.mark.parametrize("call", GET_ORDER)
def test_a_redirect_loop_stops_after_the_hop_limit_without_retrying(serve, connect, call) -> None:
    from autoenhance_provider.http.policy import MAX_REDIRECTS

    outcome, requests = _run(serve, connect, lambda r: [head(307, [("Location", r.target)], length=0)], call)
    assert isinstance(outcome.error, AutoenhanceAPIError), describe(outcome)
    assert "too many redirects" in str(outcome.error)
    assert outcome.error.status_code == 307
    assert len(requests) == MAX_REDIRECTS + 1


def test_only_the_async_session_refuses_another_host(serve, connect) -> None:
    """The sync transport follows to another host with its key-less session; the async one has a
    single session carrying the key, so the rule refuses the hop before any request."""
    asset = serve(lambda r: json_reply(200, ORDER))

    def app(r: Request) -> list:
        return [head(302, [("Location", f"{asset.base_url.replace('127.0.0.1', 'localhost')}/o")], length=0)]

    synced, _ = _run(serve, connect, app, sync_get_order)
    assert synced.error is None, describe(synced)
    assert [r.path for r in asset.requests] == ["/o"]
    assert "authorization" not in {k.lower() for k in asset.requests[0].headers}
    assert not any("hostile-key" in v for v in asset.requests[0].headers.values())

    asynced, _ = _run(serve, connect, app, async_get_order)
    assert isinstance(asynced.error, AutoenhanceAPIError), describe(asynced)
    assert "redirected to another host" in str(asynced.error)
    assert len(asset.requests) == 1  # nothing more reached the other host
