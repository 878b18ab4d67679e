"""Fixtures of the multi-process end-to-end tests: the Celery stack, one pipeline run, a browser.

The stack runs with its own AIRFLOW_HOME in a temporary folder (nothing is inherited from the
AIRFLOW_* variables that tests/conftest.py sets for the test process) and is stopped — every
process group it started, by pid — when the module's tests are done, also when they fail.
Screenshots go to pytest's temporary folder; with AUTOENHANCE_UPDATE_SCREENSHOTS=1 they are also
copied to docs/ (see run_celery_stack.publish_screenshot).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_airflow_stack import LocalAirflow
from run_celery_stack import (
    CHROMIUM_FLAGS,
    DAG_ID,
    CeleryStack,
    MissingPrerequisite,
    ensure_browser,
    ensure_prerequisites,
)

TIMINGS: dict[str, float] = {}


def skip_unless_ci(missing: MissingPrerequisite) -> None:
    """Skip with the one line of ``missing`` (what is missing, how to get it); under ``CI=true``
    re-raise it, so that CI always runs the whole suite."""
    if os.environ.get("CI", "").lower() == "true":
        raise missing
    pytest.skip(f"e2e: {missing}")


def installed(ensure: Any) -> dict[str, float]:
    """Run ``ensure_prerequisites``/``ensure_browser``. What is missing and cannot be installed
    here (not root, no passwordless sudo) skips the test; under ``CI=true`` it fails instead."""
    try:
        return dict(ensure())
    except MissingPrerequisite as missing:
        skip_unless_ci(missing)
        raise  # not reached: skip_unless_ci raises


# The same rule wherever the e2e tests call ensure_prerequisites()/ensure_browser() themselves,
# in a fixture or in a test.
@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Any:
    try:
        return (yield)
    except MissingPrerequisite as missing:
        skip_unless_ci(missing)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: Any) -> Any:
    try:
        return (yield)
    except MissingPrerequisite as missing:
        skip_unless_ci(missing)
        raise


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in TIMINGS.items())
        terminalreporter.write_line(f"e2e timings: {parts}")


@pytest.fixture(scope="session")
def e2e_timings() -> dict[str, float]:
    """Seconds per step, printed at the end of the session (``e2e timings: ...``)."""
    return TIMINGS


@pytest.fixture(scope="module")
def celery_stack() -> Iterator[CeleryStack]:
    started = time.monotonic()
    for step, seconds in installed(ensure_prerequisites).items():
        TIMINGS[f"install_{step}"] = seconds
    stack = CeleryStack(processing_seconds=12)
    try:
        with stack.running():
            TIMINGS.update(stack.timings)
            yield stack
    finally:
        TIMINGS["e2e_module_total"] = time.monotonic() - started


@pytest.fixture(scope="module")
def pipeline_run(celery_stack: CeleryStack) -> dict[str, Any]:
    """Trigger example_autoenhance_pipeline once through the REST API and wait for the end."""
    stack = celery_stack
    output = Path(tempfile.mkdtemp(prefix="enhanced-", dir=stack.root))
    stack.unpause_when_parsed(DAG_ID, timeout=120)
    started = time.monotonic()
    run_id = stack.trigger(DAG_ID, {"output_folder": str(output)})
    seen_states: set[tuple[str, str]] = set()

    def finished() -> dict[str, Any] | None:
        instances = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()
        for ti in instances["task_instances"]:
            seen_states.add((ti["task_id"], str(ti["state"])))
        run = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
        return run if run["state"] in ("success", "failed") else None

    run = stack.wait_for(f"dag run {run_id}", finished, timeout=300, interval=0.5)
    TIMINGS["pipeline_run"] = time.monotonic() - started
    return {
        "run_id": run_id,
        "run": run,
        "task_instances": stack.task_instances(DAG_ID, run_id),
        "seen_states": seen_states,
        "output": output,
    }


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@contextlib.contextmanager
def open_browser(
    url: str, username: str, password: str, profile_parent: Path, *, network_log: bool = False
) -> Iterator[Any]:
    """Debian's headless Chromium through Debian's chromedriver, logged in to the api-server.

    ``network_log``: Chrome's performance log is on, so a test can read what the UI sent and got.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=profile_parent)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    started = time.monotonic()
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 30)
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(username)
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.XPATH, "//button[@type='submit'][normalize-space()='Sign in']").click()
        wait.until(ec.presence_of_element_located((By.XPATH, "//*[normalize-space()='Welcome']")))
        TIMINGS["browser_login"] = time.monotonic() - started
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser(celery_stack: CeleryStack) -> Iterator[Any]:
    with open_browser(
        celery_stack.api_url, celery_stack.username, celery_stack.password, celery_stack.root
    ) as driver:
        yield driver


@pytest.fixture(scope="module")
def local_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    """`make airflow` (scripts/airflow_local.py) in a temporary home, stopped by Ctrl-C (SIGINT)."""
    started = time.monotonic()
    for step, seconds in installed(ensure_browser).items():
        TIMINGS[f"install_{step}"] = seconds
    stack = LocalAirflow(tmp_path_factory.mktemp("make-airflow") / "airflow_home")
    try:
        stack.start()
        TIMINGS["make_airflow_start"] = time.monotonic() - started
        yield stack
    finally:
        code = stack.stop()
        TIMINGS["make_airflow_module_total"] = time.monotonic() - started
        assert code == 0, stack.text()[-3000:]


@pytest.fixture(scope="module")
def local_browser(local_airflow: LocalAirflow) -> Iterator[Any]:
    """Chromium logged in to the `make airflow` api-server, with its network log on."""
    with open_browser(
        local_airflow.url, local_airflow.username, local_airflow.password, local_airflow.home,
        network_log=True,
    ) as driver:  # fmt: skip
        yield driver
