"""Airflow's own API server app mounts the plugin and serves it without Airflow's authentication.

Run in a child process: Airflow loads plugins once per process, from the plugins folder given here
(the provider registers the plugin through its metadata once ``get_provider_info`` lists it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json
    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_app

    app = create_app(apps="all")
    client = TestClient(app)
    body = b'{"event": "webhook_updated"}'

    def status(token):
        headers = {"Authorization": token}
        return client.post("/autoenhance/webhook", content=body, headers=headers).status_code

    answers = {
        "mounted": [route.path for route in app.routes if getattr(route, "path", "") == "/autoenhance"],
        "bearer": status("Bearer s3cret"),
        "raw": status("s3cret"),
        "wrong": status("guess"),
        "docs": client.get("/autoenhance/docs").status_code,
    }
    print("ANSWERS " + json.dumps(answers))
    """
)


def test_airflow_api_server_serves_the_receiver(tmp_path: Path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "autoenhance_webhooks.py").write_text(
        "from autoenhance_provider.webhooks.plugin import AutoenhanceWebhooksPlugin  # noqa: F401\n"
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW_CONN_AUTOENHANCE_WEBHOOK": json.dumps({"conn_type": "generic", "password": "s3cret"}),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("ANSWERS ")]
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines, result.stdout[-3000:]
    answers = json.loads(lines[-1].removeprefix("ANSWERS "))
    assert answers == {"mounted": ["/autoenhance"], "bearer": 200, "raw": 200, "wrong": 401, "docs": 404}
    assert "s3cret" not in result.stdout + result.stderr
