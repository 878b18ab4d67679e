"""The deferrable wait: poll an order from the triggerer until it is done or the deadline passes.

With ``webhook`` set, the wait also watches the webhook receiver's note that the order finished
(the asset state store, Airflow 3.3+) and polls as soon as it appears, so the regular poll can be
a slow safety net. The poll through :class:`OrderWait` always decides the outcome.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from autoenhance_provider.connection import DEFAULT_CONN_ID
from autoenhance_provider.exceptions import AutoenhanceError
from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook
from autoenhance_provider.http import within
from autoenhance_provider.records import Order
from autoenhance_provider.waiting import (
    DEFAULT_ERROR_BUDGET,
    DEFAULT_POLL_INTERVAL,
    FINAL_POLL_GRACE,
    OrderWait,
    WaitEvent,
)

#: The safety poll of a wait that ends on the webhook (``poll_interval``'s default with ``webhook``).
WEBHOOK_SAFETY_POLL_INTERVAL = 300.0
#: Seconds between two reads of the receiver's note; the latency a webhook leaves.
DEFAULT_WEBHOOK_CHECK_INTERVAL = 15.0
#: A note may be this much older than the last poll and still count (API server and triggerer
#: clocks differ a little); older notes are from an earlier finish of the same order.
WEBHOOK_CLOCK_SKEW = 60.0
#: Extra polls, one check interval apart, when the API does not yet agree with a fresh note.
WEBHOOK_FOLLOW_UPS = 2
#: How far back a triggerer's first read looks (a wait resumed after a restart finds a recent note).
WATCH_BACKFILL = timedelta(minutes=5)


class AutoenhanceOrderTrigger(BaseTrigger):
    """Wait for an Autoenhance order without holding a worker slot.

    Read-only (it only GETs the order), so a triggerer restart that re-runs it from its
    serialized kwargs is harmless. Emits exactly one event (a :class:`WaitEvent` as a dict).

    :param order_id: the order to wait for.
    :param autoenhance_conn_id: the Airflow connection to use.
    :param poll_interval: seconds between two polls.
    :param end_time: wall-clock deadline as epoch seconds (``time.time()``), so the deadline
        survives a move to another triggerer process; None waits without a deadline.
    :param error_budget: consecutive failed polls (each after the client's retries) tolerated.
    :param hook_params: keyword arguments for :class:`AutoenhanceAsyncHook` (timeouts, retries).
    :param first_poll_at: wall-clock time (epoch seconds) of the first poll; None polls at once.
        :class:`OrderProcessedSensor` sets it one interval after its own check before deferring,
        so the order is not read twice in a row (as in poke mode: check, sleep, check).
    :param errors_in_a_row: failed polls already counted by the sensor's own check.
    :param webhook: the receiver's webhook name (``"default"`` for ``/autoenhance/webhook``); when
        set, the receiver's ``finished:<minute>`` entries in that account asset's state store are
        read every ``webhook_check_interval`` seconds (by one watcher for all waits of this
        triggerer), and a note of this order newer than the last poll triggers a poll at once.
        Without a state store (Airflow < 3.3) or when it cannot be read, the wait falls back to
        plain polling every ``min(poll_interval, DEFAULT_POLL_INTERVAL)`` seconds.
    :param webhook_check_interval: seconds between two reads of the state store.
    """

    def __init__(
        self,
        order_id: str,
        autoenhance_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        end_time: float | None = None,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        hook_params: dict[str, Any] | None = None,
        first_poll_at: float | None = None,
        errors_in_a_row: int = 0,
        webhook: str | None = None,
        webhook_check_interval: float = DEFAULT_WEBHOOK_CHECK_INTERVAL,
    ) -> None:
        super().__init__()
        self.order_id = str(order_id)
        self.autoenhance_conn_id = autoenhance_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.error_budget = int(error_budget)
        self.hook_params = dict(hook_params or {})
        self.first_poll_at = None if first_poll_at is None else float(first_poll_at)
        self.errors_in_a_row = int(errors_in_a_row)
        self.webhook = webhook or None
        self.webhook_check_interval = float(webhook_check_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "order_id": self.order_id,
                "autoenhance_conn_id": self.autoenhance_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "error_budget": self.error_budget,
                "hook_params": self.hook_params,
                "first_poll_at": self.first_poll_at,
                "errors_in_a_row": self.errors_in_a_row,
                "webhook": self.webhook,
                "webhook_check_interval": self.webhook_check_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        wait = OrderWait(
            self.order_id,
            deadline=self.end_time,
            error_budget=self.error_budget,
            errors_in_a_row=self.errors_in_a_row,
            logger=self.log,
        )
        signal = self._webhook_signal()
        try:
            async for event in self._wait(wait, signal):
                yield event
                return
        finally:
            if signal is not None:
                signal.close()

    async def _wait(self, wait: OrderWait, signal: _WebhookSignal | None) -> AsyncIterator[TriggerEvent]:
        if self.first_poll_at is not None:
            # Never past the deadline: the poll at the deadline decides success or timeout.
            first = self.first_poll_at if self.end_time is None else min(self.first_poll_at, self.end_time)
            await self._pause(max(0.0, first - time.time()), signal)
        hook = AutoenhanceAsyncHook(self.autoenhance_conn_id, **self.hook_params)
        try:
            while True:
                try:
                    event = wait.check(await self._get_order(hook))
                except asyncio.TimeoutError:  # the deadline came in the middle of a request
                    event = None
                except AutoenhanceError as exc:
                    event = wait.on_error(exc)
                except Exception as exc:  # anything unexpected still ends in one clean event
                    event = WaitEvent(WaitEvent.ERROR, self.order_id, f"{type(exc).__name__}: {exc}")
                event = event or wait.timeout_event()
                if event is not None:
                    yield TriggerEvent(event.to_dict())
                    return
                if signal is None:
                    await asyncio.sleep(wait.sleep_for(self.poll_interval))
                    continue
                signal.polled()
                interval = self.poll_interval
                if signal.follow_ups > 0:  # the note came before the API agreed: look again soon
                    signal.follow_ups -= 1
                    interval = min(interval, self.webhook_check_interval)
                await self._pause(wait.sleep_for(interval), signal)
        finally:
            await hook.aclose()

    def _webhook_signal(self) -> _WebhookSignal | None:
        if self.webhook is None:
            return None
        # The last poll before this trigger was the sensor's own check, one interval before the first.
        last_poll = time.time() if self.first_poll_at is None else self.first_poll_at - self.poll_interval
        signal = _WebhookSignal(self, last_poll)
        try:
            _AccountWatcher.for_webhook(self.webhook, self.webhook_check_interval).add(signal)
        except Exception as exc:  # a bad name or an Airflow without the store: poll as usual
            self.log.warning("Webhook %r cannot be watched (%s); polling instead", self.webhook, exc)
            signal.broken = True
        return signal

    async def _pause(self, delay: float, signal: _WebhookSignal | None) -> None:
        """Sleep ``delay`` seconds, or less: until the webhook's note says the order finished."""
        if signal is None:
            await asyncio.sleep(delay)
            return
        start = time.monotonic()
        end = start + delay
        fallback = min(self.poll_interval, DEFAULT_POLL_INTERVAL)
        while True:
            if signal.broken:  # no store to watch: plain polling, at the usual pace
                end = min(end, start + fallback)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            if signal.broken:
                await asyncio.sleep(remaining)
                continue
            try:
                await within(remaining, signal.noted.wait())
            except asyncio.TimeoutError:
                return  # the poll is due
            if signal.take():
                return

    async def _get_order(self, hook: AutoenhanceAsyncHook) -> Order:
        """One poll, never more than ``FINAL_POLL_GRACE`` past ``end_time``, however slow the server."""
        if self.end_time is None:
            return await hook.get_order(self.order_id)
        remaining = max(self.end_time - time.time(), 0.0) + FINAL_POLL_GRACE
        return await within(remaining, hook.get_order(self.order_id))


class _WebhookSignal:
    """One wait's view of the receiver's notes: set by the account's watcher, taken by the wait.

    A note counts once, and only if it is not older than the last poll (less the clock skew): an
    order finished once before, then given new images, is not hurried by its old note.
    """

    def __init__(self, trigger: AutoenhanceOrderTrigger, last_poll: float) -> None:
        self.trigger = trigger
        self.order_id = trigger.order_id
        self.last_poll = last_poll
        self.follow_ups = 0
        self.broken = False
        self.noted = asyncio.Event()
        self.watcher: _AccountWatcher | None = None
        self._pending: list[Any] = []
        self._seen: set[str] = set()

    def notify(self, finished_at: Any) -> None:
        self._pending.append(finished_at)
        self.noted.set()

    def fail(self) -> None:
        self.broken = True
        self.noted.set()

    def polled(self) -> None:
        self.last_poll = time.time()

    def take(self) -> bool:
        """Whether a note arrived that says the order finished since the last poll."""
        self.noted.clear()
        fresh = False
        for finished_at in self._pending:
            signature = json.dumps(finished_at, default=str)
            if signature in self._seen:
                continue
            self._seen.add(signature)
            when = _epoch(finished_at)
            if when is None or when >= self.last_poll - WEBHOOK_CLOCK_SKEW:
                fresh = True
        self._pending.clear()
        if fresh:
            self.follow_ups = WEBHOOK_FOLLOW_UPS
            self.trigger.log.info("Webhook: order %s finished; polling it now", self.order_id)
        return fresh

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.remove(self)


class _AccountWatcher:
    """Reads one account's minute entries for every wait in this event loop.

    One or two keyed reads per check (this minute's entry and the previous one's), however many
    orders are waited for: a read costs the triggerer's supervisor an Execution API call, so one
    read per waiting order would cost more than polling Autoenhance. A failed read turns the
    watch off for the waits it serves (they poll at the usual pace); the next wait starts afresh.
    """

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _AccountWatcher]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, webhook: str, interval: float) -> None:
        from autoenhance_provider.compat import asset_state_reader
        from autoenhance_provider.webhooks import order_finished_asset

        self.webhook = webhook
        self.interval = interval
        self.reader = asset_state_reader(order_finished_asset(webhook).name)
        if self.reader is None:
            raise RuntimeError("this Airflow has no asset state store (3.3+)")
        self.waiters: dict[str, set[_WebhookSignal]] = {}
        self.read_from = datetime.now(timezone.utc) - WATCH_BACKFILL
        self.task: asyncio.Task[None] | None = None
        self.reads = 0

    @classmethod
    def for_webhook(cls, webhook: str, interval: float) -> _AccountWatcher:
        watchers = cls._by_loop.setdefault(asyncio.get_running_loop(), {})
        watcher = watchers.get(webhook)
        if watcher is None:
            watcher = watchers[webhook] = cls(webhook, interval)
        return watcher

    def add(self, signal: _WebhookSignal) -> None:
        self.waiters.setdefault(signal.order_id, set()).add(signal)
        signal.watcher = self
        self.interval = min(self.interval, signal.trigger.webhook_check_interval)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"autoenhance-{self.webhook}"
            )

    def remove(self, signal: _WebhookSignal) -> None:
        waiting = self.waiters.get(signal.order_id)
        if waiting is not None:
            waiting.discard(signal)
            if not waiting:
                del self.waiters[signal.order_id]

    async def _run(self) -> None:
        try:
            while self.waiters:
                await asyncio.sleep(self.interval)
                if self.waiters:
                    await self._read()
        except Exception as exc:
            log_to = next((s.trigger.log for group in self.waiters.values() for s in group), None)
            if log_to is not None:
                log_to.warning(
                    "Cannot read webhook notes of %r (%s: %s); waits poll instead",
                    self.webhook,
                    type(exc).__name__,
                    exc,
                )
            for group in list(self.waiters.values()):
                for signal in group:
                    signal.fail()
            self.waiters.clear()
        finally:
            watchers = self._by_loop.get(asyncio.get_running_loop(), {})
            if watchers.get(self.webhook) is self:
                del watchers[self.webhook]

    async def _read(self) -> None:
        """Read the minute entries since the last read (and the minute before: late writes)."""
        from autoenhance_provider.webhooks.notes import minute_key, orders_in

        assert self.reader is not None
        now = datetime.now(timezone.utc)
        minute = max(self.read_from, now - WATCH_BACKFILL).replace(second=0, microsecond=0)
        while minute <= now:
            self.reads += 1
            orders = orders_in(await self.reader(minute_key(minute)))
            for order_id in orders.keys() & self.waiters.keys():
                for signal in list(self.waiters.get(order_id, ())):
                    signal.notify(orders[order_id])
            minute += timedelta(minutes=1)
        self.read_from = now - timedelta(minutes=1)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
