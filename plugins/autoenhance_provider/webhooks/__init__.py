"""Autoenhance webhooks as Airflow asset events: the names DAGs schedule on, and the event rules.

Autoenhance POSTs one ``image_processed`` per image to a URL set in its web app; the receiver
(:mod:`.app`, served by the Airflow API server through :mod:`.plugin`) turns the last one of an
order (``order_is_processing: false``) into an event on :func:`order_finished_asset`, whose extra
is :class:`WebhookEvent.as_extra`. This package is what DAG files import, so it needs only the
Task SDK: no FastAPI, no database. :mod:`.assets` holds the names and assets, :mod:`.events` the
reading of deliveries and asset events, :mod:`.notes` the receiver's notes for deferred waits.
"""

from __future__ import annotations

from autoenhance_provider.validation import is_valid_id
from autoenhance_provider.webhooks.assets import (
    CONN_ID_PREFIX,
    DEFAULT_WEBHOOK,
    WEBHOOK_NAME_PATTERN,
    order_asset,
    order_finished_asset,
    webhook_conn_id,
    webhook_name,
)
from autoenhance_provider.webhooks.events import (
    EVENT_IMAGE_PROCESSED,
    EVENT_WEBHOOK_UPDATED,
    MAX_BODY_BYTES,
    InvalidWebhookBody,
    WebhookEvent,
    as_data,
    finished_order_ids,
    parse_event,
)

__all__ = [
    "CONN_ID_PREFIX",
    "DEFAULT_WEBHOOK",
    "EVENT_IMAGE_PROCESSED",
    "EVENT_WEBHOOK_UPDATED",
    "MAX_BODY_BYTES",
    "WEBHOOK_NAME_PATTERN",
    "InvalidWebhookBody",
    "WebhookEvent",
    "as_data",
    "finished_order_ids",
    "is_valid_id",
    "order_asset",
    "order_finished_asset",
    "parse_event",
    "webhook_conn_id",
    "webhook_name",
]
