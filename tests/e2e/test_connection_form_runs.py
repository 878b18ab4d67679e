"""Connections made in the Airflow UI form run the example pipeline (`make airflow`, headless Chromium).

A user's path, end to end: Admin -> Connections -> Add Connection -> type Autoenhance, fill the form,
Save; then trigger example_autoenhance_pipeline, which uses `autoenhance_default`. The form stores
every extra it shows, empty ones as null/false: those must mean "unset". Three connections, one
after the other under that id (the DAG has no conn-id param): only key + URL (runs), every field
filled (runs, with development mode visible in the sandbox), a wrong key (the first task fails with
a message that names the connection). The Test button is clicked for each, and what the UI sent and
got is read from Chrome's network log.

Airflow 3.3.2 limitation asserted as it is: the row's Test button sends ``"port": Number(null)`` = 0
with the masked password; the API route compares that 0 with the stored NULL port, finds a
"different destination" and answers 400 before our hook runs (apache/airflow#73298 fixes it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from local_airflow_stack import SANDBOX_KEY, LocalAirflow
from run_celery_stack import DAG_ID, SAMPLE_PHOTOS

pytestmark = pytest.mark.e2e

CONN_ID = "autoenhance_default"  # what example_autoenhance_pipeline uses
WRONG_KEY = "ae-e2e-WRONG-key-5eed-d00d"
TASKS = ["create_order", "upload_photos", "wait_for_enhancement", "download_enhanced"]
PHOTOS = sorted(p.name for p in SAMPLE_PHOTOS.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
DIFFERENT_DESTINATION = "The host or port to test differs from the stored connection."


def airflow_rejects_port_zero() -> bool:
    """True when this Airflow's test route treats the UI's ``port: 0`` as another destination.

    airflow/api_fastapi/core_api/routes/public/connections.py, ``_same_endpoint`` (3.3.2: lines
    110-122) normalises only None and "" to "unset"; ``test_connection`` (lines 384-395) then answers
    400 unless the body carries a real password.
    """
    from airflow.api_fastapi.core_api.routes.public.connections import _same_endpoint

    return not _same_endpoint(0, None)


def every_field_values(sandbox_url: str) -> dict[str, Any]:
    """A value for each extra the form offers (or offered), as a user types it; ca_bundle: a real PEM."""
    import certifi

    return {
        "api_version": "2025-05-08",
        "dev_mode": True,
        "timeout": 30,
        "connect_timeout": 5,
        "request_deadline": 60,
        "min_transfer_rate": 10000,
        "max_requests_per_second": 50,
        "order_id_namespace": "e2e-form",
        "ca_bundle": certifi.where(),
        "app_url": sandbox_url,
        "allow_insecure_http": False,
    }


# -- the browser -------------------------------------------------------------------------------


def type_into(field: Any, text: str) -> None:
    """Type like a user, and check: a key typed into a React input can get lost (retyped up to 3x)."""
    from selenium.webdriver.common.keys import Keys

    for _ in range(3):
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)
        for start in range(0, len(text), 8):  # short bursts: chromedriver drops a key of long ones
            field.send_keys(text[start : start + 8])
        if field.get_attribute("value") == text:
            return
    raise AssertionError(f"the form kept {field.get_attribute('value')!r} instead of {text!r}")


@dataclass(frozen=True)
class FormUI:
    """What each test here works with: the stack (its DAG unpaused), the signed-in browser, and
    whether this Airflow's test route refuses the UI's port 0 (a future: a heavy import)."""

    stack: LocalAirflow
    browser: Any
    port_zero_verdict: Future[bool]


def add_connection_in_form(
    ui: FormUI,
    *,
    api_key: str,
    extras: dict[str, Any] | None = None,
    description: str = "",
) -> dict[str, Any]:
    """Replace the DAG's connection: delete it, then Admin -> Connections -> Add Connection, type
    Autoenhance; fill only what is given; Save."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    stack, browser = ui.stack, ui.browser
    replace_default_connection(stack)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{stack.url}/connections")
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Add Connection']"))).click()
    type_into(wait.until(ec.presence_of_element_located((By.NAME, "connection_id"))), CONN_ID)
    chooser = browser.find_element(By.CSS_SELECTOR, "input[role='combobox']")
    chooser.click()
    chooser.send_keys("Autoenhance")
    wait.until(
        ec.presence_of_element_located((By.XPATH, "//*[@role='option'][normalize-space()='Autoenhance']"))
    )
    chooser.send_keys(Keys.ENTER)
    type_into(wait.until(ec.visibility_of_element_located((By.NAME, "password"))), api_key)
    type_into(browser.find_element(By.NAME, "host"), stack.sandbox_url)
    if description:
        type_into(browser.find_element(By.NAME, "description"), description)
    if extras:
        browser.find_element(By.XPATH, "//button[normalize-space()='Extra Fields']").click()
        for name, value in extras.items():
            field = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"[name='element_{name}']")))
            if isinstance(value, bool):
                if field.is_selected() != value:
                    field.find_element(By.XPATH, "./..").click()  # the switch's label
                assert wait.until(lambda _, f=field, v=value: f.is_selected() == v), name
            else:
                type_into(field, str(value))
    browser.find_element(By.XPATH, "//button[normalize-space()='Save']").click()

    def saved() -> dict[str, Any] | None:
        response = stack.api("GET", f"/connections/{CONN_ID}")
        return response.json() if response.ok else None

    return stack.wait_for("the form's connection to be saved", saved, timeout=30)


def click_test_button(browser: Any, stack: LocalAirflow) -> dict[str, Any]:
    """Click the row's Test Connection button; return the request, the response and the toast."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(f"{stack.url}/connections")
    row = wait.until(ec.presence_of_element_located((By.XPATH, f"//tr[.//*[normalize-space()='{CONN_ID}']]")))
    button = row.find_element(By.CSS_SELECTOR, "button[aria-label='Test Connection']")
    assert button.is_enabled(), "the Test button is disabled: AIRFLOW__CORE__TEST_CONNECTION not Enabled?"
    browser.get_log("performance")  # drop what came before
    button.click()
    toast = wait.until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-scope='toast'][data-part='root']"))
    )
    result: dict[str, Any] = {"toast": toast.text}
    request_id, finished = None, False
    deadline = time.monotonic() + 15
    while not finished and time.monotonic() < deadline:
        for entry in browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message["method"], message.get("params", {})
            if method == "Network.requestWillBeSent" and params["request"]["url"].endswith(
                "/api/v2/connections/test"
            ):
                request_id = params["requestId"]
                result["request"] = json.loads(params["request"]["postData"])
            elif request_id and params.get("requestId") == request_id:
                if method == "Network.responseReceived":
                    result["status_code"] = params["response"]["status"]
                elif method == "Network.loadingFinished":
                    finished = True
        time.sleep(0.2)
    if finished:
        body = browser.execute_cdp_cmd("Network.getResponseBody", {"requestId": request_id})
        result["response"] = json.loads(body["body"])
    assert "request" in result, result
    assert "response" in result, result
    return result


# -- Airflow -----------------------------------------------------------------------------------


def run_pipeline(stack: LocalAirflow, output: Path, timings: dict[str, float]) -> dict[str, Any]:
    """Trigger the example pipeline over REST and wait (bounded) for its end."""
    run_id = stack.trigger(DAG_ID, {"output_folder": str(output)})
    started = time.monotonic()
    run = stack.finished_run(DAG_ID, run_id, timeout=180)
    timings[f"pipeline_run_{output.name}"] = time.monotonic() - started
    return {"run_id": run_id, "state": run["state"], "tis": stack.task_instances(DAG_ID, run_id)}


def task_log_text(stack: LocalAirflow, run: dict[str, Any], task_id: str) -> str:
    content = stack.task_log(DAG_ID, run["run_id"], task_id, run["tis"][task_id]["try_number"])
    return json.dumps(content, ensure_ascii=False)


def failed_task_logs(stack: LocalAirflow, run: dict[str, Any], limit: int = 4000) -> dict[str, str]:
    """The end of each failed task's log: what a failed run's assertion shows."""
    return {
        task_id: task_log_text(stack, run, task_id)[-limit:]
        for task_id, ti in run["tis"].items()
        if ti["state"] == "failed"
    }


def sandbox_stats(stack: LocalAirflow) -> dict[str, Any]:
    return stack.sandbox_get("/_sandbox/stats").json()


def downloaded(folder: Path) -> list[str]:
    """The photos under an output folder, at any depth (per-order folder; a hidden manifest beside)."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def unauthorized(stats: dict[str, Any]) -> int:
    """How many requests the sandbox answered with 401, over all its routes."""
    return sum(by_status.get("401", 0) for by_status in stats["requests"].values())


def replace_default_connection(stack: LocalAirflow) -> None:
    """The next form connection takes the DAG's conn id: delete the one there (204, or 404 if none)."""
    response = stack.api("DELETE", f"/connections/{CONN_ID}")
    assert response.status_code in (204, 404), response.text


def assert_test_button(result: dict[str, Any], *, key_is_good: bool, rejects_port_zero: bool) -> None:
    """The Test button's outcome: the 3.3.2 limitation as it is, or the hook's own verdict."""
    sent = result["request"]
    # What the UI sends for a connection without a port, whatever Airflow does with it.
    assert sent["port"] == 0, sent
    assert sent["password"] == "***", sent
    if rejects_port_zero:
        assert result["status_code"] == 400, result
        assert result["response"]["detail"].startswith(DIFFERENT_DESTINATION), result
        assert "Test Connection Failed" in result["toast"], result
    elif key_is_good:
        assert result["status_code"] == 200, result
        assert result["response"]["status"] is True, result
        assert "Test Connection Successful" in result["toast"], result
    else:
        assert result["status_code"] == 200, result
        assert result["response"]["status"] is False, result
        assert "rejected the API key" in result["response"]["message"], result


def assert_rest_test(stack: LocalAirflow, *, key_is_good: bool) -> None:
    """The same test without the UI's port 0 (what the fixed Airflow does): our hook's verdict."""
    response = stack.api(
        "POST", "/connections/test", json={"connection_id": CONN_ID, "conn_type": "autoenhance"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    if key_is_good:
        assert body == {
            "status": True,
            "message": f"Connected to Autoenhance at {stack.sandbox_url}; the API key was accepted.",
        }
    else:
        assert body["status"] is False, body
        assert "rejected the API key (HTTP 401)" in body["message"], body
        assert WRONG_KEY not in body["message"]


def assert_connection_tests(ui: FormUI, *, key_is_good: bool) -> None:
    """The row's Test button in the UI, then the same test over REST."""
    assert_test_button(
        click_test_button(ui.browser, ui.stack),
        key_is_good=key_is_good,
        rejects_port_zero=ui.port_zero_verdict.result(timeout=300),
    )
    assert_rest_test(ui.stack, key_is_good=key_is_good)


def run_pipeline_to_success(
    stack: LocalAirflow, output: Path, timings: dict[str, float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the pipeline: every task succeeds, every photo lands in ``output``, one order is created.
    The sandbox's stats before and after the run."""
    before = sandbox_stats(stack)
    run = run_pipeline(stack, output, timings)
    states = {task_id: ti["state"] for task_id, ti in run["tis"].items()}
    assert run["state"] == "success", (states, failed_task_logs(stack, run))
    assert states == dict.fromkeys(TASKS, "success")
    assert downloaded(output) == PHOTOS
    after = sandbox_stats(stack)
    assert after["orders_created"] - before["orders_created"] == 1
    return before, after


# -- the tests (in order: they share the stack and replace the connection one after the other) ---


@pytest.fixture(scope="module")
def port_zero_verdict() -> Iterator[Future[bool]]:
    """airflow_rejects_port_zero(), imported in a thread while the stack starts (a heavy import)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(airflow_rejects_port_zero)


@pytest.fixture(scope="module")
def dag_ready(local_airflow: LocalAirflow) -> LocalAirflow:
    local_airflow.unpause_when_parsed(DAG_ID, timeout=120)
    return local_airflow


@pytest.fixture(scope="module")
def ui(port_zero_verdict: Future[bool], dag_ready: LocalAirflow, local_browser: Any) -> FormUI:
    return FormUI(dag_ready, local_browser, port_zero_verdict)


def test_form_with_only_key_and_url_runs_the_pipeline(
    ui: FormUI, tmp_path: Path, e2e_timings: dict[str, float]
) -> None:
    from autoenhance_provider.get_provider_info import CONN_FIELDS

    stack = ui.stack
    conn = add_connection_in_form(ui, api_key=SANDBOX_KEY)
    assert (conn["conn_type"], conn["host"], conn["port"]) == ("autoenhance", stack.sandbox_url, None)
    # The form stores the extras it shows, untouched ones as null/false: the case that used to fail.
    extra = json.loads(conn["extra"])
    assert set(extra) == set(CONN_FIELDS), extra
    assert all(value in (None, False) for value in extra.values()), extra

    assert_connection_tests(ui, key_is_good=True)

    before, after = run_pipeline_to_success(stack, tmp_path, e2e_timings)
    # dev_mode left empty = off: every full-size image was bought.
    assert after["purchases"] - before["purchases"] == len(PHOTOS)


def test_form_with_every_field_filled_runs_the_pipeline(
    ui: FormUI, tmp_path: Path, e2e_timings: dict[str, float]
) -> None:
    from autoenhance_provider.get_provider_info import CONN_FIELDS

    stack = ui.stack
    known = every_field_values(stack.sandbox_url)
    assert set(CONN_FIELDS) <= set(known), "a new form field: give it a value in every_field_values()"
    values = {name: known[name] for name in CONN_FIELDS}
    conn = add_connection_in_form(
        ui, api_key=SANDBOX_KEY, extras=values, description="every field, from the form"
    )
    assert conn["description"] == "every field, from the form"
    assert json.loads(conn["extra"]) == values

    assert_connection_tests(ui, key_is_good=True)

    before, after = run_pipeline_to_success(stack, tmp_path, e2e_timings)
    assert after["downloads"]["enhanced"] - before["downloads"]["enhanced"] == len(PHOTOS)
    # dev_mode on reached the API (x-dev-mode: true): full-size downloads without buying.
    assert after["purchases"] == before["purchases"]


def test_form_with_a_wrong_key_fails_the_first_task_naming_the_connection(
    ui: FormUI, tmp_path: Path, e2e_timings: dict[str, float]
) -> None:
    stack = ui.stack
    add_connection_in_form(ui, api_key=WRONG_KEY)

    assert_connection_tests(ui, key_is_good=False)

    before = sandbox_stats(stack)
    run = run_pipeline(stack, tmp_path, e2e_timings)
    states = {task_id: ti["state"] for task_id, ti in run["tis"].items()}
    assert run["state"] == "failed"
    assert states == {
        "create_order": "failed",
        "upload_photos": "upstream_failed",
        "wait_for_enhancement": "upstream_failed",
        "download_enhanced": "upstream_failed",
    }, states
    assert run["tis"]["create_order"]["try_number"] == 1  # a 401 is not retried
    log = task_log_text(stack, run, "create_order")
    # One message, as the UI's task log shows it: which connection, the API's answer, where to fix it.
    rejected = re.search(rf"Autoenhance rejected the API key of connection '{CONN_ID}': [^\"]*HTTP 401", log)
    assert rejected, log[-3000:]
    assert f"Admin → Connections → {CONN_ID}" in log, log[-3000:]
    assert WRONG_KEY not in log
    # The failure is the API's answer (one 401, not retried), not a check in the provider.
    after = sandbox_stats(stack)
    assert unauthorized(after) - unauthorized(before) == 1, after["requests"]
    assert after["orders_created"] == before["orders_created"]
    assert downloaded(tmp_path) == []
