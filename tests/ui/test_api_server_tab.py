"""The tab inside Airflow's own API server, with real users, real JWTs and a real DAG run's XComs.

A child process (its own AIRFLOW_HOME, SQLite, SimpleAuthManager with three users: ``admin``,
``viewer`` (read-only) and ``outsider`` (no role: no right to any DAG)) runs a small DAG against
the sandbox with ``dag.test()``: create an order, upload two photos and one that is not an image,
wait. A plain task pushes an ``order_id`` XCom naming another order of the same account, which the
tab must ignore. Then it asks the API server app (``api_server_child.py``) what each user gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from autoenhance_sandbox.testing import run_sandbox

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parents[1] / "dags" / "sample_photos" / "listing-42"

DAG_FILE = textwrap.dedent(
    """
    import os

    import pendulum
    from airflow.sdk import DAG, task

    from autoenhance_provider.operators.order import CreateOrderOperator
    from autoenhance_provider.operators.upload import UploadImagesOperator
    from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

    with DAG("ui_tab_dag", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        order = CreateOrderOperator(task_id="create_order", name="UI tab test")
        photos = os.environ["UI_TAB_PHOTOS"]
        upload = UploadImagesOperator(task_id="upload", order_id=order.output, source=photos)
        wait = OrderProcessedSensor(
            task_id="wait", order_id=order.output, poke_interval=0.5, timeout=60, mode="poke", soft_fail=True
        )

        @task
        def not_autoenhance():
            return "nothing to see"

        @task
        def impostor(ti=None):
            ti.xcom_push(key="order_id", value=os.environ["UI_TAB_FOREIGN_ORDER"])

        order >> upload >> wait >> not_autoenhance() >> impostor()
    """
)


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("ui-airflow-home")
    dags, plugins, photos = home / "dags", home / "plugins", home / "photos"
    for folder in (dags, plugins, photos):
        folder.mkdir()
    (dags / "ui_tab_dag.py").write_text(DAG_FILE)
    for sample in sorted(SAMPLES.glob("*.jpg"))[:2]:
        shutil.copy(sample, photos / sample.name)
    # JPEG magic bytes, then nothing decodable: the API takes it and puts the image in `error`.
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a photo" * 64)
    passwords = {"admin": "admin-pw-1", "viewer": "viewer-pw-2", "outsider": "outsider-pw-3"}
    (home / "passwords.json").write_text(json.dumps(passwords))
    with run_sandbox(processing_seconds=0.3) as sandbox:
        (foreign_order,) = sandbox.seed(1, 1, finish_after_seconds=0)
        foreign_image = sandbox.state.get_order(foreign_order, sandbox.state.now())["images"][0]["image_id"]
        conn = {"conn_type": "autoenhance", "host": sandbox.base_url, "password": sandbox.api_key}
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,outsider:",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW_CONN_AUTOENHANCE_DEFAULT": json.dumps(conn),
            "UI_TAB_PHOTOS": str(photos),
            "UI_TAB_FOREIGN_ORDER": foreign_order,
            "UI_TAB_FOREIGN_IMAGE": foreign_image,
            "UI_TAB_TESTS": str(HERE.parent),
        }
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
        result = subprocess.run(
            [sys.executable, str(HERE / "api_server_child.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        stats = sandbox.stats()
        api_key = sandbox.api_key
    lines = [line for line in result.stdout.splitlines() if line.startswith("ANSWERS ")]
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert lines, result.stdout[-3000:]
    found = json.loads(lines[-1].removeprefix("ANSWERS "))
    found.update(
        stats=stats, api_key=api_key, foreign_order=foreign_order, output=result.stdout + result.stderr
    )
    return found


def test_airflow_lists_the_two_tabs(answers):
    routes = {(v["destination"], v["url_route"]) for v in answers["views"]}
    assert routes == {("dag_run", "autoenhance-run"), ("task_instance", "autoenhance-task")}
    assert all(
        v["name"] == "Autoenhance" and v["href"].startswith("/autoenhance-ui/") for v in answers["views"]
    )


def test_users_with_read_access_see_the_runs_photos(answers):
    for who in ("run admin", "run viewer", "run viewer cookie"):
        page = answers[who]
        assert page["status"] == 200, page["text"][:500]
        assert len(page["orders"]) == 1, who  # the run's own order, not the impostor's
        assert page["statuses"][0] == "error"  # errors first
        assert sorted(page["statuses"][1:]) == ["processed", "processed"]
        assert len(page["thumbs"]) == 5  # 2 originals + 2 enhanced + the broken one's original
    text = answers["run admin"]["text"]
    assert "broken.jpg" in text
    assert 'class="reason"' in text  # the error's status_reason, shown with it
    assert answers["foreign_order"] not in text
    assert answers["api_key"] not in answers["output"]


def test_anonymous_and_unauthorised_users_get_nothing(answers):
    assert answers["run anonymous"]["status"] == 401
    assert answers["run expired"]["status"] == 401
    assert answers["run not-a-jwt"]["status"] == 403
    assert answers["run outsider"]["status"] == 403
    assert answers["task upload outsider"]["status"] == 403
    for name in ("run anonymous", "run expired", "run not-a-jwt", "run outsider", "task upload outsider"):
        assert answers[name]["orders"] == []
        assert answers["run admin"]["orders"][0] not in answers[name]["text"]
    assert answers["photo outsider"]["status"] == 403
    assert not answers["photo outsider"]["jpeg"]
    assert answers["photo anonymous"]["status"] == 401
    assert not answers["photo anonymous"]["jpeg"]
    assert not answers["photo outsider"]["type"].startswith("image/")


def test_photos_are_proxied_previews_and_foreign_images_refused(answers):
    assert answers["photo viewer"] == {"status": 200, "type": "image/jpeg", "jpeg": True}
    assert answers["photo foreign"]["status"] == 404
    assert answers["photo broken"] == {"status": 502, "type": "image/svg+xml", "jpeg": False}  # "no preview"
    assert answers["stats"]["purchases"] == 0


def test_task_tabs(answers):
    upload = answers["task upload"]
    assert upload["status"] == 200
    assert upload["orders"] == answers["run admin"]["orders"]
    assert answers["task wait"]["orders"] == answers["run admin"]["orders"]
    assert "is not an Autoenhance task: it has no order" in answers["task not_autoenhance"]["text"]
    assert "is not an Autoenhance task: it has no order" in answers["task impostor"]["text"]
