"""The async transport (``http.aio``): the proxy read from the environment, one client per event loop."""

from __future__ import annotations

import asyncio

from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook
from autoenhance_provider.http.aio import _SHARED_CLIENTS
from support.api import ORDER_ID, OrderScript, done_order
from support.waits import TRIGGER_FAST as FAST


# ------------------------------------------------------------------------------ proxy (async client)
def test_the_async_proxy_is_read_from_the_environment_as_requests_reads_it(monkeypatch):
    from autoenhance_provider.http.aio import Proxy

    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert Proxy.from_environment("https://api.autoenhance.ai") == Proxy()

    monkeypatch.setenv("HTTPS_PROXY", "http://corp%40user:s3cr%2Ft@proxy.corp:3128")
    proxy = Proxy.from_environment("https://api.autoenhance.ai")
    assert proxy.url == "http://proxy.corp:3128"
    assert proxy.headers == {"Authorization": "Basic Y29ycEB1c2VyOnMzY3IvdA=="}  # corp@user:s3cr/t
    assert "s3cr" not in repr(proxy)
    assert "Basic" not in repr(proxy)

    monkeypatch.setenv("NO_PROXY", ".autoenhance.ai")
    assert Proxy.from_environment("https://api.autoenhance.ai") == Proxy()


# ------------------------------------------------------------------------------ shared client
def client_of(hook):
    """The session a hook's transport shares (None before first use)."""
    entry = hook._transport._entry if hook._transport else None
    return entry.session if entry else None


async def test_hooks_on_one_loop_share_one_client_until_the_last_closes(conn, aio_api):
    aio_api(OrderScript(done_order()).handler)
    hooks = [AutoenhanceAsyncHook(**FAST) for _ in range(3)]
    for hook in hooks:
        await hook.get_order(ORDER_ID)
    clients = {id(client_of(hook)) for hook in hooks}
    assert len(clients) == 1
    client = client_of(hooks[0])
    await hooks[0].aclose()
    await hooks[1].aclose()
    assert not client.closed
    await hooks[2].aclose()
    assert client.closed
    assert _SHARED_CLIENTS.get(asyncio.get_running_loop()) == {}


async def test_a_closed_hook_can_be_used_again(conn, aio_api):
    aio_api(OrderScript(done_order()).handler)
    hook = AutoenhanceAsyncHook(**FAST)
    await hook.get_order(ORDER_ID)
    await hook.aclose()
    await hook.aclose()  # twice is harmless
    assert (await hook.get_order(ORDER_ID))["order_id"] == ORDER_ID
    await hook.aclose()


async def test_different_settings_get_different_clients(conn, aio_api):
    aio_api(OrderScript(done_order()).handler)
    a, b = AutoenhanceAsyncHook(timeout=5, **FAST), AutoenhanceAsyncHook(timeout=7, **FAST)
    await a.get_order(ORDER_ID)
    await b.get_order(ORDER_ID)
    assert client_of(a) is not client_of(b)
    await a.aclose()
    await b.aclose()
