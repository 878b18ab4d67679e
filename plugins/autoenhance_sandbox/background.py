"""The one background task: deliver due webhooks and save state, sleeping while idle.

It waits on an :class:`asyncio.Event` with a timeout equal to the time until the next due
``image_processed`` event (or the next debounced save), so an idle sandbox with 10,000
processing orders uses no CPU between events. Webhook failures are logged and recorded, never
raised. When a webhook URL is configured, ``{"event": "webhook_updated"}`` is sent once at start-up
(the real service sends it when the webhook settings are saved), then one ``image_processed`` per
image reaching ``processed``/``error``, with ``Authorization: <webhook_token>`` if a token is set.
Every attempt is recorded for ``GET /_sandbox/webhooks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from autoenhance_sandbox import persistence
from autoenhance_sandbox.state import SandboxState, iso

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("autoenhance_sandbox.webhooks")
WEBHOOK_TIMEOUT = 5.0
WEBHOOK_CONCURRENCY = 16


class BackgroundWorker:
    """Owns the wake-up event, the webhook HTTP client and the save schedule."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._semaphore = asyncio.Semaphore(WEBHOOK_CONCURRENCY)
        self._last_save = 0.0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.state.notify = lambda: loop.call_soon_threadsafe(self._wake.set)
        if self.state.config.webhook_url:
            import httpx

            self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT)
            self.state.requeue_unnotified()
            self._spawn({"event": "webhook_updated"})
        self._task = asyncio.create_task(self._run(), name="autoenhance-sandbox-worker")

    async def stop(self) -> None:
        self.state.notify = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sending:
            await asyncio.wait(self._sending, timeout=WEBHOOK_TIMEOUT)
        if self._client is not None:
            await self._client.aclose()
        if self.state.persistent:
            persistence.save(self.state.root, self.state.snapshot())

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self.state.now()
            timeout = self.state.seconds_until_next_event(now)
            if self.state.persistent and self.state.dirty:
                until_save = max(0.0, self._last_save + persistence.SAVE_INTERVAL - now)
                timeout = until_save if timeout is None else min(timeout, until_save)
            if timeout is None or timeout > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            for payload in self.state.due_webhooks(self.state.now()):
                self._spawn(payload)
            save_due = time.time() - self._last_save >= persistence.SAVE_INTERVAL
            if self.state.persistent and self.state.dirty and save_due:
                await self._save()

    async def _save(self) -> None:
        snapshot = self.state.snapshot()
        self._last_save = time.time()
        try:
            await run_in_threadpool(persistence.save, self.state.root, snapshot)
        except OSError:
            log.exception("Could not save the sandbox state")
            self.state.dirty = True

    def _spawn(self, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(self._deliver(payload))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, payload: dict[str, Any]) -> None:
        """POST one event; record the outcome for ``GET /_sandbox/webhooks``."""
        config = self.state.config
        assert self._client is not None
        assert config.webhook_url
        headers = {"Authorization": config.webhook_token} if config.webhook_token else {}
        record: dict[str, Any] = {
            "payload": payload,
            "url": config.webhook_url,
            "sent_at": iso(self.state.now()),
        }
        async with self._semaphore:
            try:
                response = await self._client.post(config.webhook_url, json=payload, headers=headers)
                record.update(status_code=response.status_code, error=None)
            except Exception as exc:
                log.warning("Webhook to %s failed: %s", config.webhook_url, exc)
                record.update(status_code=None, error=f"{exc.__class__.__name__}: {exc}")
        self.state.record_webhook(record)
