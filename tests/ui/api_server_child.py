"""Run by test_api_server_tab.py in a child process with its own AIRFLOW_HOME (see there).

Runs the test DAG once with ``dag.test()`` against the sandbox, then asks Airflow's own API server
app (``create_app(apps="all")``, the tab's plugin mounted from the package's entry point) what each
user gets, signed in through ``POST /auth/token`` like any API client. Prints one JSON line.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi.testclient import TestClient


def main() -> int:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    sys.path.insert(0, os.environ["UI_TAB_TESTS"])
    from example_dags_support import dag_bag

    bag = dag_bag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    dagrun = bag.get_dag("ui_tab_dag").test()
    run_id = dagrun.run_id
    passwords = json.loads(Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())

    client = TestClient(create_app(apps="all"))

    def token(user: str) -> str:
        response = client.post("/auth/token", json={"username": user, "password": passwords[user]})
        assert response.status_code in (200, 201), response.text
        return str(response.json()["access_token"])

    tokens = {user: token(user) for user in ("admin", "viewer", "outsider")}
    expired = get_auth_manager().generate_jwt(
        SimpleAuthManagerUser(username="admin", role="admin"), expiration_time_in_seconds=-3600
    )
    run = {"dag_id": "ui_tab_dag", "run_id": run_id}

    def get(path: str, params: dict[str, str], who: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {tokens.get(who, who)}"} if who else {}
        client.cookies.clear()
        return client.get(f"/autoenhance-ui{path}", params=params, headers=headers, **kwargs)

    def summary(response: Any) -> dict[str, Any]:
        text = response.text if not response.headers.get("content-type", "").startswith("image/") else ""
        return {
            "status": response.status_code,
            "type": response.headers.get("content-type", ""),
            "orders": re.findall(r'data-order-id="([^"]+)"', text),
            "statuses": re.findall(r'data-status="([^"]+)"', text),
            "thumbs": re.findall(r'<img class="thumb" src="([^"]+)"', text),
            "text": text,
        }

    answers: dict[str, Any] = {"run_id": run_id, "dag_state": str(dagrun.state)}
    for who in ("admin", "viewer", "outsider", None, "not-a-jwt", expired):
        name = {None: "anonymous", expired: "expired"}.get(who, who)
        answers[f"run {name}"] = summary(get("/run", run, who))
    client.cookies.set("_token", tokens["viewer"])
    answers["run viewer cookie"] = summary(client.get("/autoenhance-ui/run", params=run))
    client.cookies.clear()
    for task_id in ("upload", "wait", "not_autoenhance", "impostor"):
        params = {**run, "task_id": task_id, "map_index": "-1"}
        answers[f"task {task_id}"] = summary(get("/task", params, "viewer"))
    answers["task upload outsider"] = summary(get("/task", {**run, "task_id": "upload"}, "outsider"))

    thumbs = answers["run admin"]["thumbs"]
    queries = [dict(parse_qsl(html.unescape(src).split("?", 1)[1])) for src in thumbs]
    # The broken upload's original (listed first: errors first) cannot be shown: a 502, drawn.
    broken = get("/photo", queries[0], "viewer")
    answers["photo broken"] = {
        "status": broken.status_code,
        "type": broken.headers.get("content-type", ""),
        "jpeg": broken.content.startswith(b"\xff\xd8\xff"),
    }
    photo_params = next(q for q in queries if q["kind"] == "enhanced")
    for who in ("viewer", "outsider", None):
        name = who or "anonymous"
        response = get("/photo", photo_params, who)
        answers[f"photo {name}"] = {
            "status": response.status_code,
            "type": response.headers.get("content-type", ""),
            "jpeg": response.content.startswith(b"\xff\xd8\xff"),
        }
    foreign = {**photo_params, "image_id": os.environ["UI_TAB_FOREIGN_IMAGE"]}
    answers["photo foreign"] = {"status": get("/photo", foreign, "admin").status_code}

    plugins = client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {tokens['admin']}"}).json()
    answers["views"] = [
        {k: view[k] for k in ("name", "destination", "url_route", "href")}
        for plugin in plugins["plugins"]
        if plugin["name"] == "autoenhance_ui"
        for view in plugin["external_views"]
    ]
    print("ANSWERS " + json.dumps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
