"""What the e2e tests do with a running Airflow, whichever stack runs it (CeleryStack or LocalAirflow).

Its REST API (``/api/v2`` with a JWT from the simple auth manager), the sandbox beside it, DAG runs
triggered and read over REST, and a bounded wait that stops as soon as the stack has died.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import requests

from support.timing import wait_until


def clean_env(*also: str) -> dict[str, str]:
    """This process's environment without what a component of the stack must not inherit
    (``AIRFLOW*``, ``AUTOENHANCE*``, ``PYTEST*``, and the prefixes in ``also``)."""
    drop = ("AIRFLOW", "AUTOENHANCE", "PYTEST", *also)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


class AirflowClient:
    """A mixin: the stack sets ``api_url``, ``sandbox_url``, ``username``, ``password`` and says
    in :meth:`_check_alive` how it finds out that it has died."""

    api_url: str
    sandbox_url: str
    username: str
    password: str
    #: How often :meth:`wait_for` asks, unless a call says otherwise.
    wait_interval = 0.25
    _token: str | None = None

    def _check_alive(self, what: str = "") -> None:
        """Raise (naming the component) when the stack has died; ``what``: what was being awaited."""
        raise NotImplementedError

    def wait_for(self, what: str, probe: Any, timeout: float, interval: float | None = None) -> Any:
        """Poll ``probe`` until it returns something truthy (an exception counts as not yet) and
        return that; bounded in time, and at once an error when the stack has died."""

        def ready() -> Any:
            self._check_alive(what)
            with contextlib.suppress(Exception):
                return probe()
            return None

        try:
            return wait_until(ready, timeout, self.wait_interval if interval is None else interval)
        except AssertionError:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}") from None

    # -- REST API --------------------------------------------------------------------------------

    def token(self) -> str:
        """A JWT from the simple auth manager: ``POST /auth/token`` with username and password."""
        if self._token is None:
            response = requests.post(
                f"{self.api_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=10,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.api_url}/api/v2{path}", headers=headers, timeout=30, **kwargs)

    def sandbox_get(self, path: str) -> requests.Response:
        return requests.get(f"{self.sandbox_url}{path}", timeout=5)

    def sandbox_post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.sandbox_url}{path}", json=body, timeout=30)

    # -- DAG runs --------------------------------------------------------------------------------

    def unpause_when_parsed(self, dag_id: str, timeout: float) -> None:
        """Wait until the dag-processor has serialised ``dag_id`` (not triggerable before); unpause it."""
        self.wait_for(
            f"{dag_id} to be parsed", lambda: self.api("GET", f"/dags/{dag_id}").ok, timeout=timeout
        )
        response = self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert response.ok, response.text

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """A new run of ``dag_id`` with ``conf``: its run id."""
        response = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        assert response.status_code == 200, response.text
        return str(response.json()["dag_run_id"])

    def finished_run(
        self, dag_id: str, run_id: str, timeout: float, interval: float | None = None
    ) -> dict[str, Any]:
        """The run once it has ended (success or failed), waited for as :meth:`wait_for` waits."""

        def finished() -> dict[str, Any] | None:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()
            return run if run["state"] in ("success", "failed") else None

        return self.wait_for(f"dag run {run_id}", finished, timeout=timeout, interval=interval)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Task id -> task instance of the run."""
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[dict[str, Any]]:
        """A try's log as the UI shows it (the worker's part and the triggerer's)."""
        response = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        assert response.status_code == 200, response.text
        return response.json()["content"]
