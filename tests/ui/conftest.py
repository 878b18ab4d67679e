"""The tab's app in-process against the sandbox; Airflow's side (users, XComs, DAG) replaced by a fake.

The real authentication and authorisation (Airflow's auth manager and JWTs) are tested through
Airflow's own API server app in ``test_api_server_tab.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ui_helpers import FakeAirflow

from autoenhance_provider.ui.app import Backend, create_app
from autoenhance_provider.ui.photos import PhotoSource
from support.sandbox import sandbox_fixtures

ui_sandbox, sandbox = sandbox_fixtures("ui_sandbox", "session", processing_seconds=0.2)


@pytest.fixture
def fake_airflow() -> FakeAirflow:
    return FakeAirflow()


@pytest.fixture
def photos() -> PhotoSource:
    return PhotoSource()


@pytest.fixture
def client(fake_airflow: FakeAirflow, photos: PhotoSource) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    backend = Backend(
        authenticate=fake_airflow.authenticate,
        authorize=fake_airflow.authorize,
        run_exists=fake_airflow.run_exists,
        task_info=fake_airflow.task_info,
        order_refs=fake_airflow.order_refs,
        photos=photos,
    )
    with TestClient(create_app(backend), base_url="http://127.0.0.1") as test_client:
        yield test_client
