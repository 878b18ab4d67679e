"""example_autoenhance_pipeline on a real multi-process Airflow: CeleryExecutor, PostgreSQL, Redis.

The components are separate processes (api-server, scheduler, dag-processor, triggerer, Celery
worker) that share nothing but the metadata DB, the broker and the log folder; the DAG is triggered
and inspected only through the public REST API (/api/v2, JWT from the simple auth manager). The
connection form is checked in Debian's headless Chromium against the same api-server.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from run_celery_stack import (
    DAG_ID,
    FAKE_API_KEY,
    SAMPLE_PHOTOS,
    WEBHOOK_DAG_ID,
    CeleryStack,
    publish_screenshot,
)

pytestmark = pytest.mark.e2e

TASKS = ["create_order", "upload_photos", "wait_for_enhancement", "download_enhanced"]
PHOTOS = sorted(p.name for p in SAMPLE_PHOTOS.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})


def ti_path(run: dict[str, Any], task_id: str) -> str:
    return f"/dags/{DAG_ID}/dagRuns/{run['run_id']}/taskInstances/{task_id}"


def side_by_side(left_png: bytes, right_png: bytes, path: Path) -> None:
    """One PNG of two real screenshots of the same dialog (its two sections), next to each other."""
    left, right = Image.open(io.BytesIO(left_png)), Image.open(io.BytesIO(right_png))
    gap = 24
    combined = Image.new("RGB", (left.width + gap + right.width, max(left.height, right.height)), "white")
    combined.paste(left, (0, 0))
    combined.paste(right, (left.width + gap, 0))
    combined.save(path, optimize=True)


def test_pipeline_succeeds_on_celery(celery_stack: CeleryStack, pipeline_run: dict[str, Any]) -> None:
    states = {task_id: ti["state"] for task_id, ti in pipeline_run["task_instances"].items()}
    assert pipeline_run["run"]["state"] == "success", (states, celery_stack.diagnostics())
    assert states == dict.fromkeys(TASKS, "success")
    # Every task went through the Celery queue and ran in a worker process.
    for ti in pipeline_run["task_instances"].values():
        assert ti["queue"] == "default"
        assert ti["hostname"]
    worker_log = celery_stack.log_text("celery-worker")
    assert worker_log.count("execute_workload") >= len(TASKS), worker_log[-2000:]


def test_wait_was_deferred_and_resumed_by_the_triggerer(
    celery_stack: CeleryStack, pipeline_run: dict[str, Any]
) -> None:
    stack, run = celery_stack, pipeline_run
    # 1. The audit (event) log: running -> deferred -> running -> success, all within try 1.
    events = stack.api(
        "GET",
        "/eventLogs",
        params={
            "dag_id": DAG_ID,
            "run_id": run["run_id"],
            "task_id": "wait_for_enhancement",
            "order_by": "when",
        },
    ).json()["event_logs"]
    sequence = [(event["event"], event["try_number"]) for event in events]
    assert sequence == [("running", 1), ("deferred", 1), ("running", 1), ("success", 1)], sequence
    # 2. The task-instance tries: a single try, so the task resumed after the trigger, it was not retried.
    tries = stack.api("GET", f"{ti_path(run, 'wait_for_enhancement')}/tries").json()["task_instances"]
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "success")]
    # 3. The task log (through the REST API) holds the triggerer's part: the trigger ran and fired.
    lines = stack.task_log(DAG_ID, run["run_id"], "wait_for_enhancement", 1)
    text = "\n".join(str(line.get("event", "")) for line in lines)
    assert "Pausing task as DEFERRED" in text
    assert ".log.trigger." in text  # the triggerer's own log file of this task instance
    assert "Trigger fired event" in text
    assert "trigger completed" in text
    fired = next(line for line in lines if line.get("event") == "Trigger fired event")
    assert "'status': 'success'" in str(fired.get("result"))
    assert text.index("Pausing task as DEFERRED") < text.index("Trigger fired event")
    # 4. That part was written by a triggerer job: attempt=1.log.trigger.<job id>.log, and the REST API
    #    lists that id as a TriggererJob.
    trigger_file = next(str(line["event"]) for line in lines if ".log.trigger." in str(line.get("event")))
    job_id = int(re.search(r"\.log\.trigger\.(\d+)\.log$", trigger_file).group(1))
    jobs = stack.api("GET", "/jobs", params={"job_type": "TriggererJob"}).json()["jobs"]
    assert job_id in {job["id"] for job in jobs}, (job_id, jobs)


def test_sandbox_saw_one_order_and_every_image(
    celery_stack: CeleryStack, pipeline_run: dict[str, Any]
) -> None:
    stats = celery_stack.sandbox_get("/_sandbox/stats").json()
    assert stats["orders_created"] == 1
    assert stats["images_created"] == len(PHOTOS)
    assert stats["uploads"] == len(PHOTOS)
    assert stats["downloads"]["enhanced"] == len(PHOTOS)
    assert stats["purchases"] == len(PHOTOS)  # full_size=True: bought once each, never twice
    assert stats["duplicate_image_names"] == {}
    assert stats["leaked_api_key"] == {"storage": 0, "assets": 0}


def test_enhanced_files_in_the_output_folder(pipeline_run: dict[str, Any]) -> None:
    output: Path = pipeline_run["output"]
    # At any depth (the operator may write a folder per order), without its hidden manifest.
    paths = sorted(
        (p for p in output.rglob("*") if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name
    )
    assert [p.name for p in paths] == PHOTOS
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.size[0] > 0


def test_api_key_in_no_log(celery_stack: CeleryStack, pipeline_run: dict[str, Any]) -> None:
    stack = celery_stack
    # Every task log, as the UI shows it (REST API), including the triggerer's part.
    for task_id, ti in pipeline_run["task_instances"].items():
        content = json.dumps(stack.task_log(DAG_ID, pipeline_run["run_id"], task_id, ti["try_number"]))
        assert "autoenhance_provider" in content, f"{task_id}: no line of the provider in its log?"
        assert FAKE_API_KEY not in content, f"API key in the log of {task_id}"
    # Every file of the log folder (tasks, triggers, dag-processor) and every component's output.
    assert stack.assert_in_no_log_file(FAKE_API_KEY) >= len(TASKS) + 5


def test_connection_form_in_chromium(celery_stack: CeleryStack, browser: Any, screenshot_dir: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from autoenhance_provider.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR

    wait = WebDriverWait(browser, 30)
    # Admin -> Connections -> Add Connection, as a user would click.
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Admin']").click()
    menu_item = "//*[@role='menuitem'][normalize-space()='Connections']"
    wait.until(ec.element_to_be_clickable((By.XPATH, menu_item))).click()
    wait.until(ec.url_contains("/connections"))
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Add Connection']"))).click()
    wait.until(ec.presence_of_element_located((By.NAME, "connection_id"))).send_keys("autoenhance_ui_check")
    chooser = browser.find_element(By.CSS_SELECTOR, "input[role='combobox']")
    chooser.click()
    chooser.send_keys("Autoenhance")
    option = "//*[@role='option'][normalize-space()='Autoenhance']"
    wait.until(ec.presence_of_element_located((By.XPATH, option)))
    chooser.send_keys(Keys.ENTER)

    dialog = browser.find_element(By.CSS_SELECTOR, "[role='dialog']")
    password = wait.until(ec.visibility_of_element_located((By.NAME, "password")))
    host = browser.find_element(By.NAME, "host")
    labels = {label.text.strip() for label in browser.find_elements(By.TAG_NAME, "label")} - {""}
    # Our relabelling and placeholders; the key is a password field.
    assert {"API key", "API base URL"} <= labels, labels
    assert password.get_attribute("type") == "password"
    assert password.get_attribute("placeholder") == UI_FIELD_BEHAVIOUR["placeholders"]["password"]
    assert host.get_attribute("placeholder") == UI_FIELD_BEHAVIOUR["placeholders"]["host"]
    # The unused standard fields are hidden.
    for hidden in ("login", "schema", "port"):
        assert not browser.find_elements(By.NAME, hidden), f"{hidden} is shown"
    assert not {"Login", "Schema", "Port"} & labels, labels
    browser.execute_script("document.activeElement.blur()")
    standard_png = dialog.screenshot_as_png
    password.send_keys("ui-check-key")
    host.send_keys(celery_stack.sandbox_url)

    # Our extra fields, with labels and descriptions, in the "Extra Fields" section (the form
    # shows one section at a time).
    browser.find_element(By.XPATH, "//button[normalize-space()='Extra Fields']").click()
    for name, spec in CONN_FIELDS.items():
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"[name='element_{name}']")))
        label = browser.find_element(By.XPATH, f"//label[normalize-space()='{spec['label']}']")
        assert wait.until(lambda _, label=label: label.is_displayed()), spec["label"]
        text = json.dumps(spec["description"], ensure_ascii=False)
        assert browser.find_elements(By.XPATH, f"//*[normalize-space()={text}]"), spec["description"]
    extra_png = dialog.screenshot_as_png
    path = screenshot_dir / "connection-form.png"
    side_by_side(standard_png, extra_png, path)
    publish_screenshot(path)

    # Save it and read it back through the REST API: the form writes our conn type and extras.
    browser.find_element(By.CSS_SELECTOR, "[name='element_api_version']").send_keys("2025-05-08")
    browser.find_element(By.XPATH, "//button[normalize-space()='Save']").click()

    def saved() -> dict[str, Any] | None:
        response = celery_stack.api("GET", "/connections/autoenhance_ui_check")
        return response.json() if response.ok else None

    conn = celery_stack.wait_for("the connection to be saved", saved, timeout=30)
    assert conn["conn_type"] == "autoenhance"
    assert conn["host"] == celery_stack.sandbox_url
    assert json.loads(conn["extra"])["api_version"] == "2025-05-08"


def test_pipeline_graph_in_chromium(
    celery_stack: CeleryStack, pipeline_run: dict[str, Any], browser: Any, screenshot_dir: Path
) -> None:
    from urllib.parse import quote

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.set_window_size(1600, 820)  # wide: the graph, the run's details beside it
    browser.get(f"{celery_stack.api_url}/dags/{DAG_ID}/runs/{quote(pipeline_run['run_id'], safe='')}")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label^='Show Graph']"))).click()
    for task_id in TASKS:
        wait.until(ec.visibility_of_element_located((By.XPATH, f"//*[normalize-space()='{task_id}']")))
    badges = wait.until(
        lambda driver: (
            (found := driver.find_elements(By.XPATH, "//*[normalize-space()='success']"))
            and len(found) >= len(TASKS)
            and found
        )
    )
    assert len(badges) >= len(TASKS)
    path = screenshot_dir / "pipeline-graph.png"
    assert browser.save_screenshot(str(path))
    publish_screenshot(path)


def test_webhooks_start_the_download_dag(celery_stack: CeleryStack) -> None:
    """Sandbox webhooks over real HTTP -> the receiver on the API server -> asset events -> the
    scheduler's asset-triggered run -> Celery downloads each finished order into its own folder.

    The orders are seeded straight into the sandbox, as orders made in the Autoenhance web app are:
    Airflow learns about them only from the webhooks. One order after the other: an event that
    lands while the scheduler creates a run for the previous one only runs with the next event
    (Airflow's asset scheduling; see docs/webhooks.md). Runs last, so the pipeline's request
    counts above are its own.
    """
    stack = celery_stack
    images_per_order = 2
    stack.wait_for(
        f"{WEBHOOK_DAG_ID} to be parsed", lambda: stack.api("GET", f"/dags/{WEBHOOK_DAG_ID}").ok, timeout=120
    )
    response = stack.api("PATCH", f"/dags/{WEBHOOK_DAG_ID}", json={"is_paused": False})
    assert response.ok, response.text

    def images(order_id: str) -> list[Path]:
        folder = stack.webhook_output / order_id
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    order_ids: list[str] = []
    for count in (1, 2):
        seeded = stack.sandbox_post(
            "/_sandbox/seed", {"orders": 1, "images_per_order": images_per_order, "finish_after_seconds": 3}
        )
        assert seeded.ok, seeded.text
        order_id = seeded.json()["order_ids"][0]
        order_ids.append(order_id)

        def runs_done(order_id: str = order_id, count: int = count) -> list[dict[str, Any]] | None:
            runs = stack.api("GET", f"/dags/{WEBHOOK_DAG_ID}/dagRuns").json()["dag_runs"]
            if len(images(order_id)) < images_per_order or len(runs) < count:
                return None
            if any(run["state"] not in ("success", "failed") for run in runs):
                return None
            return runs

        what = f"the webhook DAG to download order {count}"
        runs = stack.wait_for(what, runs_done, timeout=240, interval=1)

    # Runs started by the scheduler on the asset, each a success. Every order that finishes in the
    # account sends its webhook: an order another test of this stack made (the pipeline DAG's) also
    # starts a run, which is the point of the feature; the seeded ones must be among them.
    assert runs, stack.diagnostics()
    kinds = {(run["run_type"], run["state"]) for run in runs}
    assert kinds == {("asset_triggered", "success")}, (runs, stack.diagnostics())
    # Those runs consumed the receiver's "order finished" events of exactly the seeded orders.
    consumed: list[str] = []
    for run in runs:
        events = stack.api(
            "GET", f"/dags/{WEBHOOK_DAG_ID}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
        ).json()["asset_events"]
        for event in events:
            assert event["uri"] == "autoenhance://webhooks/default/order_finished", event
            assert event["extra"]["webhook"] == "default"
            assert event["extra"]["order_is_processing"] is False
            consumed.append(event["extra"]["order_id"])
    assert set(order_ids) <= set(consumed), (consumed, order_ids)
    assert len(consumed) == len(set(consumed))  # each finished order consumed once
    # One folder per order, with its enhanced images.
    for order_id in order_ids:
        files = images(order_id)
        assert len(files) == images_per_order, files
        for path in files:
            with Image.open(path) as image:
                assert image.format == "JPEG"
    # The sandbox delivered every image_processed of those orders to the receiver, which accepted it.
    deliveries = [
        record
        for record in stack.sandbox_get("/_sandbox/webhooks").json()["events"]
        if record["payload"].get("order_id") in order_ids
    ]
    assert len(deliveries) == len(order_ids) * images_per_order, deliveries
    assert {(d["url"], d["status_code"], d["error"]) for d in deliveries} == {(stack.webhook_url, 200, None)}
    # The webhook token is in no log (tasks, triggerer, dag-processor, API server, sandbox).
    for folder in (stack.home / "logs", stack.log_dir):
        for path in folder.rglob("*"):
            if path.is_file():
                assert stack.webhook_token not in path.read_text(errors="replace"), f"token in {path}"
