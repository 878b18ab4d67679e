"""HDR processing: how an order's brackets are grouped into images, and starting that once.

The grouping a caller asks for (:func:`grouping`: every N brackets, or explicit groups by id or
file name), the rule that grouping or enhancement has begun (:func:`has_started`, which makes a
retried task skip the start and a lost answer to ``/process`` count as done), and the start itself
once (:func:`process_once`), and the request itself (:func:`process`: ``POST
/v3/orders/{id}/process``, else the legacy ``/merge``). The hook's ``process_order`` and
``process_order_once`` are the entry points. Uploading the brackets is
:mod:`autoenhance_provider.uploads`'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autoenhance_provider import readings
from autoenhance_provider.exceptions import AutoenhanceClientError, AutoenhanceValidationError
from autoenhance_provider.http import Recovered
from autoenhance_provider.records import Order
from autoenhance_provider.settings import validate_process_settings
from autoenhance_provider.validation import path_segment, to_int

if TYPE_CHECKING:
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook


def grouping(number_of_brackets_per_image: Any, images: Any) -> dict[str, Any]:
    """The grouping part of a ``/process`` body: ``number_of_brackets_per_image`` (1-9), or
    ``images`` (explicit groups of bracket ids), or neither (automatic grouping)."""
    given = {"number_of_brackets_per_image": number_of_brackets_per_image, "images": images}
    body: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if len(body) > 1:
        raise AutoenhanceValidationError(
            "Give either number_of_brackets_per_image or images (explicit bracket groups), not both"
        )
    if "number_of_brackets_per_image" in body:
        body["number_of_brackets_per_image"] = to_int(
            "number_of_brackets_per_image", body["number_of_brackets_per_image"], 1, 9
        )
    if "images" in body:
        body["images"] = _bracket_groups(body["images"])
    return body


def _bracket_groups(groups: Any) -> list[dict[str, list[str]]]:
    if not isinstance(groups, list) or not groups:
        raise AutoenhanceValidationError("images must be a non-empty list of bracket groups")
    result = []
    for group in groups:
        ids = group.get("bracket_ids") if isinstance(group, dict) else group
        if not isinstance(ids, list) or not ids or not all(str(i).strip() for i in ids):
            raise AutoenhanceValidationError(
                "each bracket group must be a non-empty list of bracket ids (or {'bracket_ids': [...]})"
            )
        result.append({"bracket_ids": [str(i) for i in ids]})
    return result


def process(hook: AutoenhanceHook, order_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    """``POST /process`` (or the legacy ``/merge``); see :meth:`AutoenhanceHook.process_order`."""
    groups = grouping(settings.pop("number_of_brackets_per_image", None), settings.pop("images", None))
    checked = validate_process_settings(settings, api_version=hook.config.api_version)
    body = {**checked.body(), **groups}
    oid = path_segment("order_id", order_id)
    recover = lambda: started(hook, order_id)  # noqa: E731
    try:
        path = f"/v3/orders/{oid}/{readings.PROCESS_ROUTE}"
        return hook.transport.request_json("POST", path, json=body, recover=recover, expect=dict)  # type: ignore[no-any-return]
    except AutoenhanceClientError as exc:
        if exc.status_code not in readings.PROCESS_ROUTE_MISSING or (
            exc.status_code == 404 and not hook.get_order_or_none(order_id)
        ):
            raise
    if groups:
        raise AutoenhanceValidationError(
            "This Autoenhance API only offers the legacy /merge endpoint, which groups brackets "
            "automatically; drop number_of_brackets_per_image / images"
        )
    hook.log.info("POST /process is not available; using the legacy /merge endpoint")
    merge = f"/v3/orders/{oid}/{readings.MERGE_ROUTE}"
    return hook.transport.request_json("POST", merge, json=body, recover=recover) or {}


def has_started(order: Order) -> bool:
    """Grouping or enhancement of an order's brackets has begun (so starting it again is wrong)."""
    return order.is_merging or bool(order.images)


def started(hook: AutoenhanceHook, order_id: str) -> Recovered | None:
    """The recovery check of ``/process`` after a lost answer: the order, if processing began."""
    order = hook.get_order_or_none(order_id)
    return Recovered(order) if order and has_started(order) else None


def process_once(
    hook: AutoenhanceHook,
    order_id: str,
    *,
    number_of_brackets_per_image: int | None = None,
    bracket_groups: list[list[str]] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> bool:
    """Start processing unless it has started; see :meth:`AutoenhanceHook.process_order_once`."""
    if has_started(hook.get_order(order_id)):
        hook.log.info("Order %s is already grouped/processing; not starting it again", order_id)
        return False
    groups = _resolve(hook, order_id, bracket_groups) if bracket_groups else None
    process(
        hook,
        order_id,
        {**(settings or {}), "number_of_brackets_per_image": number_of_brackets_per_image, "images": groups},
    )
    return True


def _resolve(hook: AutoenhanceHook, order_id: str, groups: list[list[str]]) -> list[dict[str, list[str]]]:
    """Groups that name brackets by file name as well as by id, as groups of ids."""
    brackets = hook.uploaded_brackets(order_id)
    by_name = {name: b.bracket_id for name, b in brackets.items()}
    ids = {b.bracket_id for b in brackets.values()}
    return [
        {"bracket_ids": [ref if ref in ids else str(by_name.get(ref, ref)) for ref in map(str, group)]}
        for group in groups
    ]
