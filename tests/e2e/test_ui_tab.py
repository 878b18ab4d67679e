"""The "Autoenhance" tab as a person uses it: Chromium, the Celery stack, real runs, two users.

One run of ``example_autoenhance_pipeline`` on a folder with three photos and one file that is not
an image (the API puts it in ``error``), and one run of ``example_autoenhance_per_shoot`` (a mapped
task group: one order per shoot). Chromium, signed in as ``admin``, opens the pipeline run, clicks
the tab, waits until every thumbnail has loaded, and saves ``autoenhance-tab.png`` (copied to
docs/ with AUTOENHANCE_UPDATE_SCREENSHOTS=1). A second user, ``outsider`` (no role), and an
anonymous client get 401/403 and no photo. This module starts its own stack (module-scoped
fixture), with the second user added.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from run_celery_stack import SAMPLE_PHOTOS, CeleryStack, ensure_prerequisites, publish_screenshot

pytestmark = pytest.mark.e2e

PIPELINE = "example_autoenhance_pipeline"
PER_SHOOT = "example_autoenhance_per_shoot"
OUTSIDER = "outsider"


class TwoUserStack(CeleryStack):
    """The e2e stack with a second user who has no role (no right to any DAG)."""

    outsider_password = "outsider-pw-e2e"

    def airflow_env(self) -> dict[str, str]:
        env = super().airflow_env()
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = f"{self.username}:admin,{OUTSIDER}:"
        return env

    def _migrate(self) -> None:
        super()._migrate()
        passwords = {self.username: self.password, OUTSIDER: self.outsider_password}
        (self.home / "passwords.json").write_text(json.dumps(passwords))

    def token_of(self, username: str, password: str) -> str:
        response = requests.post(
            f"{self.api_url}/auth/token", json={"username": username, "password": password}, timeout=10
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def celery_stack(e2e_timings: dict[str, float]) -> Iterator[CeleryStack]:
    """As tests/e2e/conftest.py's, with the second user (this module's own stack; the conftest's
    ``browser`` fixture, signed in as ``admin``, uses it)."""
    started = time.monotonic()
    ensure_prerequisites()
    stack = TwoUserStack(processing_seconds=8)
    try:
        with stack.running():
            yield stack
    finally:
        e2e_timings["ui_tab_module_total"] = time.monotonic() - started


def _trigger(stack: CeleryStack, dag_id: str, conf: dict[str, Any]) -> str:
    stack.unpause_when_parsed(dag_id, timeout=120)
    return stack.trigger(dag_id, conf)


@pytest.fixture(scope="module")
def runs(celery_stack: CeleryStack, e2e_timings: dict[str, float]) -> dict[str, str]:
    """Both runs, triggered together, once their orders are final (the error image fails the wait)."""
    stack = celery_stack
    photos = Path(tempfile.mkdtemp(prefix="tab-photos-", dir=stack.root))
    for sample in sorted(SAMPLE_PHOTOS.glob("*.jpg"))[:3]:
        shutil.copy(sample, photos / sample.name)
    (photos / "corrupt-upload.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"this is not a photo " * 50)
    output = Path(tempfile.mkdtemp(prefix="tab-out-", dir=stack.root))
    started = time.monotonic()
    found = {
        PIPELINE: _trigger(
            stack,
            PIPELINE,
            {"input_folder": str(photos), "output_folder": str(output / "p"), "full_size": False},
        ),
        PER_SHOOT: _trigger(stack, PER_SHOOT, {"output_folder": str(output / "s")}),
    }

    waits = {PIPELINE: "wait_for_enhancement", PER_SHOOT: "enhance_shoot.wait"}

    def enhanced() -> bool:
        """Every wait of both runs has ended: the orders are final (what the tab shows is done;
        the downloads after them are not this test's business)."""
        for dag_id, run_id in found.items():
            path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
            instances = stack.api("GET", path).json()["task_instances"]
            states = [ti["state"] for ti in instances if ti["task_id"] == waits[dag_id]]
            if not states or any(s not in ("success", "failed", "skipped") for s in states):
                return False
        return True

    stack.wait_for("the orders of both runs", enhanced, timeout=420, interval=1)
    e2e_timings["ui_tab_runs"] = time.monotonic() - started
    return found


def _open_tab(driver: Any, page_url: str) -> None:
    """Open a page of the Airflow UI, click its "Autoenhance" tab, switch into the tab's frame."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.switch_to.default_content()
    driver.get(page_url)
    wait = WebDriverWait(driver, 60)
    tab = "//*[(self::a or self::button) and normalize-space()='Autoenhance']"
    wait.until(ec.element_to_be_clickable((By.XPATH, tab))).click()
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Autoenhance']")))
    driver.switch_to.frame(frame)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "h1")))


def _thumbnails_once_loaded(driver: Any) -> list[bool] | None:
    """Whether each thumbnail shows a photo, once all have finished (scrolled to: they are lazy)."""
    shown = driver.execute_script(
        "const imgs = [...document.querySelectorAll('img.thumb')];"
        "imgs.forEach(i => { if (!i.complete) i.scrollIntoView(); });"
        "return imgs.every(i => i.complete) ? imgs.map(i => i.naturalWidth > 0) : null;"
    )
    return list(shown) if shown else None


def test_run_tab_in_chromium_shows_thumbnails_and_the_error(
    celery_stack: CeleryStack, runs: dict[str, str], browser: Any, screenshot_dir: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    run_id = runs[PIPELINE]
    _open_tab(driver, f"{celery_stack.api_url}/dags/{PIPELINE}/runs/{quote(run_id, safe='')}")
    assert "/plugin/autoenhance-run" in driver.execute_script("return window.parent.location.pathname")
    shown = WebDriverWait(driver, 60).until(lambda d: _thumbnails_once_loaded(d))
    # Three originals and three enhanced previews, and first (errors first) the corrupt file's
    # original, which has no preview: the app's drawn "no preview" box.
    assert shown == [True] * 7
    first_src = driver.find_element(By.CSS_SELECTOR, "tr.image img.thumb").get_attribute("src")
    assert (
        requests.get(
            first_src, headers={"Authorization": f"Bearer {celery_stack.token()}"}, timeout=30
        ).status_code
        == 502
    )
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.image")
    assert [r.get_attribute("data-status") for r in rows] == ["error", "processed", "processed", "processed"]
    first = rows[0]
    assert "corrupt-upload.jpg" in first.text
    reason = first.find_element(By.CSS_SELECTOR, ".reason").text
    assert reason  # the API's status_reason, shown next to the image
    sources = [i.get_attribute("src") for i in driver.find_elements(By.CSS_SELECTOR, "img.thumb")]
    assert all(s.startswith(f"{celery_stack.api_url}/autoenhance-ui/photo?") for s in sources)
    source = driver.page_source
    # No API path, no asset (signed) URL, no key; the order's page link is the only other address.
    assert "/v3/" not in source
    assert "/_assets/" not in source
    assert celery_stack.api_key not in source
    # A person clicks "Open in Autoenhance": the order's page opens in a new tab.
    (section,) = driver.find_elements(By.CSS_SELECTOR, "section.order")
    order_id = section.get_attribute("data-order-id")
    windows = set(driver.window_handles)
    section.find_element(By.LINK_TEXT, "Open in Autoenhance").click()
    WebDriverWait(driver, 15).until(lambda d: len(d.window_handles) > len(windows))
    (opened,) = set(driver.window_handles) - windows
    driver.switch_to.window(opened)
    WebDriverWait(driver, 15).until(lambda d: order_id in d.current_url)
    assert f"{celery_stack.sandbox_url}/orders/{order_id}" == driver.current_url
    driver.close()
    (back,) = windows
    driver.switch_to.window(back)
    _open_tab(driver, f"{celery_stack.api_url}/dags/{PIPELINE}/runs/{quote(run_id, safe='')}")
    WebDriverWait(driver, 60).until(lambda d: _thumbnails_once_loaded(d))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.switch_to.default_content()
    path = screenshot_dir / "autoenhance-tab.png"
    assert driver.save_screenshot(str(path))
    publish_screenshot(path)


def test_task_tabs_in_chromium(celery_stack: CeleryStack, runs: dict[str, str], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    base = f"{celery_stack.api_url}/dags/{PIPELINE}/runs/{quote(runs[PIPELINE], safe='')}/tasks"
    _open_tab(driver, f"{base}/upload_photos")
    assert len(driver.find_elements(By.CSS_SELECTOR, "section.order")) == 1
    # The mapped task group: each instance shows its own shoot's order.
    shoot_base = f"{celery_stack.api_url}/dags/{PER_SHOOT}/runs/{quote(runs[PER_SHOOT], safe='')}/tasks"
    orders = set()
    for index in (0, 1):
        _open_tab(driver, f"{shoot_base}/enhance_shoot.upload/mapped/{index}")
        (section,) = driver.find_elements(By.CSS_SELECTOR, "section.order")
        orders.add(section.get_attribute("data-order-id"))
    assert len(orders) == 2
    _open_tab(driver, f"{celery_stack.api_url}/dags/{PER_SHOOT}/runs/{quote(runs[PER_SHOOT], safe='')}")
    run_orders = {
        s.get_attribute("data-order-id") for s in driver.find_elements(By.CSS_SELECTOR, "section.order")
    }
    assert run_orders == orders  # the run's tab: one card per order of every mapped instance
    driver.switch_to.default_content()


def test_outsider_and_anonymous_get_nothing(celery_stack: CeleryStack, runs: dict[str, str]) -> None:
    stack = celery_stack
    assert isinstance(stack, TwoUserStack)
    params = {"dag_id": PIPELINE, "run_id": runs[PIPELINE]}
    url = f"{stack.api_url}/autoenhance-ui/run"
    admin = requests.get(url, params=params, headers={"Authorization": f"Bearer {stack.token()}"}, timeout=30)
    assert admin.status_code == 200
    photo = admin.text.split('<img class="thumb" src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    photo_url = f"{stack.api_url}/autoenhance-ui/{photo}"
    outsider = {"Authorization": f"Bearer {stack.token_of(OUTSIDER, stack.outsider_password)}"}
    for headers, status in (({}, 401), (outsider, 403)):
        for target in (url, photo_url):
            response = requests.get(
                target, params=params if target == url else None, headers=headers, timeout=30
            )
            assert response.status_code == status, target
            assert not response.headers["content-type"].startswith("image/")
            assert "data-order-id" not in response.text
    # ...while Airflow's own API refuses the outsider the same run.
    refused = requests.get(
        f"{stack.api_url}/api/v2/dags/{PIPELINE}/dagRuns/{quote(runs[PIPELINE], safe='')}",
        headers=outsider,
        timeout=30,
    )
    assert refused.status_code == 403
