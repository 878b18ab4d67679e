"""What every Autoenhance task shares: the connection id, a lazily built hook, the order link."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context

from autoenhance_provider.connection import DEFAULT_CONN_ID
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.links.autoenhance import ORDER_ID_KEY, ORDER_URL_KEY, AutoenhanceOrderLink
from autoenhance_provider.settings import validate_settings

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
        """Name a mapped instance after what it works on; plain tasks keep an empty label."""
        map_index = getattr(context.get("ti"), "map_index", -1)
        if isinstance(map_index, int) and map_index >= 0:
            context[LABEL_KEY] = str(label)  # type: ignore[literal-required]

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``BaseOperator.partial()``, with the label template as the mapped task's default.

        Airflow 3.3 takes ``.partial()`` defaults from the operator's ``__init__`` signature; 3.0 to
        3.2 take BaseOperator's (no template), so mapped instances would go unlabelled.
        """
        partial = super().partial(**kwargs)  # type: ignore[misc]
        if "map_index_template" not in kwargs and partial.kwargs.get("map_index_template") is None:
            partial.kwargs["map_index_template"] = DEFAULT_MAP_INDEX_TEMPLATE
        return partial


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


class AutoenhanceSettingsOperator(AutoenhanceBaseOperator):
    """An operator that sends enhancement settings.

    Each setting is a real keyword parameter (``None`` = not sent), so ``.partial()`` and
    ``.expand()`` accept them; ``settings`` takes the same as a dict, for anything else. The
    merged dict is the templated ``settings`` attribute. Settings that are not templates are
    validated at DAG-parse time, so a typo fails early.
    """

    def __init__(
        self,
        *,
        settings: dict[str, Any] | None = None,
        enhance: bool | None = None,
        enhance_type: str | None = None,
        ai_version: str | None = None,
        sky_replacement: bool | None = None,
        cloud_type: str | None = None,
        vertical_correction: bool | None = None,
        lens_correction: bool | None = None,
        window_pull: bool | None = None,
        window_pull_type: str | None = None,
        privacy: bool | None = None,
        auto_privacy: bool | None = None,
        upscale: bool | None = None,
        threesixty: bool | None = None,
        hdr: bool | None = None,
        rating: int | None = None,
        metadata: dict[str, Any] | None = None,
        finetune_settings: dict[str, Any] | None = None,
        preset_id: str | None = None,
        restage: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        given = {
            "enhance": enhance,
            "enhance_type": enhance_type,
            "ai_version": ai_version,
            "sky_replacement": sky_replacement,
            "cloud_type": cloud_type,
            "vertical_correction": vertical_correction,
            "lens_correction": lens_correction,
            "window_pull": window_pull,
            "window_pull_type": window_pull_type,
            "privacy": privacy,
            "auto_privacy": auto_privacy,
            "upscale": upscale,
            "threesixty": threesixty,
            "hdr": hdr,
            "rating": rating,
            "metadata": metadata,
            "finetune_settings": finetune_settings,
            "preset_id": preset_id,
            "restage": restage,
        }
        self.settings = {**(settings or {}), **{k: v for k, v in given.items() if v is not None}}
        if "{{" not in repr(self.settings) and "XComArg" not in repr(self.settings):
            validate_settings(self.settings)
