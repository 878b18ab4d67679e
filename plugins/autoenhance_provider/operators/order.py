"""Operators that act on an order as a whole: create, process (HDR), delete."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from autoenhance_provider.exceptions import AutoenhanceNotFoundError
from autoenhance_provider.operators.base import AutoenhanceBaseOperator, AutoenhanceSettingsOperator

#: Namespace of the order ids derived from task instances (stable across releases: a test pins it).
ORDER_ID_NAMESPACE = uuid.UUID("6f1c2a3e-7a7b-4f7e-9a55-0c9b8a4e2d11")

log = logging.getLogger(__name__)


def deterministic_order_id(context: Context, namespace: str | None = None) -> str:
    """The same UUID for every try of one task instance, so a retry finds its own order.

    The key is the task instance (dag, run, task, map index) plus who runs it: ``namespace`` (the
    connection extra ``order_id_namespace``) when set, else the DAG run's ``start_date``. Two
    Airflow deployments running the same DAG on the same schedule share every run id, so the
    task instance alone would make them share orders; the run's start time (to the microsecond)
    differs between deployments and stays the same for every try while the run is going. A
    namespace also survives clearing a finished run (which restarts the run's clock).
    """
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    if map_index is None:
        map_index = -1
    parts: list[Any] = [ti.dag_id, ti.run_id, ti.task_id, map_index]
    if namespace is not None and str(namespace).strip():
        parts = ["namespace", str(namespace).strip(), *parts]
    else:
        started = getattr(context.get("dag_run"), "start_date", None)
        if started is None:
            log.warning(
                "The DAG run has no start_date; the order id rests on the run id alone, which another "
                "Airflow deployment running this DAG would share. Set the connection extra "
                "order_id_namespace (or order_id=) to rule that out."
            )
        else:
            parts.append(started.astimezone(dt.timezone.utc).isoformat(timespec="microseconds"))
    return str(uuid.uuid5(ORDER_ID_NAMESPACE, json.dumps(parts, separators=(",", ":"))))


class CreateOrderOperator(AutoenhanceBaseOperator):
    """Create an Autoenhance order (or find the one an earlier try created).

    Returns the ``order_id`` (so ``create.output`` feeds downstream tasks) and also pushes the
    XCom keys ``order_id`` and ``order_url``. Without an explicit ``order_id`` the id is derived
    from the task instance and the deployment (see :func:`deterministic_order_id`): a retried
    task re-finds its order instead of creating a second one, and another Airflow deployment
    running the same DAG never lands on it. With an explicit ``order_id`` of an existing order,
    that order is used.

    :param name: order name shown in the Autoenhance web app (templated).
    :param order_id: client-chosen order id (templated); default: derived, see above.
    :param autoenhance_conn_id: Airflow connection id (templated).
    """

    template_fields: Sequence[str] = ("name", "order_id", "autoenhance_conn_id")

    def __init__(self, *, name: str | None = None, order_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.order_id = order_id

    def execute(self, context: Context) -> str:
        if self.order_id:
            order_id = self.order_id_param()
        else:
            namespace = getattr(self.hook.config, "order_id_namespace", None)
            order_id = deterministic_order_id(context, namespace)
        self.set_label(context, self.name or order_id)
        order, created = self.hook.ensure_order(order_id, name=self.name)
        if created:
            self.log.info("Created Autoenhance order %s", order_id)
        else:
            self.log.info(
                "Autoenhance order %s already exists (an earlier try created it); reusing it", order_id
            )
        final_id = order.order_id or order_id
        if final_id != order_id:
            self.log.warning(
                "The API assigned order id %s instead of %s; a retry of this task cannot re-find it",
                final_id,
                order_id,
            )
        self.publish_order(context, final_id)
        self.log.info("Order page: %s", self.hook.order_url(final_id))
        return final_id


class ProcessOrderOperator(AutoenhanceSettingsOperator):
    """Group an order's uploaded HDR brackets into images and start enhancing them — once.

    :param order_id: the order (templated).
    :param number_of_brackets_per_image: group every N brackets in upload order.
    :param bracket_groups: explicit groups: a list of lists of bracket ids or bracket names.
        Leave both unset for automatic grouping.
    :param enhance_type: and the other enhancement settings as keyword arguments, or a
        ``settings`` dict; see :class:`AutoenhanceSettingsOperator`.
    """

    settings_body = "process"
    template_fields: Sequence[str] = (
        "order_id",
        "number_of_brackets_per_image",
        "bracket_groups",
        "settings",
        "autoenhance_conn_id",
    )

    def __init__(
        self,
        *,
        order_id: str,
        number_of_brackets_per_image: int | None = None,
        bracket_groups: list[list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.order_id = order_id
        self.number_of_brackets_per_image = number_of_brackets_per_image
        self.bracket_groups = bracket_groups

    def execute(self, context: Context) -> str:
        order_id = self.order_id_param()
        self.set_label(context, order_id)
        self.publish_order(context, order_id)
        if self.hook.process_order_once(
            order_id,
            number_of_brackets_per_image=self.number_of_brackets_per_image,
            bracket_groups=self.bracket_groups,
            settings=self.settings,
        ):
            self.log.info("Started HDR grouping and enhancement of order %s", order_id)
        return order_id


class DeleteOrderOperator(AutoenhanceBaseOperator):
    """Delete an order. Idempotent: an order that is already gone counts as success.

    :param order_id: the order (templated).
    """

    template_fields: Sequence[str] = ("order_id", "autoenhance_conn_id")
    operator_extra_links = ()  # a deleted order has no page to link to

    def __init__(self, *, order_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.order_id = order_id

    def execute(self, context: Context) -> None:
        order_id = self.order_id_param()
        self.set_label(context, order_id)
        try:
            self.hook.delete_order(order_id)
            self.log.info("Deleted Autoenhance order %s", order_id)
        except AutoenhanceNotFoundError:
            self.log.info("Autoenhance order %s does not exist (already deleted); nothing to do", order_id)
