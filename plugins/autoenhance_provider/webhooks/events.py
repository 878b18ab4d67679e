"""What a delivery says: parsing a body into a :class:`WebhookEvent`, and reading events back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autoenhance_provider.compat import literal
from autoenhance_provider.validation import ID_RULE, is_valid_id

#: The largest body accepted; an Autoenhance event is about 200 bytes.
MAX_BODY_BYTES = 64 * 1024
#: An event name: what Autoenhance sends (``image_processed``, ``webhook_updated``, ...), bounded.
EVENT_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,100}")

EVENT_IMAGE_PROCESSED = "image_processed"
EVENT_WEBHOOK_UPDATED = "webhook_updated"


class InvalidWebhookBody(ValueError):
    """The body is not an Autoenhance event; ``status_code`` is the answer (400 or 422)."""

    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class WebhookEvent:
    """One delivery, reduced to the documented fields (anything else in the body is dropped)."""

    event: str
    order_id: str | None = None
    image_id: str | None = None
    error: bool | None = None
    order_is_processing: bool | None = None

    @property
    def order_finished(self) -> bool:
        """Only ``order_is_processing: false`` says an order is done: a late ``true`` never undoes it."""
        return self.event == EVENT_IMAGE_PROCESSED and self.order_is_processing is False

    def as_extra(self, webhook: str) -> dict[str, Any]:
        """The asset event's extra: the event as sent, plus which webhook (account) received it."""
        return {
            "source": "autoenhance_webhook",
            "webhook": webhook,
            "event": self.event,
            "order_id": self.order_id,
            "image_id": self.image_id,
            "error": self.error,
            "order_is_processing": self.order_is_processing,
        }


def parse_event(body: bytes) -> WebhookEvent | None:
    """Read a delivery; ``None`` for an empty (verification) POST.

    Raises :class:`InvalidWebhookBody`: 400 for a body that is not JSON, 422 for JSON that is not
    an event or an ``image_processed`` with missing or mistyped fields. Events of other names
    (``webhook_updated``, ``image_registered``, future ones) are returned without further checks.
    The Content-Type is not checked: Autoenhance does not document it.
    """
    if not body.strip():
        return None
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidWebhookBody("body is not JSON", status_code=400) from exc
    if not isinstance(payload, dict):
        raise InvalidWebhookBody("body is not a JSON object")
    event = payload.get("event")
    if not isinstance(event, str) or not EVENT_NAME_PATTERN.fullmatch(event):
        raise InvalidWebhookBody("'event' must be an event name: 1-100 letters, digits or _ . : -")
    if event != EVENT_IMAGE_PROCESSED:
        return WebhookEvent(event=event)
    return WebhookEvent(
        event=event,
        order_id=_id(payload, "order_id", required=True),
        image_id=_id(payload, "image_id", required=False),
        error=_bool(payload, "error", required=False),
        order_is_processing=_bool(payload, "order_is_processing", required=True),
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _id(payload: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = payload.get(key)
    if value is None and not required:
        return None
    if not is_valid_id(value):
        raise InvalidWebhookBody(f"{key!r} must be an id: {ID_RULE}")
    return value


def _bool(payload: Mapping[str, Any], key: str, *, required: bool) -> bool | None:
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, bool):
        raise InvalidWebhookBody(f"{key!r} must be true or false")
    return value


def as_data(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` with every value wrapped in Airflow's ``literal()``, so it is never rendered.

    For ``.map()`` between a task whose values come from outside (a webhook, an API answer) and
    ``expand_kwargs()``: ``upstream().map(as_data)``. Airflow renders mapped values of template
    fields; a value in ``literal()`` is used as it is. Works on Airflow 3.0 to 3.3.
    """
    return {name: literal(value) for name, value in kwargs.items()}


def finished_order_ids(events: Iterable[Any]) -> list[str]:
    """Order ids of "order finished" asset events (``triggering_asset_events[...]``), each once.

    Several deliveries for one order (a duplicate, or an order finished twice) collapse to one id,
    so a run downloads each order once; events without a valid id are ignored.
    """
    ids: dict[str, None] = {}
    for event in events:
        extra = getattr(event, "extra", None)
        if extra is None and isinstance(event, Mapping):
            extra = event.get("extra")
        if not isinstance(extra, Mapping) or extra.get("order_is_processing") is not False:
            continue
        order_id = extra.get("order_id")
        if isinstance(order_id, str) and is_valid_id(order_id):
            ids[order_id] = None
    return list(ids)
