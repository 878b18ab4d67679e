"""The provider against the sandbox's account limits (issue 19), over real HTTP."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

import pytest

from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook
from autoenhance_provider.ratelimit import reset_limiters

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_budgets():
    reset_limiters()
    yield
    reset_limiters()


def test_threads_and_triggers_of_one_process_stay_under_the_rate(sandbox, sandbox_conn):
    """A sandbox refusing above 60 requests/s and a connection allowing 50: threads (a worker's
    transfers) and coroutines (a triggerer's waits) at once, and not one 429."""
    sandbox.set_limits(rate_limit_per_second=60)
    sandbox_conn(max_requests_per_second=50)
    hook = AutoenhanceHook(retry_delay=0.01, retry_max_delay=0.05)
    order_id = hook.create_order(order_id=str(uuid.uuid4()))["order_id"]

    async def waits() -> None:
        async_hook = AutoenhanceAsyncHook(retry_delay=0.01, retry_max_delay=0.05)
        await asyncio.gather(*(async_hook.get_order(order_id) for _ in range(40)))

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(hook.get_order, order_id) for _ in range(40)]
        asyncio.run(waits())
        for future in futures:
            future.result()
    hook.close()
    stats = sandbox.stats()
    assert stats["limit_refusals"]["rate_limit"] == 0
    assert stats["requests"]["GET /v3/orders/{order_id}"] == {"200": 80}


def test_without_the_client_limit_the_sandbox_refuses_and_retries_recover(sandbox, sandbox_conn):
    """The same load with the provider's limit off: the sandbox's 429s happen and are retried."""
    sandbox.set_limits(rate_limit_per_second=30, rate_limit_burst=3)
    sandbox_conn(max_requests_per_second=0)
    hook = AutoenhanceHook(retry_delay=0.05, retry_max_delay=0.2, retry_limit=10)
    order_id = hook.create_order(order_id=str(uuid.uuid4()))["order_id"]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: hook.get_order(order_id), range(30)))
    hook.close()
    assert sandbox.stats()["limit_refusals"]["rate_limit"] > 0
