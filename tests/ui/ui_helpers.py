"""Helpers of the tab's tests: a fake of Airflow's side (users, rights, runs, XComs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from autoenhance_provider.ui import access
from autoenhance_provider.ui.data import OrderRef, TaskInfo

DAG_ID = "photos_dag"
RUN_ID = "manual__2026-12-07T10:00:00+00:00"
TOKENS = {"admin-jwt": "admin", "viewer-jwt": "viewer", "outsider-jwt": "outsider"}


@dataclass
class FakeAirflow:
    """Users, rights, runs and XComs; records every call so tests can prove what was (not) read."""

    refs: list[OrderRef] = field(default_factory=list)
    tasks: dict[str, bool] = field(default_factory=dict)  # task_id -> is a provider task
    calls: list[str] = field(default_factory=list)

    async def authenticate(self, request: Request) -> str:
        token = access.request_token(request)  # the real reading of cookie and header
        self.calls.append("authenticate")
        if not token:
            raise HTTPException(status_code=401, detail="Not authenticated")
        if token not in TOKENS:
            raise HTTPException(status_code=403, detail="Invalid JWT token")
        return TOKENS[token]

    def authorize(self, user: str, dag_id: str, entities: tuple[str, ...]) -> None:
        self.calls.append(f"authorize {user} {dag_id} {'+'.join(entities)}")
        if user == "outsider":
            raise HTTPException(status_code=403, detail="Forbidden")

    def run_exists(self, dag_id: str, run_id: str) -> bool:
        self.calls.append("run_exists")
        return (dag_id, run_id) == (DAG_ID, RUN_ID)

    def task_info(self, dag_id: str, task_id: str) -> TaskInfo:
        self.calls.append("task_info")
        return TaskInfo(task_id in self.tasks, self.tasks.get(task_id, False))

    def order_refs(
        self, dag_id: str, run_id: str, task_id: str | None = None, map_index: int | None = None
    ) -> list[OrderRef]:
        self.calls.append("order_refs")
        if task_id is None:
            return list(self.refs)

        def named_by_this_instance(label: str) -> bool:
            name, _, index = label.partition(" [")
            if name != task_id:
                return False
            return map_index is None or (index.rstrip("]") if index else "-1") == str(map_index)

        return [r for r in self.refs if any(named_by_this_instance(label) for label in r.tasks)]

    def read_calls(self) -> list[str]:
        """Calls that read data (anything after authentication and authorisation)."""
        return [c for c in self.calls if c in ("run_exists", "task_info", "order_refs")]


def as_user(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
