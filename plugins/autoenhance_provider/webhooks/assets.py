"""What DAGs schedule on: the webhook names, their connections and the assets they update."""

from __future__ import annotations

import re
from urllib.parse import quote

from airflow.sdk import Asset

from autoenhance_provider.validation import is_valid_id

#: The webhook served at ``POST /autoenhance/webhook``; named ones at ``/autoenhance/webhook/<name>``.
DEFAULT_WEBHOOK = "default"
#: Connection holding the default webhook's token (password); ``autoenhance_webhook_<name>`` for others.
CONN_ID_PREFIX = "autoenhance_webhook"
#: A webhook name: lowercase, as it appears in a URL, a connection id and an asset name.
WEBHOOK_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def webhook_conn_id(webhook: str = DEFAULT_WEBHOOK) -> str:
    """The connection whose password is the webhook's authentication value."""
    _check_name(webhook)
    return CONN_ID_PREFIX if webhook == DEFAULT_WEBHOOK else f"{CONN_ID_PREFIX}_{webhook}"


def webhook_name(conn_id: str) -> str | None:
    """The webhook a connection id serves (the inverse of :func:`webhook_conn_id`), or ``None``."""
    conn_id = conn_id.lower()
    if conn_id == CONN_ID_PREFIX:
        return DEFAULT_WEBHOOK
    name = conn_id.removeprefix(f"{CONN_ID_PREFIX}_")
    if name in (conn_id, DEFAULT_WEBHOOK) or not WEBHOOK_NAME_PATTERN.fullmatch(name):
        return None
    return name


def order_finished_asset(webhook: str = DEFAULT_WEBHOOK) -> Asset:
    """The asset that gets an event each time an order of this webhook's account finishes.

    One asset per account rather than one per order, because an asset only exists (and can get
    events) once a DAG declares it, and orders made in the web app are unknown in advance.
    """
    _check_name(webhook)
    return Asset(
        name=f"autoenhance/{webhook}/order_finished",
        uri=f"autoenhance://webhooks/{webhook}/order_finished",
        group="autoenhance",
    )


def order_asset(order_id: str) -> Asset:
    """One order's asset: gets the same event as :func:`order_finished_asset`, if a DAG declares it."""
    if not is_valid_id(order_id):
        raise ValueError(f"not an order id: {order_id!r}")
    return Asset(
        name=f"autoenhance/orders/{order_id}",
        uri=f"autoenhance://orders/{quote(order_id, safe='')}",
        group="autoenhance",
    )


def _check_name(webhook: str) -> None:
    if not isinstance(webhook, str) or not WEBHOOK_NAME_PATTERN.fullmatch(webhook):
        raise ValueError(f"webhook name must match {WEBHOOK_NAME_PATTERN.pattern}, got {webhook!r}")
