"""Operators that act on an order as a whole: create, process (HDR), delete."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from autoenhance_provider.exceptions import AutoenhanceConflictError, AutoenhanceNotFoundError
from autoenhance_provider.operators._base import AutoenhanceBaseOperator, AutoenhanceSettingsOperator

#: Namespace of the order ids derived from task instances (stable across releases).
ORDER_ID_NAMESPACE = uuid.UUID("6f1c2a3e-7a7b-4f7e-9a55-0c9b8a4e2d11")


def deterministic_order_id(context: Context) -> str:
    """The same UUID for every try of one task instance, so a retry finds its own order."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    if map_index is None:
        map_index = -1
    key = f"{ti.dag_id}|{ti.run_id}|{ti.task_id}|{map_index}"
    return str(uuid.uuid5(ORDER_ID_NAMESPACE, key))


class CreateOrderOperator(AutoenhanceBaseOperator):
    """Create an Autoenhance order (or find the one an earlier try created).

    Returns the ``order_id`` (so ``create.output`` feeds downstream tasks) and also pushes the
    XCom keys ``order_id`` and ``order_url``. Without an explicit ``order_id`` the id is derived
    from (dag_id, run_id, task_id, map_index): a retried task re-finds its order instead of
    creating a second one. With an explicit ``order_id`` of an existing order, that order is used.

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
        order_id = str(self.order_id) if self.order_id else deterministic_order_id(context)
        self.set_label(context, self.name or order_id)
        try:
            order = self.hook.create_order(name=self.name, order_id=order_id)
            self.log.info("Created Autoenhance order %s", order_id)
        except AutoenhanceConflictError:
            order = self.hook.get_order(order_id)
            self.log.info(
                "Autoenhance order %s already exists (an earlier try created it); reusing it", order_id
            )
        final_id = str((order or {}).get("order_id") or order_id)
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
        order_id = str(self.order_id)
        self.set_label(context, order_id)
        self.publish_order(context, order_id)
        order = self.hook.get_order(order_id)
        if order.get("is_merging") or order.get("images"):
            self.log.info("Order %s is already grouped/processing; not starting it again", order_id)
            return order_id
        groups = self._resolve_groups(order_id) if self.bracket_groups else None
        self.hook.process_order(
            order_id,
            number_of_brackets_per_image=self.number_of_brackets_per_image,
            images=groups,
            **self.settings,
        )
        self.log.info("Started HDR grouping and enhancement of order %s", order_id)
        return order_id

    def _resolve_groups(self, order_id: str) -> list[dict[str, list[str]]]:
        """Accept bracket names as well as ids in ``bracket_groups``."""
        brackets = self.hook.list_brackets(order_id)
        # Only uploaded brackets: a re-sent create may have left an empty one with the same name.
        brackets = [b for b in brackets if b.get("is_uploaded")]
        by_name = {b.get("name"): b.get("bracket_id") for b in brackets}
        ids = {b.get("bracket_id") for b in brackets}
        return [
            {"bracket_ids": [ref if ref in ids else by_name.get(ref, ref) for ref in map(str, group)]}
            for group in self.bracket_groups or []
        ]


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
        order_id = str(self.order_id)
        self.set_label(context, order_id)
        try:
            self.hook.delete_order(order_id)
            self.log.info("Deleted Autoenhance order %s", order_id)
        except AutoenhanceNotFoundError:
            self.log.info("Autoenhance order %s does not exist (already deleted); nothing to do", order_id)
