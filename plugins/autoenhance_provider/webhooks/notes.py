"""The receiver's notes of finished orders: what deferred waits read instead of polling.

The one definition of the protocol between the webhook receiver, which writes the notes
(:func:`remember_finished_order`, called by :mod:`.app`), and the triggers, which read them
(:func:`minute_key`, :func:`orders_in`, used by :mod:`autoenhance_provider.triggers.autoenhance`).
The notes live in the state store (Airflow 3.3+) of the account's asset
:func:`~autoenhance_provider.webhooks.order_finished_asset`: one entry per UTC minute,
``finished:<YYYYMMDDTHHMM>`` = ``{"<order id>": "<finished_at, ISO 8601>", ...}``, so every wait of a
triggerer learns of its order with one or two keyed reads per check, however many orders wait.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

#: The key of one minute's entry and the minute's format in it.
FINISHED_MINUTE_KEY = "finished:{minute}"
FINISHED_MINUTE_FORMAT = "%Y%m%dT%H%M"
#: A minute's entry holds at most this many orders (beyond, their waits rely on the safety poll).
MAX_ORDERS_PER_MINUTE = 5000
#: Entries older than this are deleted, at most once per ``PRUNE_INTERVAL`` per process and asset.
FINISHED_MINUTE_RETENTION = timedelta(hours=1)
PRUNE_INTERVAL = 3600.0
_last_prune: dict[int, float] = {}
_minute_lock = threading.Lock()


def minute_key(when: datetime) -> str:
    """The key of the entry for the UTC minute of ``when``."""
    return FINISHED_MINUTE_KEY.format(minute=when.astimezone(timezone.utc).strftime(FINISHED_MINUTE_FORMAT))


def orders_in(stored: Any) -> dict[str, str]:
    """The orders of an entry as read back (JSON text, or the object a client already decoded);
    ``{}`` for anything else, so a damaged entry only costs the waits their safety poll."""
    if isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except ValueError:
            return {}
    if not isinstance(stored, dict):
        return {}
    return {order: at for order, at in stored.items() if isinstance(order, str) and isinstance(at, str)}


def remember_finished_order(session: Any, asset_id: int, order_id: str) -> bool:
    """Add ``order_id`` to this minute's entry of the account asset's state store, and commit;
    return whether it could (Airflow before 3.3 has no asset state store: waits keep polling)."""
    try:
        from airflow.models.asset_state_store import AssetStateStoreModel
        from airflow.state import AssetScope, get_state_backend
    except ImportError:
        return False
    now = datetime.now(timezone.utc)
    backend, scope, key = get_state_backend(), AssetScope(asset_id=asset_id), minute_key(now)
    # Read, add, write and commit under a lock, so that concurrent deliveries to this API server
    # never drop each other's order. Across API servers a rare race can: that wait then ends on its
    # safety poll (time, not correctness).
    with _minute_lock:
        orders = orders_in(backend.get(scope, key, session=session))
        if len(orders) < MAX_ORDERS_PER_MINUTE:
            orders[order_id] = now.isoformat()
            backend.set(scope, key, json.dumps(orders, separators=(",", ":")), session=session)
        session.commit()
    ticks = time.monotonic()
    if ticks - _last_prune.get(asset_id, -PRUNE_INTERVAL) >= PRUNE_INTERVAL:
        _last_prune[asset_id] = ticks
        from sqlalchemy import delete

        session.execute(
            delete(AssetStateStoreModel).where(
                AssetStateStoreModel.asset_id == asset_id,
                AssetStateStoreModel.key.like(FINISHED_MINUTE_KEY.format(minute="%")),
                AssetStateStoreModel.updated_at < now - FINISHED_MINUTE_RETENTION,
            )
        )
    return True
