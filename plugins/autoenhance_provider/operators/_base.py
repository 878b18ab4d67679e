"""What every Autoenhance task shares: the connection id, a lazily built hook, the order link."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context

from autoenhance_provider.connection import DEFAULT_CONN_ID
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.links.autoenhance import ORDER_ID_KEY, ORDER_URL_KEY, AutoenhanceOrderLink
from autoenhance_provider.settings import KNOWN_SETTINGS

#: Mapped tasks are labelled with what each instance works on (set during execute).
LABEL_KEY = "autoenhance_label"
DEFAULT_MAP_INDEX_TEMPLATE = "{{ autoenhance_label | default('', true) }}"


class AutoenhanceTaskMixin:
    """Hook construction and XCom conventions shared by the operators and the sensor."""

    autoenhance_conn_id: str
    hook_params: dict[str, Any]

    @cached_property
    def hook(self) -> AutoenhanceHook:
        return AutoenhanceHook(self.autoenhance_conn_id, **(self.hook_params or {}))

    def publish_order(self, context: Context, order_id: str) -> None:
        """Push ``order_id`` and ``order_url`` at once, so the link works even if the task fails later."""
        ti = context["ti"]
        ti.xcom_push(key=ORDER_ID_KEY, value=order_id)
        ti.xcom_push(key=ORDER_URL_KEY, value=self.hook.order_url(order_id))

    @staticmethod
    def set_label(context: Context, label: Any) -> None:
        context[LABEL_KEY] = str(label)  # type: ignore[literal-required]


def pop_settings(kwargs: dict[str, Any], settings: dict[str, Any] | None) -> dict[str, Any]:
    """Take the enhancement settings out of an operator's keyword arguments."""
    found = {name: kwargs.pop(name) for name in list(kwargs) if name in KNOWN_SETTINGS}
    return {**(settings or {}), **found}


class AutoenhanceBaseOperator(AutoenhanceTaskMixin, BaseOperator):
    """Base of the Autoenhance operators: no network in ``__init__``; hook built on first use."""

    operator_extra_links = (AutoenhanceOrderLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        autoenhance_conn_id: str = DEFAULT_CONN_ID,
        hook_params: dict[str, Any] | None = None,
        # A real parameter, not a kwargs default: .partial() reads operator defaults from the
        # signature, and the task runner labels mapped tasks from the MappedOperator's value.
        map_index_template: str | None = DEFAULT_MAP_INDEX_TEMPLATE,
        **kwargs: Any,
    ) -> None:
        super().__init__(map_index_template=map_index_template, **kwargs)
        self.autoenhance_conn_id = autoenhance_conn_id
        self.hook_params = hook_params or {}
