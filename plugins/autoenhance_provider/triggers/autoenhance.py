"""The deferrable wait: poll an order from the triggerer until it is done or the deadline passes.

With ``webhook`` set, the wait also watches the webhook receiver's note that the order finished
(the asset state store, Airflow 3.3+) and polls as soon as it appears, so the regular poll can be
a slow safety net. The poll through :class:`OrderWait` always decides the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from autoenhance_provider.connection import DEFAULT_CONN_ID
from autoenhance_provider.exceptions import AutoenhanceError
from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook
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
#: The receiver's state-store key of a finished order (autoenhance_provider.webhooks.app).
FINISHED_ORDER_KEY = "order:{order_id}"


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
        set, the order's ``order:<id>`` entry in that account asset's state store is read every
        ``webhook_check_interval`` seconds, and a new one triggers a poll at once. Without a state
        store (Airflow < 3.3) or when it cannot be read, the wait falls back to plain polling every
        ``min(poll_interval, DEFAULT_POLL_INTERVAL)`` seconds.
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
        from autoenhance_provider.compat import asset_state_reader

        reader = None
        try:
            from autoenhance_provider.webhooks import order_finished_asset

            reader = asset_state_reader(order_finished_asset(self.webhook).name)
        except Exception as exc:  # a bad name or an Airflow without the store: poll as usual
            self.log.warning("Webhook %r cannot be watched (%s); polling instead", self.webhook, exc)
        # The last poll before this trigger was the sensor's own check, one interval before the first.
        last_poll = time.time() if self.first_poll_at is None else self.first_poll_at - self.poll_interval
        return _WebhookSignal(self, reader, last_poll)

    async def _pause(self, delay: float, signal: _WebhookSignal | None) -> None:
        """Sleep ``delay`` seconds, or less: until the webhook's note says the order finished."""
        if signal is None:
            await asyncio.sleep(delay)
            return
        start = time.monotonic()
        end = start + delay
        fallback = min(self.poll_interval, DEFAULT_POLL_INTERVAL)
        while True:
            if signal.reader is None:  # no store to watch: plain polling, at the usual pace
                end = min(end, start + fallback)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, self.webhook_check_interval))
            if signal.reader is None or time.monotonic() >= end:
                continue  # the poll is due anyway: no read
            if await signal.finished():
                return

    async def _get_order(self, hook: AutoenhanceAsyncHook) -> dict[str, Any]:
        """One poll, never more than ``FINAL_POLL_GRACE`` past ``end_time``, however slow the server."""
        if self.end_time is None:
            return await hook.get_order(self.order_id)
        remaining = max(self.end_time - time.time(), 0.0) + FINAL_POLL_GRACE
        return await asyncio.wait_for(hook.get_order(self.order_id), remaining)


class _WebhookSignal:
    """The receiver's note that an order finished: one keyed state-store read per check.

    A note counts once, and only if it is not older than the last poll (less the clock skew): an
    order finished once before, then given new images, keeps its old note until it finishes again.
    Any failure to read turns the watch off for this run; the wait goes on polling.
    """

    def __init__(
        self,
        trigger: AutoenhanceOrderTrigger,
        reader: Callable[[str], Awaitable[Any]] | None,
        last_poll: float,
    ) -> None:
        self.trigger = trigger
        self.reader = reader
        self.last_poll = last_poll
        self.follow_ups = 0
        self._seen: set[str] = set()
        self._key = FINISHED_ORDER_KEY.format(order_id=trigger.order_id)

    def polled(self) -> None:
        self.last_poll = time.time()

    async def finished(self) -> bool:
        """Whether a new note says the order finished since the last poll."""
        if self.reader is None:
            return False
        try:
            value = await self.reader(self._key)
        except Exception as exc:
            self.reader = None
            self.trigger.log.warning(
                "Cannot read webhook notes for order %s (%s: %s); polling instead",
                self.trigger.order_id,
                type(exc).__name__,
                exc,
            )
            return False
        if value is None:
            return False
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        signature = json.dumps(value, sort_keys=True, default=str)
        if signature in self._seen:
            return False
        self._seen.add(signature)
        finished_at = _epoch(value.get("finished_at") if isinstance(value, dict) else None)
        if finished_at is not None and finished_at < self.last_poll - WEBHOOK_CLOCK_SKEW:
            return False  # an earlier finish, already seen by a poll
        self.follow_ups = WEBHOOK_FOLLOW_UPS
        self.trigger.log.info("Webhook: order %s finished; polling it now", self.trigger.order_id)
        return True


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
