"""The deferrable wait: poll an order from the triggerer until it is done or the deadline passes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
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
        if self.first_poll_at is not None:
            # Never past the deadline: the poll at the deadline decides success or timeout.
            first = self.first_poll_at if self.end_time is None else min(self.first_poll_at, self.end_time)
            await asyncio.sleep(max(0.0, first - time.time()))
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
                await asyncio.sleep(wait.sleep_for(self.poll_interval))
        finally:
            await hook.aclose()

    async def _get_order(self, hook: AutoenhanceAsyncHook) -> dict[str, Any]:
        """One poll, never more than ``FINAL_POLL_GRACE`` past ``end_time``, however slow the server."""
        if self.end_time is None:
            return await hook.get_order(self.order_id)
        remaining = max(self.end_time - time.time(), 0.0) + FINAL_POLL_GRACE
        return await asyncio.wait_for(hook.get_order(self.order_id), remaining)
