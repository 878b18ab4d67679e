"""AutoenhanceAsyncHook (the trigger's hook): the key, ids, retries, redirects and connections, over HTTP
answered in process (the ``aio_api`` fixture)."""

from __future__ import annotations

import asyncio
import json
from unittest import mock

import pytest

from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceAuthError,
    AutoenhanceNotFoundError,
    AutoenhanceTransientError,
)
from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook
from support.aio import Reply
from support.api import BASE_URL, FAKE_KEY, ORDER_ID, OrderScript, Status, done_order
from support.waits import TRIGGER_FAST as FAST


async def test_async_hook_sends_the_key_to_the_api_host(conn, aio_api):
    seen = aio_api(OrderScript(done_order()).handler)

    async with AutoenhanceAsyncHook(**FAST) as hook:
        order = await hook.get_order(ORDER_ID)

    assert order["order_id"] == ORDER_ID
    (request,) = seen
    assert str(request.url) == f"{BASE_URL}/v3/orders/{ORDER_ID}"
    assert request.headers["x-api-key"] == FAKE_KEY
    assert request.method == "GET"


async def test_async_hook_quotes_ids_as_one_path_segment(conn, aio_api):
    seen = aio_api(lambda request: Reply(200, {"order_id": "x"}))

    async with AutoenhanceAsyncHook(**FAST) as hook:
        await hook.get_order("crm:4711@x+y~z")

    # one path segment that reads back as the id; on the wire aiohttp (yarl) leaves ":" and "@"
    # bare, as RFC 3986 allows in a segment, and keeps "+" encoded
    assert seen[0].url.parts == ("/", "v3", "orders", "crm:4711@x+y~z")
    assert seen[0].url.raw_path == "/v3/orders/crm:4711@x%2By~z"


async def test_async_hook_refuses_a_path_changing_id_before_any_request(conn, aio_api):
    from autoenhance_provider.exceptions import AutoenhanceValidationError

    seen = aio_api(lambda request: Reply(200, {"order_id": "x"}))
    async with AutoenhanceAsyncHook(**FAST) as hook:
        with pytest.raises(AutoenhanceValidationError, match="order_id"):
            await hook.get_order("../orders/x")
    assert seen == []


async def test_async_hook_honours_retry_after_on_429(conn, aio_api, monkeypatch):
    script = OrderScript(Status(429, headers={"Retry-After": "7"}), done_order())
    aio_api(script.handler)
    sleeps: list[float] = []
    test_loop = asyncio.get_running_loop()
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds, *args):
        # asyncio.sleep is global: a sandbox left running by another test (its own loop, in a
        # thread) must keep its real sleeps, and must not be recorded as ours.
        if asyncio.get_running_loop() is not test_loop:
            return await real_sleep(seconds, *args)
        sleeps.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)

    async with AutoenhanceAsyncHook(retry_delay=0, retry_max_delay=30) as hook:
        order = await hook.get_order(ORDER_ID)

    assert order["order_id"] == ORDER_ID
    assert sleeps == [7.0]
    assert script.count == 2


async def test_async_hook_gives_up_after_its_retry_limit(conn, aio_api):
    script = OrderScript(Status(503))
    aio_api(script.handler)

    async with AutoenhanceAsyncHook(retry_limit=2, **FAST) as hook:
        with pytest.raises(AutoenhanceTransientError) as info:
            await hook.get_order(ORDER_ID)

    assert info.value.status_code == 503
    assert script.count == 3


async def test_async_hook_does_not_retry_401(conn, aio_api):
    script = OrderScript(Status(401, {"message": "Unauthorized", "detail": {}}))
    aio_api(script.handler)

    async with AutoenhanceAsyncHook(**FAST) as hook:
        with pytest.raises(AutoenhanceAuthError) as info:
            await hook.get_order(ORDER_ID)

    assert info.value.status_code == 401
    assert script.count == 1
    assert FAKE_KEY not in str(info.value)


async def test_async_hook_404_is_not_found(conn, aio_api):
    script = OrderScript(Status(404))
    aio_api(script.handler)

    async with AutoenhanceAsyncHook(**FAST) as hook:
        with pytest.raises(AutoenhanceNotFoundError):
            await hook.get_order(ORDER_ID)
    assert script.count == 1


async def test_async_hook_refuses_a_redirect_to_another_host(conn, aio_api):
    def handler(request):
        if request.url.host == "api.autoenhance.test":
            return Reply(302, headers={"Location": "https://evil.example.test/steal"})
        return Reply(200, done_order())

    seen = aio_api(handler)

    async with AutoenhanceAsyncHook(**FAST) as hook:
        with pytest.raises(AutoenhanceAPIError, match="redirected to another host"):
            await hook.get_order(ORDER_ID)

    assert [r.url.host for r in seen] == ["api.autoenhance.test"]
    assert all(r.url.host != "evil.example.test" for r in seen)


async def test_async_hook_follows_a_redirect_on_the_api_host(conn, aio_api):
    def handler(request):
        if request.url.path == f"/v3/orders/{ORDER_ID}":
            return Reply(308, headers={"Location": f"/v3/orders/{ORDER_ID}/"})
        return Reply(200, done_order())

    seen = aio_api(handler)

    async with AutoenhanceAsyncHook(**FAST) as hook:
        order = await hook.get_order(ORDER_ID)

    assert order["order_id"] == ORDER_ID
    assert [r.url.path for r in seen] == [f"/v3/orders/{ORDER_ID}", f"/v3/orders/{ORDER_ID}/"]


async def test_async_hook_non_json_body_is_an_api_error(conn, aio_api):
    aio_api(lambda request: Reply(200, body="<html>maintenance</html>"))

    async with AutoenhanceAsyncHook(**FAST) as hook:
        with pytest.raises(AutoenhanceAPIError, match="not JSON"):
            await hook.get_order(ORDER_ID)


@pytest.mark.parametrize("form", ["json", "uri"])
async def test_async_hook_reads_a_connection_from_an_env_var(monkeypatch, aio_api, form):
    if form == "json":
        value = json.dumps(
            {
                "conn_type": "autoenhance",
                "password": "env-key-0123456789",
                "host": "https://api.other-region.test",
                "extra": {"api_version": "2025-05-08"},
            }
        )
    else:
        value = "autoenhance://:env-key-0123456789@api.other-region.test?api_version=2025-05-08"
    monkeypatch.setenv("AIRFLOW_CONN_AE_FROM_ENV", value)
    seen = aio_api(lambda request: Reply(200, done_order()))

    async with AutoenhanceAsyncHook("ae_from_env", **FAST) as hook:
        config = await hook.get_config()
        await hook.get_order(ORDER_ID)

    assert config.base_url == "https://api.other-region.test"
    (request,) = seen
    assert request.url.host == "api.other-region.test"
    assert request.headers["x-api-key"] == "env-key-0123456789"
    assert request.headers["x-api-version"] == "2025-05-08"


async def test_async_hook_constructor_does_no_lookup(monkeypatch):
    from autoenhance_provider.compat import BaseHook  # the provider hooks' base class

    if hasattr(BaseHook, "aget_connection"):  # Airflow >= 3.1 (3.0 has only get_connection)
        monkeypatch.setattr(BaseHook, "aget_connection", mock.AsyncMock(side_effect=AssertionError("lookup")))
    monkeypatch.setattr(BaseHook, "get_connection", mock.Mock(side_effect=AssertionError("lookup")))
    AutoenhanceAsyncHook("does_not_exist")


# ------------------------------------------------------------------------------ connection lookups
async def test_overlapping_lookups_of_a_connection_share_one(conn, aio_api, monkeypatch):
    import autoenhance_provider.hooks.autoenhance_async as module

    aio_api(OrderScript(done_order()).handler)
    real = module.aget_connection
    lookups: list[str] = []

    async def counting(conn_id):
        lookups.append(conn_id)
        await asyncio.sleep(0.01)  # still in flight while the other hooks ask
        return await real(conn_id)

    monkeypatch.setattr(module, "aget_connection", counting)
    hooks = [AutoenhanceAsyncHook(**FAST) for _ in range(20)]
    await asyncio.gather(*(hook.get_order(ORDER_ID) for hook in hooks))
    assert lookups == ["autoenhance_default"]

    # a lookup after those ended reads the connection again (a changed key is seen)
    later = AutoenhanceAsyncHook(**FAST)
    await later.get_order(ORDER_ID)
    assert len(lookups) == 2
    for hook in [*hooks, later]:
        await hook.aclose()


async def test_a_failed_lookup_fails_every_waiter_and_is_not_remembered(conn, monkeypatch):
    import autoenhance_provider.hooks.autoenhance_async as module
    from autoenhance_provider.exceptions import AutoenhanceConfigError

    monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", '{"conn_type": "autoenhance", "password": ""}')
    hooks = [AutoenhanceAsyncHook(**FAST) for _ in range(3)]
    results = await asyncio.gather(*(h.get_order(ORDER_ID) for h in hooks), return_exceptions=True)
    assert all(isinstance(r, AutoenhanceConfigError) for r in results), results
    assert module._LOOKUPS.get(asyncio.get_running_loop()) == {}
