"""Every difference between Airflow 3.0 and 3.3 the provider depends on, in one module.

Moved imports, the storage connection accessor, the per-task-instance state store (3.3+) and the
default label template of mapped tasks. Everything else is imported from ``airflow.sdk`` directly.
"""

from __future__ import annotations

from typing import Any

import airflow.sdk.exceptions as _exceptions

if not hasattr(_exceptions, "AirflowFailException"):  # pragma: no cover - Airflow 3.0, 3.1
    import airflow.exceptions as _exceptions  # type: ignore[no-redef]

AirflowException = _exceptions.AirflowException
AirflowFailException = _exceptions.AirflowFailException
AirflowNotFoundException = _exceptions.AirflowNotFoundException
AirflowSensorTimeout = _exceptions.AirflowSensorTimeout
AirflowSkipException = _exceptions.AirflowSkipException
TaskDeferralTimeout = _exceptions.TaskDeferralTimeout

try:  # Airflow >= 3.1
    from airflow.sdk.log import mask_secret
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]


async def amask_secret(secret: str) -> None:
    """``mask_secret`` from an event loop (Airflow 3.1+ has an async variant that never blocks)."""
    try:
        from airflow.sdk.log import amask_secret as _amask
    except ImportError:  # pragma: no cover - Airflow 3.0
        mask_secret(secret)
        return
    await _amask(secret)


try:  # Airflow >= 3.1
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined,unused-ignore]

try:  # the base of XComArg and of mapped task arguments: values only known at run time
    from airflow.sdk.definitions._internal.mixins import ResolveMixin as RuntimeValue
except ImportError:  # pragma: no cover - should Airflow move it
    from airflow.sdk import XComArg as RuntimeValue  # type: ignore[assignment,unused-ignore]

try:  # Airflow >= 3.2
    from airflow.sdk import conf
except ImportError:  # pragma: no cover - Airflow 3.0, 3.1
    from airflow.configuration import conf  # type: ignore[no-redef,assignment,unused-ignore]


async def aget_connection(conn_id: str) -> Any:
    """Look a connection up without blocking the event loop (``aget_connection`` since 3.1)."""
    getter = getattr(BaseHook, "aget_connection", None)
    if getter is not None:
        return await getter(conn_id)
    from asgiref.sync import sync_to_async  # pragma: no cover - Airflow 3.0

    return await sync_to_async(BaseHook.get_connection)(conn_id)  # pragma: no cover


def task_state_get(context: Any, key: str) -> Any:
    """A value kept for this task instance across reschedules (Airflow 3.3+ ``task_state_store``).

    Airflow clears a task's XComs whenever it starts again, including after a reschedule; the
    state store is the one place that survives. Before 3.3 there is none: returns None.
    """
    store = context.get("task_state_store") if hasattr(context, "get") else None
    if store is None:
        return None
    try:
        return store.get(key)
    except Exception:  # no value yet (or the store is unavailable): start afresh
        return None


def task_state_set(context: Any, key: str, value: Any) -> None:
    """Keep ``value`` for this task instance (no-op before Airflow 3.3)."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    if store is not None:
        try:
            store.set(key, value)
        except Exception:  # the state is an optimisation of the error budget, never a reason to fail
            return


def asset_state_reader(asset_name: str) -> Any:
    """An async ``get(key)`` on an asset's state store, usable from a trigger; None before 3.3.

    ``AssetStateStoreAccessor`` (AIP-103, Airflow 3.3) is not a public import path yet, so it is
    imported here and only here; callers treat None (or any error when reading) as "no store".
    """
    try:
        from airflow.sdk.execution_time.context import AssetStateStoreAccessor
    except ImportError:  # pragma: no cover - Airflow 3.0 to 3.2
        return None
    return AssetStateStoreAccessor(name=asset_name).aget


try:
    from airflow.sdk import literal
except ImportError:  # Airflow 3.0 lists it in airflow.sdk.__all__ but cannot import it from there
    from airflow.sdk.definitions.template import literal  # type: ignore[no-redef,unused-ignore]


def label_mapped_partial(partial: Any, kwargs: dict[str, Any], template: str) -> Any:
    """Give a ``.partial()`` the label template as its default ``map_index_template``.

    Airflow 3.3 takes ``.partial()`` defaults from the operator's ``__init__`` signature; 3.0 to
    3.2 take BaseOperator's (no template), so mapped instances would go unlabelled.
    """
    if "map_index_template" not in kwargs and partial.kwargs.get("map_index_template") is None:
        partial.kwargs["map_index_template"] = template
    return partial


def storage_conn_id(path: Any) -> str | None:
    """The connection id of an ``ObjectStoragePath``.

    A ``conn_id`` property since Airflow 3.2; Airflow 3.0 and 3.1 keep it in ``storage_options``.
    """
    try:
        conn_id = path.conn_id
    except AttributeError:  # Airflow < 3.2
        conn_id = path.storage_options.get("conn_id")
    return str(conn_id) if conn_id else None


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "RuntimeValue",
    "TaskDeferralTimeout",
    "aget_connection",
    "amask_secret",
    "asset_state_reader",
    "conf",
    "label_mapped_partial",
    "literal",
    "mask_secret",
    "storage_conn_id",
    "task_state_get",
    "task_state_set",
]
