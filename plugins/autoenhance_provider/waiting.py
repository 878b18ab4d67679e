"""Waiting for an order, independent of *how* the waiting happens.

The hook's blocking loop, the sensor (poke/reschedule) and the deferrable trigger all feed what
they see into :class:`OrderWait` and turn its terminal event into a result with
:func:`result_from_event`. So the three modes agree on success, failure, transient-error
tolerance and timeouts. Events are small JSON dicts, safe to send from the triggerer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceConnectionError,
    AutoenhanceError,
    AutoenhanceOrderFailedError,
    AutoenhanceTimeoutError,
    AutoenhanceTransientError,
)
from autoenhance_provider.policy import error_for_status
from autoenhance_provider.status import OrderProgress, evaluate_order

log = logging.getLogger(__name__)

SUCCESS, FAILED, TIMEOUT, ERROR = "success", "failed", "timeout", "error"
DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_TIMEOUT = 24 * 3600.0
#: Consecutive polls that may fail transiently (each after the client's own retries).
DEFAULT_ERROR_BUDGET = 5


class OrderWait:
    """The state of one wait: last progress, transient errors in a row, and the deadline."""

    def __init__(
        self,
        order_id: str,
        *,
        deadline: float | None,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.order_id = order_id
        self.deadline = deadline
        self.error_budget = error_budget
        self.errors_in_a_row = 0
        self._clock = clock
        self._log = logger or log
        self._last_description: str | None = None

    def check(self, order: dict[str, Any]) -> dict[str, Any] | None:
        """Look at a freshly fetched order; return the terminal event, or None to keep waiting."""
        self.errors_in_a_row = 0
        progress = evaluate_order(order)
        description = progress.describe()
        if description != self._last_description:
            self._log.info("Autoenhance %s", description)
            self._last_description = description
        if not progress.done:
            return None
        if progress.failed:
            return self._event(FAILED, progress.describe(), progress)
        return self._event(SUCCESS, progress.describe(), progress)

    def on_error(self, exc: AutoenhanceError) -> dict[str, Any] | None:
        """A poll failed. Transient failures are tolerated within the budget; others end the wait."""
        transient = isinstance(exc, (AutoenhanceTransientError, AutoenhanceConnectionError))
        if transient:
            self.errors_in_a_row += 1
            if self.errors_in_a_row < self.error_budget:
                self._log.warning(
                    "Polling order %s failed (%d/%d in a row), will try again: %s",
                    self.order_id,
                    self.errors_in_a_row,
                    self.error_budget,
                    exc,
                )
                return None
        event = self._event(ERROR, str(exc))
        event["status_code"] = exc.status_code if isinstance(exc, AutoenhanceAPIError) else None
        event["path"] = exc.path if isinstance(exc, AutoenhanceAPIError) else None
        event["api_message"] = exc.api_message if isinstance(exc, AutoenhanceAPIError) else None
        event["conn_id"] = exc.conn_id if isinstance(exc, AutoenhanceAPIError) else None
        return event

    def timeout_event(self) -> dict[str, Any] | None:
        if self.deadline is not None and self._clock() >= self.deadline:
            return self._event(TIMEOUT, f"Timed out waiting for Autoenhance order {self.order_id} to finish")
        return None

    def sleep_for(self, poll_interval: float) -> float:
        """The next pause: the poll interval, cut short so the deadline is checked on time."""
        if self.deadline is None:
            return poll_interval
        return max(0.0, min(poll_interval, self.deadline - self._clock()))

    def _event(self, status: str, message: str, progress: OrderProgress | None = None) -> dict[str, Any]:
        return {
            "status": status,
            "order_id": self.order_id,
            "message": message,
            "progress": progress.to_dict() if progress else None,
        }


def result_from_event(event: dict[str, Any], *, allow_partial: bool = False) -> dict[str, Any]:
    """Turn a terminal event into the wait's result, or raise what the task should fail with."""
    status = event.get("status")
    order_id = str(event.get("order_id"))
    progress = event.get("progress") or {}
    if status == SUCCESS:
        return progress
    if status == FAILED:
        if allow_partial:
            return progress
        raise AutoenhanceOrderFailedError(order_id, list(progress.get("failed") or []))
    if status == TIMEOUT:
        raise AutoenhanceTimeoutError(event.get("message") or f"Timed out waiting for order {order_id}")
    if event.get("status_code"):
        raise error_for_status(
            int(event["status_code"]),
            "GET",
            str(event.get("path") or "?"),
            message=event.get("api_message"),
            conn_id=event.get("conn_id"),
        )
    raise AutoenhanceConnectionError(str(event.get("message") or "polling failed"))
