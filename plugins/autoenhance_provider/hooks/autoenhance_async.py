"""Async, read-only access to orders for the triggerer (``aiohttp``).

A triggerer runs hundreds of waits in one event loop, so polling must never block it: no sync
hook in a thread pool, no connection lookup on the loop thread. The transport, retries and error
mapping are :mod:`autoenhance_provider.http`'s, the same policy as the sync hook.
"""

from __future__ import annotations

import asyncio
import weakref

from autoenhance_provider.compat import BaseHook, aget_connection, amask_secret
from autoenhance_provider.connection import DEFAULT_CONN_ID, AutoenhanceConnectionConfig
from autoenhance_provider.http import AsyncTransport, RetryPolicy
from autoenhance_provider.records import Order
from autoenhance_provider.validation import path_segment


class AutoenhanceAsyncHook(BaseHook):
    """Poll orders from an event loop.

    :param autoenhance_conn_id: the Airflow connection to use.
    :param timeout: seconds, or a (connect, read) pair; overrides the connection's ``timeout``.
    :param retry_limit: retries per request after the first attempt.
    :param retry_delay: first backoff in seconds (doubles per retry, with jitter).
    :param retry_max_delay: longest single backoff, also the cap on ``Retry-After``.
    :param pool_size: accepted and ignored, so that one ``hook_params`` dict serves both hooks.
    """

    def __init__(
        self,
        autoenhance_conn_id: str = DEFAULT_CONN_ID,
        *,
        timeout: float | tuple[float, float] | None = None,
        retry_limit: int = 5,
        retry_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        pool_size: int | None = None,
    ) -> None:
        super().__init__()
        self.autoenhance_conn_id = autoenhance_conn_id
        self._timeout_override = timeout
        self.retry_policy = RetryPolicy.for_hook(retry_limit, retry_delay, retry_max_delay)
        self._transport: AsyncTransport | None = None

    async def get_config(self) -> AutoenhanceConnectionConfig:
        return (await self._get_transport()).config

    async def _get_transport(self) -> AsyncTransport:
        if self._transport is None:
            config = await _shared_lookup(self.autoenhance_conn_id)
            self._transport = AsyncTransport(
                config,
                self.retry_policy,
                self.log,
                timeout=self._timeout_override,
                conn_id=self.autoenhance_conn_id,
            )
        return self._transport

    async def aclose(self) -> None:
        """Release the shared client; the last user of the event loop closes it."""
        if self._transport is not None:
            await self._transport.aclose()

    async def __aenter__(self) -> AutoenhanceAsyncHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get_order(self, order_id: str) -> Order:
        """The order, as :meth:`AutoenhanceHook.get_order` reads it (a malformed answer raises
        :class:`~autoenhance_provider.exceptions.AutoenhanceAPIError` saying what was wrong)."""
        path = f"/v3/orders/{path_segment('order_id', order_id)}"
        return Order.parse(await (await self._get_transport()).get_json(path), path)


_LOOKUPS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, asyncio.Future[AutoenhanceConnectionConfig]]
] = weakref.WeakKeyDictionary()


async def _shared_lookup(conn_id: str) -> AutoenhanceConnectionConfig:
    """The connection's settings; lookups that overlap in one event loop share one.

    A triggerer that starts a thousand waits at once (after a restart, say) reads the connection
    once instead of a thousand times (each a hop to a thread and to the secrets backends). Only
    overlapping lookups share: a later one reads the connection afresh, so a changed key is seen.
    """
    pending = _LOOKUPS.setdefault(asyncio.get_running_loop(), {})
    lookup = pending.get(conn_id)
    if lookup is None:
        lookup = pending[conn_id] = asyncio.ensure_future(_lookup(conn_id))

        def forget(done: asyncio.Future[AutoenhanceConnectionConfig]) -> None:
            if pending.get(conn_id) is done:
                del pending[conn_id]

        lookup.add_done_callback(forget)
    return await asyncio.shield(lookup)  # one waiter cancelled does not cancel the others


async def _lookup(conn_id: str) -> AutoenhanceConnectionConfig:
    config = AutoenhanceConnectionConfig.from_connection(await aget_connection(conn_id))
    await amask_secret(config.api_key)
    return config
