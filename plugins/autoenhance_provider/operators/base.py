"""What every Autoenhance task shares: the connection id, a lazily built hook, the order link, labels.

Operators turn Airflow parameters and context into hook calls and nothing more: every rule about
the API lives in the hook, every check of input in :mod:`autoenhance_provider.validation` (the
enhancement settings in :mod:`autoenhance_provider.settings`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, BaseOperatorLink, Context

from autoenhance_provider.compat import label_mapped_partial, literal
from autoenhance_provider.connection import DEFAULT_CONN_ID
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.links.autoenhance import ORDER_ID_KEY, ORDER_URL_KEY, AutoenhanceOrderLink
from autoenhance_provider.settings import check_settings_for_some_version
from autoenhance_provider.validation import is_template, require_id

#: Mapped tasks are labelled with what each instance works on (set during execute).
LABEL_KEY = "autoenhance_label"
DEFAULT_MAP_INDEX_TEMPLATE = "{{ autoenhance_label | default('', true) }}"
#: What ``airflow.sdk.literal()`` wraps a value in (its class is not public).
_LITERAL = type(literal(None))


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

    def _do_render_template_fields(
        self,
        parent: Any,
        template_fields: Iterable[str],
        context: Context,
        jinja_env: Any,
        seen_oids: set[int],
    ) -> None:
        """Render only what the DAG author wrote: a mapped value is data, never a template.

        Airflow renders the values of ``expand_kwargs()`` (strings from another task's XCom, e.g.
        an order id from a webhook) as Jinja templates, so ``"{{ conn.x.password }}"`` arriving
        as data would be evaluated. For a mapped task's own fields, only those given to
        ``.partial()`` are rendered; the rest are used as they arrived (and checked as ids), with
        a ``literal()`` around them taken off.
        """
        if parent is self:
            author_fields = _partial_fields(self)
            if author_fields is not None:
                template_fields = list(template_fields)
                for name in template_fields:
                    value = getattr(self, name, None)
                    if name not in author_fields and isinstance(value, _LITERAL):
                        setattr(self, name, value.value)  # literal() around data is data too
                template_fields = [name for name in template_fields if name in author_fields]
        super()._do_render_template_fields(  # type: ignore[misc]
            parent, template_fields, context, jinja_env, seen_oids
        )

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``BaseOperator.partial()``, with the label template as the mapped task's default."""
        return label_mapped_partial(super().partial(**kwargs), kwargs, DEFAULT_MAP_INDEX_TEMPLATE)  # type: ignore[misc]


def _partial_fields(task: Any) -> set[str] | None:
    """The fields given to ``.partial()`` if ``task`` was unmapped from a mapped task, else ``None``."""
    dag = getattr(task, "dag", None)
    original = dag.task_dict.get(task.task_id) if dag is not None else None
    partial_kwargs = getattr(original, "partial_kwargs", None)
    if original is task or not isinstance(partial_kwargs, Mapping):
        return None
    return set(partial_kwargs)


class AutoenhanceBaseOperator(AutoenhanceTaskMixin, BaseOperator):
    """Base of the Autoenhance operators: no network in ``__init__``; hook built on first use."""

    operator_extra_links: tuple[BaseOperatorLink, ...] = (AutoenhanceOrderLink(),)
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

    def order_id_param(self, name: str = "order_id") -> str:
        """The rendered ``order_id`` checked as an id (a list from a whole XCom is refused here)."""
        return require_id(name, getattr(self, name))


class AutoenhanceSettingsOperator(AutoenhanceBaseOperator):
    """An operator that sends enhancement settings.

    Each setting is a real keyword parameter (``None`` = not sent), so ``.partial()`` and
    ``.expand()`` accept them; ``settings`` takes the same as a dict, for anything else. The
    merged dict is the templated ``settings`` attribute. Settings known at parse time are checked
    then against every API version this provider knows (a typo fails the DAG import); at run
    time the hook checks them against the version the connection pins.
    """

    #: Which request body the settings go into (``process`` bodies take fewer fields).
    settings_body = "image"

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
            "upscale": upscale,
            "threesixty": threesixty,
            "hdr": hdr,
            "rating": rating,
            "metadata": metadata,
            "finetune_settings": finetune_settings,
            "preset_id": preset_id,
            "restage": restage,
        }
        merged = {**(settings or {}), **{k: v for k, v in given.items() if v is not None}}
        if not is_template(merged):
            check_settings_for_some_version(merged, body=self.settings_body)
        self.settings: dict[str, Any] = merged
