"""Async, read-only access to orders and images for the triggerer (``httpx``, shipped with Airflow).

A triggerer runs hundreds of waits in one event loop, so polling must never block it: no sync
hook in a thread pool, no connection lookup on the loop thread. Retries and error mapping come
from :mod:`autoenhance_provider.policy`, the same policy as the sync hook.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from functools import cache
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from autoenhance_provider._compat import BaseHook
from autoenhance_provider._transport import install_log_redaction, user_agent
from autoenhance_provider.connection import DEFAULT_CONN_ID, AutoenhanceConnectionConfig
from autoenhance_provider.exceptions import AutoenhanceAPIError
from autoenhance_provider.policy import (
    Failure,
    Retrier,
    RetryPolicy,
    failure_for_exception,
    failure_for_status,
)
from autoenhance_provider.settings import path_segment

install_log_redaction()
_MAX_REDIRECTS = 5
#: Requests in flight per shared client (one per event loop and connection). httpcore's pool
#: bookkeeping costs O(connections x waiting requests) per request, so a burst of 1,000 polls
#: costs 0.8 ms CPU each at 4, 1.2 ms at 10, 2.9 ms at 32 (``make bench``). 6 still allows
#: 60 polls/s at 100 ms latency (1,800 waits at a 30 s interval) and keeps a triggerer far
#: below the API's limit of 300 requests/second per IP.
MAX_IN_FLIGHT = 6


class _SharedClient:
    """One ``httpx.AsyncClient`` per event loop and connection settings, counted by its users.

    A triggerer runs every wait in one loop. A client per trigger cost about 0.5 ms of CPU to
    build and close, one TCP (and TLS) connection each, and ~35 KiB of memory: at 1,000 waits
    that was a third of the triggerer's CPU for polling (``make bench``). Hooks on the same loop
    with the same settings now share one client and its connection pool; the last hook to close
    closes it. Only the loop's own thread touches this, so no lock is needed.
    """

    __slots__ = ("client", "slots", "users")

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.users = 0
        # Requests beyond this wait here (FIFO, O(1)) rather than in httpcore's pool, whose
        # bookkeeping costs O(connections) per request and O(queued x connections) when queued.
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)


_SHARED_CLIENTS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], _SharedClient]
] = weakref.WeakKeyDictionary()


@cache
def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """One SSL context per CA setting for the whole process (building one costs milliseconds)."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class AutoenhanceAsyncHook(BaseHook):
    """Poll orders and images from an event loop.

    :param autoenhance_conn_id: the Airflow connection to use.
    :param timeout: seconds, or a (connect, read) pair; overrides the connection's ``timeout``.
    :param retry_limit: retries per request after the first attempt.
    :param retry_delay: first backoff in seconds (doubles per retry, with jitter).
    :param retry_max_delay: longest single backoff, also the cap on ``Retry-After``.
    :param pool_size: accepted (and unused) so that one ``hook_params`` dict serves both hooks.
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
        self._config: AutoenhanceConnectionConfig | None = None
        self._client: httpx.AsyncClient | None = None
        self._client_key: tuple[Any, ...] = ()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def get_config(self) -> AutoenhanceConnectionConfig:
        if self._config is None:
            conn = await _get_connection(self.autoenhance_conn_id)
            self._config = AutoenhanceConnectionConfig.from_connection(conn)
            await _mask(self._config.api_key)
        return self._config

    async def _get_client(self) -> httpx.AsyncClient:
        """The event loop's shared client for this connection's settings (see ``_SharedClient``)."""
        if self._client is None:
            config = await self.get_config()
            connect, read = config.timeouts(self._timeout_override)
            headers = {"User-Agent": user_agent("httpx"), **config.api_headers()}
            key = (config.base_url, tuple(sorted(headers.items())), connect, read, config.verify)
            shared = _SHARED_CLIENTS.setdefault(asyncio.get_running_loop(), {})
            entry = shared.get(key)
            if entry is None or entry.client.is_closed:
                entry = shared[key] = _SharedClient(
                    httpx.AsyncClient(
                        headers=headers,
                        timeout=httpx.Timeout(read, connect=connect),
                        verify=_ssl_context(config.verify),
                        follow_redirects=False,
                        limits=httpx.Limits(
                            max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT
                        ),
                    )
                )
            entry.users += 1
            self._client, self._client_key, self._slots = entry.client, key, entry.slots
        return self._client

    async def aclose(self) -> None:
        """Release the client; the last hook of the loop using it closes it."""
        if self._client is None:
            return
        client, self._client = self._client, None
        shared = _SHARED_CLIENTS.get(asyncio.get_running_loop(), {})
        entry = shared.get(self._client_key)
        if entry is not None and entry.client is client:
            entry.users -= 1
            if entry.users > 0:
                return
            del shared[self._client_key]
        await client.aclose()

    async def __aenter__(self) -> AutoenhanceAsyncHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get_order(self, order_id: str) -> dict[str, Any]:
        return await self._get_json(f"/v3/orders/{path_segment('order_id', order_id)}")

    async def get_image(self, image_id: str) -> dict[str, Any]:
        return await self._get_json(f"/v3/images/{path_segment('image_id', image_id)}")

    async def _get_json(self, path: str) -> Any:
        config = await self.get_config()
        client = await self._get_client()
        retrier = Retrier(self.retry_policy, resend_safe=True)
        while True:
            try:
                async with self._slots:
                    response = await self._get_same_origin(client, config, f"{config.base_url}{path}")
            except httpx.HTTPError as exc:
                failure = _failure_for_httpx_exception(exc, path)
            else:
                if response.status_code < 400:
                    try:
                        return response.json() if response.content else None
                    except ValueError:
                        raise AutoenhanceAPIError(
                            response.status_code, "GET", path, "the response was not JSON"
                        ) from None
                failure = failure_for_status(
                    response.status_code,
                    "GET",
                    path,
                    response.text,
                    response.headers,
                    secret=config.api_key,
                    conn_id=self.autoenhance_conn_id,
                )
            delay = retrier.next_delay(failure)
            self.log.warning(
                "Autoenhance GET %s failed (%s); retry %d of %d in %.1fs",
                path,
                failure.reason,
                retrier.failed_attempts,
                retrier.policy.max_attempts - 1,
                delay,
            )
            await asyncio.sleep(delay)

    @staticmethod
    async def _get_same_origin(
        client: httpx.AsyncClient, config: AutoenhanceConnectionConfig, url: str
    ) -> httpx.Response:
        """GET, following redirects only within the API host (the key must not travel elsewhere)."""
        for _ in range(_MAX_REDIRECTS):
            response = await client.get(url)
            location = response.headers.get("Location")
            if not (response.is_redirect and location):
                return response
            target = urljoin(url, location)
            if not config.same_origin(target):
                raise AutoenhanceAPIError(
                    response.status_code, "GET", urlsplit(url).path, "redirected to another host"
                )
            url = target
        raise AutoenhanceAPIError(response.status_code, "GET", urlsplit(url).path, "too many redirects")


def _failure_for_httpx_exception(exc: httpx.HTTPError, path: str) -> Failure:
    sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    return failure_for_exception(exc, "GET", path, sent=sent, network=isinstance(exc, httpx.TransportError))


async def _get_connection(conn_id: str) -> Any:
    """Look the connection up without blocking the event loop."""
    getter = getattr(BaseHook, "aget_connection", None)
    if getter is not None:
        return await getter(conn_id)
    from asgiref.sync import sync_to_async  # pragma: no cover - Airflow 3.0

    return await sync_to_async(BaseHook.get_connection)(conn_id)  # pragma: no cover


async def _mask(secret: str) -> None:
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # pragma: no cover - Airflow 3.0
        from autoenhance_provider._compat import mask_secret

        mask_secret(secret)
        return
    await amask_secret(secret)
