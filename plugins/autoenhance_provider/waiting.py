"""Waiting for an order: what its images add up to, the one rule for "done", the one wait state machine.

The hook's blocking loop (:func:`wait_until_done`), the sensor (poke/reschedule) and the
deferrable trigger all feed what they see into :class:`OrderWait` and turn its terminal
:class:`WaitEvent` into a result with :meth:`WaitEvent.result`. So the three modes agree on
success, failure, transient-error tolerance and timeouts. An event crosses from the triggerer to
the worker as a small JSON dict (:meth:`WaitEvent.to_dict` / :meth:`WaitEvent.from_dict`); errors
are rebuilt from it, never pickled. The short wait of an upload until the API has registered its
images is here too (:func:`wait_until_registered`). The status vocabulary
(:class:`~autoenhance_provider.records.ImageStatus`) and the typed orders it reads are
:mod:`autoenhance_provider.records`'.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceConnectionError,
    AutoenhanceDailyLimitError,
    AutoenhanceError,
    AutoenhanceOrderFailedError,
    AutoenhanceTimeoutError,
    AutoenhanceTransientError,
    error_for_status,
    refusal_kind,
)
from autoenhance_provider.http import deadline_cap
from autoenhance_provider.records import Image, ImageStatus, Order

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_TIMEOUT = 24 * 3600.0
#: The poll at a wait's deadline decides success or timeout; it may run this long past it, no longer.
FINAL_POLL_GRACE = 1.0
#: Consecutive polls that may fail transiently (each after the client's own retries).
DEFAULT_ERROR_BUDGET = 5
#: How long an upload waits for the API to register the images it put (``wait_for_upload``).
UPLOAD_CONFIRM_TIMEOUT = 120.0


class OrderProgress(NamedTuple):
    """What one look at an order tells us (a NamedTuple: made on every poll, cheap to import)."""

    order_id: str
    done: bool
    total: int
    processed: int
    pending: int
    is_merging: bool
    is_processing: bool
    failed: list[dict[str, Any]]
    #: status -> number of images, for messages ("3/4 processed, 1 processing").
    counts: dict[str, int]

    def describe(self) -> str:
        if self.is_merging:
            return f"order {self.order_id}: grouping HDR brackets"
        if self.total == 0:
            return f"order {self.order_id}: no images yet"
        return (
            f"order {self.order_id}: {self.processed}/{self.total} processed, "
            f"{len(self.failed)} failed, {self.pending} pending"
        )

    def state(self) -> str:
        """The order as a person would summarise it at the end of a wait."""
        if self.is_merging:
            return "still grouping HDR brackets"
        if self.total == 0:
            return "0 images — was anything uploaded into it?"
        others = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()) if s != "processed")
        return f"{self.processed}/{self.total} processed" + (f", {others}" if others else "")

    def to_dict(self) -> dict[str, Any]:
        """A small JSON-able summary (for trigger events and XCom)."""
        return {
            "order_id": self.order_id,
            "done": self.done,
            "total": self.total,
            "processed": self.processed,
            "pending": self.pending,
            "failed": self.failed,
        }


def image_failure(image: Image) -> dict[str, Any]:
    """The fields worth reporting about a failed image (a JSON dict: it travels in events and XCom)."""
    return {
        "image_id": image.image_id,
        "image_name": image.name,
        "status": image.status_word,
        "status_reason": image.status_reason,
    }


def evaluate_order(order: Order | dict[str, Any]) -> OrderProgress:
    """Decide whether an order is finished.

    Done means: not grouping brackets, not processing, at least one image, and every image in a
    terminal state. Unknown statuses count as still running, so a new API word can delay the
    end of a wait but never end it early. An answer that is not a record yet is read with
    :meth:`Order.parse` (a malformed one raises :class:`AutoenhanceAPIError`).
    """
    order = Order.of(order)
    images = order.images
    failed = [image_failure(img) for img in images if img.status.is_failure]
    processed = sum(img.status is ImageStatus.PROCESSED for img in images)
    pending = sum(not img.status.is_terminal for img in images)
    done = bool(images) and not order.is_merging and not order.is_processing and pending == 0
    return OrderProgress(
        order_id=order.order_id,
        done=done,
        total=len(images),
        processed=processed,
        pending=pending,
        is_merging=order.is_merging,
        is_processing=order.is_processing,
        failed=failed,
        counts=dict(Counter(img.status.value for img in images)),
    )


class _WaitEventFields(NamedTuple):
    status: str
    order_id: str
    message: str
    progress: dict[str, Any] | None = None
    status_code: int | None = None
    path: str | None = None
    api_message: str | None = None
    conn_id: str | None = None


class WaitEvent(_WaitEventFields):
    """How a wait ended: ``success``, ``failed`` (images in error), ``timeout`` or ``error``.

    For ``error`` it carries what is needed to rebuild the exception the task fails with.
    (Immutable; a NamedTuple because one is made for every wait that ends.)
    """

    __slots__ = ()

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WaitEvent:
        status_code = data.get("status_code")
        return cls(
            status=str(data.get("status") or cls.ERROR),
            order_id=str(data.get("order_id") or ""),
            message=str(data.get("message") or ""),
            progress=data.get("progress") if isinstance(data.get("progress"), dict) else None,
            status_code=int(status_code) if isinstance(status_code, int) else None,
            path=str(data["path"]) if data.get("path") is not None else None,
            api_message=str(data["api_message"]) if data.get("api_message") is not None else None,
            conn_id=str(data["conn_id"]) if data.get("conn_id") is not None else None,
        )

    def result(self, *, allow_partial: bool = False, resume: str | None = None) -> dict[str, Any]:
        """The wait's result, or raise what the task should fail with (``resume``: how to resume
        after images were refused by the daily limit, in the task's own words)."""
        progress = self.progress or {}
        if self.status == self.SUCCESS or (self.status == self.FAILED and allow_partial):
            return progress
        if self.status == self.FAILED:
            failed = list(progress.get("failed") or [])
            if any(refusal_kind(img.get("status_reason")) == "daily_limit" for img in failed):
                # Refused by the daily limit, not failed: say how to resume (docs/limits.md).
                raise AutoenhanceDailyLimitError(
                    self.order_id, failed, progress.get("processed"), progress.get("total"), resume
                )
            raise AutoenhanceOrderFailedError(self.order_id, failed)
        if self.status == self.TIMEOUT:
            raise AutoenhanceTimeoutError(self.message or f"Timed out waiting for order {self.order_id}")
        if self.status_code:
            raise error_for_status(
                int(self.status_code),
                "GET",
                self.path or "?",
                message=self.api_message,
                conn_id=self.conn_id,
            )
        raise AutoenhanceConnectionError(self.message or "polling failed")


class OrderWait:
    """The state of one wait: last progress, transient errors in a row, and the deadline."""

    def __init__(
        self,
        order_id: str,
        *,
        deadline: float | None,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        errors_in_a_row: int = 0,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | Any = None,
    ) -> None:
        self.order_id = order_id
        self.deadline = deadline
        self.error_budget = error_budget
        self.errors_in_a_row = errors_in_a_row
        self.last_progress: OrderProgress | None = None
        self._clock = clock
        self._started = clock()
        self._log = logger or log
        self._last_description: str | None = None

    def check(self, order: Order | Any) -> WaitEvent | None:
        """Look at a freshly fetched order; return the terminal event, or None to keep waiting."""
        if not isinstance(order, (Order, dict)):
            raise AutoenhanceTransientError(200, "GET", f"/v3/orders/{self.order_id}", "not an order object")
        self.errors_in_a_row = 0
        progress = self.last_progress = evaluate_order(order)
        description = progress.describe()
        if description != self._last_description:
            self._log.info("Autoenhance %s", description)
            self._last_description = description
        if not progress.done:
            return None
        status = WaitEvent.FAILED if progress.failed else WaitEvent.SUCCESS
        return WaitEvent(status, self.order_id, description, progress.to_dict())

    def on_error(self, exc: AutoenhanceError) -> WaitEvent | None:
        """A poll failed. Transient failures are tolerated within the budget; others end the wait."""
        if isinstance(exc, (AutoenhanceTransientError, AutoenhanceConnectionError)):
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
        api = exc if isinstance(exc, AutoenhanceAPIError) else None
        return WaitEvent(
            WaitEvent.ERROR,
            self.order_id,
            str(exc),
            status_code=api.status_code if api else None,
            path=api.path if api else None,
            # The reason travels with the event (a malformed answer has it in its body only).
            api_message=(api.api_message or api.body or None) if api else None,
            conn_id=api.conn_id if api else None,
        )

    def timeout_event(self, started: float | None = None) -> WaitEvent | None:
        """The timeout event once the deadline has passed, saying what the order looked like."""
        if self.deadline is None or self._clock() < self.deadline:
            return None
        return WaitEvent(WaitEvent.TIMEOUT, self.order_id, self.timeout_message(started))

    def timeout_message(self, started: float | None = None) -> str:
        waited = self._clock() - (self._started if started is None else started)
        state = self.last_progress.state() if self.last_progress else "never read successfully"
        return f"Timed out after {waited:.0f} s waiting for Autoenhance order {self.order_id}: {state}"

    def sleep_for(self, poll_interval: float) -> float:
        """The next pause: the poll interval, cut short so the deadline is checked on time."""
        if self.deadline is None:
            return poll_interval
        return max(0.0, min(poll_interval, self.deadline - self._clock()))


def wait_until_done(
    get_order: Callable[[str], Order],
    order_id: str,
    *,
    poll_interval: float,
    timeout: float,
    allow_partial: bool,
    logger: logging.Logger | Any = None,
) -> dict[str, Any]:
    """Poll in this thread until the order is done (:meth:`WaitEvent.result`), the blocking mode."""
    wait = OrderWait(order_id, deadline=time.time() + float(timeout), logger=logger)
    # No request may run past the wait's own deadline, however slowly the server answers.
    with deadline_cap(time.monotonic() + float(timeout) + FINAL_POLL_GRACE):
        while True:
            try:
                event = wait.check(get_order(order_id))
            except AutoenhanceError as exc:
                event = wait.on_error(exc)
            event = event or wait.timeout_event()
            if event:
                return event.result(allow_partial=allow_partial)
            time.sleep(wait.sleep_for(float(poll_interval)))


def wait_until_registered(
    get_order: Callable[[str], Order],
    order_id: str,
    image_ids: set[str],
    *,
    logger: logging.Logger | Any = None,
) -> None:
    """Poll the order until no freshly uploaded image is still ``waiting`` (short backoff).

    Raises :class:`AutoenhanceError` after :data:`UPLOAD_CONFIRM_TIMEOUT` seconds: a retry of the
    upload sends those images again.
    """
    deadline = time.monotonic() + UPLOAD_CONFIRM_TIMEOUT
    delay = 0.05
    while True:
        images = {img.image_id: img for img in get_order(order_id).images}
        waiting = [i for i in image_ids if i not in images or images[i].status is ImageStatus.WAITING]
        if not waiting:
            (logger or log).info("All %d upload(s) registered by Autoenhance", len(image_ids))
            return
        if time.monotonic() > deadline:
            raise AutoenhanceError(
                f"{len(waiting)} upload(s) were not registered by Autoenhance within "
                f"{UPLOAD_CONFIRM_TIMEOUT:.0f}s: {', '.join(sorted(waiting)[:10])}; "
                "a retry uploads them again"
            )
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
