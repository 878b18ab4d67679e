"""Async, read-only access to orders and images for the triggerer (``httpx``, shipped with Airflow).

A triggerer runs hundreds of waits in one event loop, so polling must never block it: no sync
hook in a thread pool, no connection lookup on the loop thread. The transport, retries and error
mapping are :mod:`autoenhance_provider.http`'s, the same policy as the sync hook.
"""

from __future__ import annotations

from typing import Any

from autoenhance_provider.compat import BaseHook, aget_connection, amask_secret
from autoenhance_provider.connection import DEFAULT_CONN_ID, AutoenhanceConnectionConfig
from autoenhance_provider.exceptions import AutoenhanceAPIError
from autoenhance_provider.http import AsyncTransport, RetryPolicy
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
            conn = await aget_connection(self.autoenhance_conn_id)
            config = AutoenhanceConnectionConfig.from_connection(conn)
            await amask_secret(config.api_key)
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

    async def get_order(self, order_id: str) -> dict[str, Any]:
        path = f"/v3/orders/{path_segment('order_id', order_id)}"
        order = await (await self._get_transport()).get_json(path)
        if not isinstance(order, dict):
            raise AutoenhanceAPIError(200, "GET", path, "the answer is not an order")
        return order
