"""The Autoenhance tab's plugin imports on every supported Airflow (3.0 too: `make compat`) and refuses
an anonymous request before anything else. Its behaviour is tested in tests/ui and tests/e2e."""

from __future__ import annotations


def test_plugin_declares_the_app_and_two_tabs():
    from autoenhance_provider.ui import URL_PREFIX, run_tab_url
    from autoenhance_provider.ui.plugin import AutoenhanceUIPlugin

    (app,) = AutoenhanceUIPlugin.fastapi_apps
    assert app["url_prefix"] == URL_PREFIX == "/autoenhance-ui"
    destinations = {view["destination"]: view for view in AutoenhanceUIPlugin.external_views}
    assert set(destinations) == {"dag_run", "task_instance"}
    assert destinations["dag_run"]["href"].endswith("/autoenhance-ui/run?dag_id={DAG_ID}&run_id={RUN_ID}")
    assert "{TASK_ID}" in destinations["task_instance"]["href"]
    assert "{MAP_INDEX}" in destinations["task_instance"]["href"]
    url = run_tab_url("http://airflow:8080/", "my_dag", "manual__2026-01-01T00:00:00+00:00")
    assert (
        url
        == "http://airflow:8080/dags/my_dag/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00/plugin/autoenhance-run"
    )


def test_anonymous_requests_are_refused_before_anything_is_read():
    from fastapi.testclient import TestClient

    from autoenhance_provider.ui.app import create_app

    client = TestClient(create_app())
    for path in ("/run", "/task", "/photo"):
        response = client.get(path, params={"dag_id": "any", "run_id": "any", "image_id": "x"})
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("text/html")
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404
