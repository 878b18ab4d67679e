"""OrderProcessedSensor: wait for an order in poke, reschedule or deferrable mode — same outcome."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue

from autoenhance_provider.compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferralTimeout,
    conf,
    task_state_get,
    task_state_set,
)
from autoenhance_provider.connection import DEFAULT_CONN_ID
from autoenhance_provider.exceptions import AutoenhanceError, AutoenhanceTimeoutError
from autoenhance_provider.http import deadline_cap
from autoenhance_provider.links.autoenhance import AutoenhanceOrderLink
from autoenhance_provider.operators.base import DEFAULT_MAP_INDEX_TEMPLATE, AutoenhanceTaskMixin
from autoenhance_provider.triggers.autoenhance import (
    DEFAULT_WEBHOOK_CHECK_INTERVAL,
    WEBHOOK_SAFETY_POLL_INTERVAL,
    AutoenhanceOrderTrigger,
)
from autoenhance_provider.validation import require_id
from autoenhance_provider.waiting import (
    DEFAULT_ERROR_BUDGET,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    FINAL_POLL_GRACE,
    OrderWait,
    WaitEvent,
)

FAILED_IMAGES_KEY = "failed_images"
#: The try that already sent the images refused by the daily limit again (one resubmission a try).
RESUBMITTED_STATE_KEY = "autoenhance_resubmitted_try"
#: Transient poll failures in a row, kept across reschedules (Airflow 3.3+ task state store).
ERRORS_STATE_KEY = "autoenhance_poll_errors"


class OrderProcessedSensor(AutoenhanceTaskMixin, BaseSensorOperator):
    """Wait until an order is done: nothing grouping, nothing processing, images present.

    Works for orders made by this provider or elsewhere (web app, Web SDK). An order whose
    images end in ``error`` fails the task with their names and ``status_reason``; with
    ``allow_partial=True`` it succeeds and lists them in XCom (key ``failed_images``). The
    return value is a summary ``{order_id, total, processed, failed, ...}``.

    Every mode feeds the same :class:`~autoenhance_provider.waiting.OrderWait`: in deferrable
    mode the state is checked once before deferring and the trigger gets a wall-clock deadline,
    so ``timeout`` means the same everywhere (AirflowSensorTimeout naming what the order looked
    like, or a skip with ``soft_fail``), and transient outages stay retryable in every mode.

    :param order_id: the order (templated).
    :param poke_interval: seconds between polls (default 30 — see "How the wait works").
    :param timeout: seconds before giving up (default 24 h).
    :param deferrable: wait in the triggerer; default from ``[operators] default_deferrable``.
    :param allow_partial: succeed even if some images failed.
    :param error_budget: consecutive failed polls tolerated (each after the client's retries).
    :param webhook: in deferrable mode, end the wait on the Autoenhance webhook received by this
        Airflow (the receiver's webhook name: ``"default"`` for ``/autoenhance/webhook``). The
        trigger reads the receiver's note of the finished order (Airflow 3.3+) every
        ``webhook_check_interval`` seconds and then polls once to decide; ``poke_interval``
        becomes a safety poll (default 300 s) so a lost webhook costs time, not correctness.
        The account's ``order_finished_asset(webhook)`` is added to the task's inlets, so the
        asset exists and the receiver keeps notes even if no DAG schedules on it. Ignored in
        poke and reschedule modes; before Airflow 3.3 the wait polls as without it.
    :param webhook_check_interval: seconds between two reads of the note (default 15).
    :param resume_refused: on a later try of the task (it was cleared, or retried), first send the
        order's images that the account's daily enhancement limit refused for processing again,
        and only those (default True). A wait that ends with such images fails with a message
        saying how many, that the limit resets daily, and how to resume: clear this task and its
        downstream tasks in the same DAG run after the reset (docs/limits.md).
    """

    template_fields: Sequence[str] = ("order_id", "autoenhance_conn_id")
    operator_extra_links = (AutoenhanceOrderLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        order_id: str,
        autoenhance_conn_id: str = DEFAULT_CONN_ID,
        poke_interval: float | timedelta | None = None,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        allow_partial: bool = False,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        hook_params: dict[str, Any] | None = None,
        webhook: str | None = None,
        webhook_check_interval: float = DEFAULT_WEBHOOK_CHECK_INTERVAL,
        resume_refused: bool = True,
        # A signature default (not kwargs.setdefault) so that .partial() / mapped tasks get it.
        map_index_template: str | None = DEFAULT_MAP_INDEX_TEMPLATE,
        **kwargs: Any,
    ) -> None:
        if poke_interval is None:
            waits_on_webhook = webhook is not None and deferrable
            poke_interval = WEBHOOK_SAFETY_POLL_INTERVAL if waits_on_webhook else DEFAULT_POLL_INTERVAL
        if webhook is not None:
            from autoenhance_provider.webhooks import order_finished_asset

            # Validates the name, and makes the asset exist: the receiver only keeps notes (and
            # events) for assets Airflow knows, which a DAG declaring it as an inlet ensures.
            kwargs["inlets"] = [*_as_list(kwargs.get("inlets")), order_finished_asset(webhook)]
        super().__init__(
            poke_interval=poke_interval, timeout=timeout, map_index_template=map_index_template, **kwargs
        )
        self.order_id = order_id
        self.autoenhance_conn_id = autoenhance_conn_id
        self.deferrable = deferrable
        self.allow_partial = allow_partial
        self.error_budget = int(error_budget)
        self.hook_params = hook_params or {}
        self.webhook = webhook
        self.webhook_check_interval = float(webhook_check_interval)
        self.resume_refused = bool(resume_refused)
        self._wait: OrderWait | None = None
        self._deadline: float | None = None

    def execute(self, context: Context) -> Any:
        """Airflow's sensor loop; in deferrable mode the first poke that finds work left defers."""
        order_id = require_id("order_id", self.order_id)
        self.set_label(context, order_id)
        self.publish_order(context, order_id)
        self._deadline = time.time() + self.timeout
        if self.resume_refused:
            self._resubmit_refused(context, order_id)
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            state = self._wait.timeout_message() if self._wait else ""
            raise AirflowSensorTimeout(f"{exc} {state}".strip()) from None

    def _resubmit_refused(self, context: Context, order_id: str) -> None:
        """On a later try (a clear after the daily limit's reset), send the images the limit
        refused for processing again — once per try, never anything else (docs/limits.md)."""
        ti = context["ti"]
        try_number = getattr(ti, "try_number", 1) or 1
        if try_number <= 1 or task_state_get(context, RESUBMITTED_STATE_KEY) == try_number:
            return
        outcome = self.hook.resubmit_refused(order_id)
        task_state_set(context, RESUBMITTED_STATE_KEY, try_number)
        if any(outcome.values()):
            self.log.info(
                "Resuming order %s: %d image(s) refused by the daily limit sent again (%d reprocessed, "
                "%d registered again, %d refused again); images already processed are not touched",
                order_id,
                sum(len(v) for v in outcome.values()),
                len(outcome["reprocessed"]),
                len(outcome["reregistered"]),
                len(outcome["refused_again"]),
            )

    def resume_hint(self, context: Context, order_id: str) -> str:
        """Exactly how to resume this task after images were refused by the daily limit."""
        ti = context["ti"]
        dag_id = getattr(ti, "dag_id", None) or "<dag_id>"
        run_id = getattr(ti, "run_id", None) or "<run_id>"
        map_index = getattr(ti, "map_index", -1)
        mapped = isinstance(map_index, int) and map_index >= 0
        task = f"'{self.task_id}'" + (f" (map index {map_index})" if mapped else "")
        task_ids = f'[["{self.task_id}", {map_index}]]' if mapped else f'["{self.task_id}"]'
        return (
            f"To resume after the reset without uploading or paying for anything twice: clear task "
            f"{task} and its downstream tasks in the same DAG run '{run_id}' of DAG '{dag_id}' (UI: the "
            "failed task > Clear > Downstream; REST API: POST "
            f'/api/v2/dags/{dag_id}/clearTaskInstances {{"dag_run_id": "{run_id}", "task_ids": '
            f'{task_ids}, "include_downstream": true, "only_failed": false, "dry_run": false}}). '
            f"The task then sends only the refused images of order {order_id} for processing again, "
            "waits for them, and the download fetches only the images it does not have yet. Do not "
            "start a new DAG run: it would make a new order and upload and enhance every image again."
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        order_id = require_id("order_id", self.order_id)
        if self._wait is None:
            errors = task_state_get(context, ERRORS_STATE_KEY)
            self._wait = OrderWait(
                order_id,
                deadline=None,
                error_budget=self.error_budget,
                errors_in_a_row=errors if isinstance(errors, int) else 0,
                logger=self.log,
            )
        errors_before = self._wait.errors_in_a_row
        # A poke never runs past the sensor's timeout, even in the middle of a stalled request.
        cap = None if self._deadline is None else time.monotonic() + max(0.0, self._deadline - time.time())
        cap = None if cap is None else cap + FINAL_POLL_GRACE
        try:
            with deadline_cap(cap):
                event = self._wait.check(self.hook.get_order(order_id))
        except AutoenhanceError as exc:
            event = self._wait.on_error(exc)
        if self._wait.errors_in_a_row != errors_before:
            task_state_set(context, ERRORS_STATE_KEY, self._wait.errors_in_a_row)
        if event is not None:
            return PokeReturnValue(is_done=True, xcom_value=self._finish(context, event))
        if self.deferrable:
            self._defer(order_id, self._wait.errors_in_a_row)
        return False

    def _defer(self, order_id: str, errors_in_a_row: int) -> None:
        self.defer(
            trigger=AutoenhanceOrderTrigger(
                order_id=order_id,
                autoenhance_conn_id=self.autoenhance_conn_id,
                poll_interval=self.poke_interval,
                end_time=self._deadline,
                error_budget=self.error_budget,
                hook_params=self.hook_params,
                # The poke was the first poll: the trigger's first one is an interval later.
                first_poll_at=time.time() + self.poke_interval,
                errors_in_a_row=errors_in_a_row,
                webhook=self.webhook,
                webhook_check_interval=self.webhook_check_interval,
            ),
            method_name="execute_complete",
            # Only a safety net should the triggerer die: the trigger's own deadline comes first.
            timeout=timedelta(seconds=self.timeout + 2 * self.poke_interval + 300),
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Airflow's resumption, except that a transient outage stays retryable under ``soft_fail``.

        BaseSensorOperator (3.2+) turns any error after deferral into a skip under ``soft_fail``;
        in poke mode only a timeout or a permanent failure skips. Keep poke mode's rule.
        """
        try:
            try:
                return super().resume_execution(next_method, next_kwargs, context)
            except (TaskDeferralTimeout, AirflowSensorTimeout) as exc:
                # Airflow 3.0/3.1 let the safety-net timeout through unconverted, or converted
                # without soft_fail; 3.2+ never get here with it (their sensor skips or converts).
                if self.soft_fail or self.never_fail:
                    raise AirflowSkipException(f"Skipping due to soft_fail/never_fail: {exc}") from exc
                raise AirflowSensorTimeout(*exc.args) from exc
        except AirflowSkipException as skip:
            cause = skip.__cause__
            transient = isinstance(cause, AutoenhanceError) and not isinstance(
                cause, (AirflowFailException, AutoenhanceTimeoutError)
            )
            if transient and cause is not None and not self.never_fail:
                raise cause from None
            raise

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: map its event exactly as a poke would."""
        self.publish_order(context, require_id("order_id", self.order_id))
        return self._finish(context, WaitEvent.from_dict(event))

    def _finish(self, context: Context, event: WaitEvent) -> dict[str, Any]:
        try:
            result = event.result(
                allow_partial=self.allow_partial, resume=self.resume_hint(context, event.order_id)
            )
        except AutoenhanceTimeoutError as exc:
            raise AirflowSensorTimeout(str(exc)) from None
        failed = result.get("failed") or []
        if failed:
            context["ti"].xcom_push(key=FAILED_IMAGES_KEY, value=failed)
            self.log.warning(
                "%d image(s) failed and are listed in XCom key %r", len(failed), FAILED_IMAGES_KEY
            )
        self.log.info(
            "Order %s is done: %s/%s processed", self.order_id, result.get("processed"), result.get("total")
        )
        return result


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
