"""OrderProcessedSensor: wait for an order in poke, reschedule or deferrable mode — same outcome."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator, Context, PokeReturnValue

from autoenhance_provider._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferralTimeout,
    conf,
)
from autoenhance_provider.connection import DEFAULT_CONN_ID
from autoenhance_provider.exceptions import AutoenhanceError, AutoenhanceTimeoutError
from autoenhance_provider.links.autoenhance import AutoenhanceOrderLink
from autoenhance_provider.operators._base import DEFAULT_MAP_INDEX_TEMPLATE, AutoenhanceTaskMixin
from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger
from autoenhance_provider.waiting import (
    DEFAULT_ERROR_BUDGET,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    OrderWait,
    result_from_event,
)

FAILED_IMAGES_KEY = "failed_images"


class OrderProcessedSensor(AutoenhanceTaskMixin, BaseSensorOperator):
    """Wait until an order is done: nothing grouping, nothing processing, images present.

    Works for orders made by this provider or elsewhere (web app, Web SDK). An order whose
    images end in ``error`` fails the task with their names and ``status_reason``; with
    ``allow_partial=True`` it succeeds and lists them in XCom (key ``failed_images``). The
    return value is a summary ``{order_id, total, processed, failed, ...}``.

    In deferrable mode the state is checked once before deferring; the trigger gets a
    wall-clock deadline, so ``timeout`` means the same in every mode (AirflowSensorTimeout, or
    a skip with ``soft_fail``).

    :param order_id: the order (templated).
    :param poke_interval: seconds between polls (default 30 — see "How the wait works").
    :param timeout: seconds before giving up (default 24 h).
    :param deferrable: wait in the triggerer; default from ``[operators] default_deferrable``.
    :param allow_partial: succeed even if some images failed.
    :param error_budget: consecutive failed polls tolerated (each after the client's retries).
    """

    template_fields: Sequence[str] = ("order_id", "autoenhance_conn_id")
    operator_extra_links = (AutoenhanceOrderLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        order_id: str,
        autoenhance_conn_id: str = DEFAULT_CONN_ID,
        poke_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        allow_partial: bool = False,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        hook_params: dict[str, Any] | None = None,
        # A signature default (not kwargs.setdefault) so that .partial() / mapped tasks get it.
        map_index_template: str | None = DEFAULT_MAP_INDEX_TEMPLATE,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            poke_interval=poke_interval, timeout=timeout, map_index_template=map_index_template, **kwargs
        )
        self.order_id = order_id
        self.autoenhance_conn_id = autoenhance_conn_id
        self.deferrable = deferrable
        self.allow_partial = allow_partial
        self.error_budget = int(error_budget)
        self.hook_params = hook_params or {}
        self._wait: OrderWait | None = None

    def execute(self, context: Context) -> Any:
        self.set_label(context, self.order_id)
        self.publish_order(context, str(self.order_id))
        if not self.deferrable:
            return super().execute(context)
        deadline = time.time() + self.timeout
        try:
            first = self.poke(context)
        except AirflowFailException as exc:
            # The same soft_fail / never_fail rules as BaseSensorOperator.execute applies to a poke.
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail/never_fail: {exc}") from exc
            raise
        except AirflowSkipException:
            raise
        except Exception as exc:
            if self.never_fail:
                raise AirflowSkipException(f"Skipping due to never_fail: {exc}") from exc
            raise
        if first:
            return first.xcom_value if isinstance(first, PokeReturnValue) else None
        self.defer(
            trigger=AutoenhanceOrderTrigger(
                order_id=str(self.order_id),
                autoenhance_conn_id=self.autoenhance_conn_id,
                poll_interval=self.poke_interval,
                end_time=deadline,
                error_budget=self.error_budget,
                hook_params=self.hook_params,
                # The check above was the first poll: the trigger's first one is an interval later.
                first_poll_at=time.time() + self.poke_interval,
            ),
            method_name="execute_complete",
            # Only a safety net should the triggerer die: the trigger's own deadline comes first.
            timeout=timedelta(seconds=self.timeout + 2 * self.poke_interval + 300),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if self._wait is None:
            self._wait = OrderWait(
                str(self.order_id), deadline=None, error_budget=self.error_budget, logger=self.log
            )
        try:
            event = self._wait.check(self.hook.get_order(str(self.order_id)))
        except AutoenhanceError as exc:
            event = self._wait.on_error(exc)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, event))

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after deferral with exactly the failure rules of poke mode.

        BaseSensorOperator (3.2+) turns *any* error into a skip under ``soft_fail``, so an API
        outage would skip the task in deferrable mode but fail it (retryably) in poke mode; 3.0
        and 3.1 ignored ``soft_fail`` on the safety-net timeout. Poke mode's rules: a timeout or
        a permanent failure skips with ``soft_fail``; anything skips with ``never_fail``;
        transient errors stay retryable.
        """
        try:
            return BaseOperator.resume_execution(self, next_method, next_kwargs, context)
        except AirflowSkipException:
            raise
        except TaskDeferralTimeout as exc:
            error: BaseException = AirflowSensorTimeout(*exc.args)
            cause: BaseException = exc
        except Exception as exc:
            error = cause = exc
        permanent = isinstance(error, (AirflowSensorTimeout, AirflowFailException))
        if self.never_fail or (self.soft_fail and permanent):
            raise AirflowSkipException(f"Skipping due to soft_fail/never_fail: {error}") from cause
        if error is cause:
            raise error
        raise error from cause

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: map its event exactly as a poke would."""
        self.publish_order(context, str(self.order_id))
        return self._finish(context, event)

    def _finish(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        try:
            result = result_from_event(event, allow_partial=self.allow_partial)
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
