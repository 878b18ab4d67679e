"""What an operator or sensor sees of Airflow while it runs: a task instance and an execution context."""

from __future__ import annotations

from typing import Any


class FakeTI:
    """Just enough of a RuntimeTaskInstance for execute()/poke(): identity, XCom push, reschedule date."""

    def __init__(
        self,
        *,
        dag_id: str = "test_dag",
        run_id: str = "manual__2026-01-01T00:00:00",
        task_id: str = "test_task",
        map_index: int | None = -1,
        try_number: int = 1,
    ) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        self.map_index = map_index
        self.try_number = try_number
        #: the last value pushed under each key, and every push in order
        self.xcoms: dict[str, Any] = {}
        self.pushes: list[tuple[str, Any]] = []
        self.first_reschedule_date: Any = None

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value
        self.pushes.append((key, value))

    def get_first_reschedule_date(self, context: Any) -> Any:
        return self.first_reschedule_date


def task_context(ti: FakeTI | None = None) -> dict[str, Any]:
    """An execution context with real outlet-event accessors (what the task runner passes)."""
    # Airflow's own accessor: it keys events by asset identity (an Asset is not hashable on 3.0).
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = ti or FakeTI()
    return {"ti": ti, "task_instance": ti, "run_id": ti.run_id, "outlet_events": OutletEventAccessors()}
