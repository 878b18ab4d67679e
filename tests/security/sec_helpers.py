"""Plain helpers of the security tests."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

#: A recognisable fake key: if it shows up anywhere, a grep finds it.
LEAK_CANARY_KEY = "ae-LEAK-CANARY-9f8e7d6c5b4a3210-do-not-print"


def jpeg_bytes(level: int = 120) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (level, 110, 130)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class FakeTI:
    """Just enough of a RuntimeTaskInstance for execute(): identity, XCom push, reschedule date."""

    def __init__(self) -> None:
        self.dag_id, self.run_id, self.task_id = "security_dag", "manual__2026-01-01T00:00:00", "task"
        self.map_index = -1
        self.try_number = 1
        self.xcom: dict[str, Any] = {}
        self.first_reschedule_date: Any = None

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def get_first_reschedule_date(self, context: Any) -> Any:
        return self.first_reschedule_date


def context(ti: FakeTI | None = None) -> dict[str, Any]:
    # Airflow's own accessor: it keys events by asset identity (an Asset is not hashable on 3.0).
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = ti or FakeTI()
    return {"ti": ti, "task_instance": ti, "run_id": ti.run_id, "outlet_events": OutletEventAccessors()}
