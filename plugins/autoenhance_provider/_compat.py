"""The few Airflow imports whose location moved between Airflow 3.0 and 3.3, and one accessor.

Everything else is imported from ``airflow.sdk`` directly. Behaviour that differs (not just a
location) is handled where it matters, with a comment naming the versions:
``AutoenhanceTaskMixin.partial`` (mapped-task labels) and ``OrderProcessedSensor.resume_execution``
(soft_fail on the trigger's safety-net timeout).
"""

from __future__ import annotations

from typing import Any

try:  # Airflow >= 3.2
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferralTimeout,
    )
except ImportError:  # pragma: no cover - Airflow 3.0, 3.1
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferralTimeout,
    )

try:  # Airflow >= 3.1
    from airflow.sdk.log import mask_secret
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]

try:  # Airflow >= 3.1
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]

try:  # Airflow >= 3.2
    from airflow.sdk import conf
except ImportError:  # pragma: no cover - Airflow 3.0, 3.1
    from airflow.configuration import conf  # type: ignore[no-redef]


def storage_conn_id(path: Any) -> str | None:
    """The connection id of an ``ObjectStoragePath``.

    A ``conn_id`` property since Airflow 3.2; Airflow 3.0 and 3.1 keep it in ``storage_options``.
    """
    try:
        return path.conn_id
    except AttributeError:  # Airflow < 3.2
        return path.storage_options.get("conn_id")


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "TaskDeferralTimeout",
    "conf",
    "mask_secret",
    "storage_conn_id",
]
