"""The Airflow plugin of the "Autoenhance" tab: the app at ``/autoenhance-ui`` and two tabs.

Registered through the ``airflow.plugins`` entry point. ``external_views`` with a ``destination``
are Airflow 3.1+; Airflow 3.0 ignores the attribute (the app is still mounted, and the task's
"Autoenhance order" extra link works as before). Importing this module builds a small FastAPI app
and imports nothing else of Airflow's: every Airflow process imports plugins.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow.plugins_manager import AirflowPlugin

from autoenhance_provider.ui import RUN_TAB_ROUTE, TAB_NAME, TASK_TAB_ROUTE, URL_PREFIX
from autoenhance_provider.ui.app import create_app

#: A camera, as a data URL (no request to anywhere to draw the tab's icon).
ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' "
    "stroke='%23555' stroke-width='2' stroke-linecap='round' stroke-linejoin='round'><path d='M14.5 4h-5L7 "
    "7H4a2 2 0 0 0-2 2v9a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2V9a2 2 0 0 0-2-2h-3l-2.5-3z'/><circle cx='12' cy='13' "
    "r='3'/></svg>"
)


def base_path() -> str:
    """The path of ``[api] base_url`` (empty at the root), which the tabs' links must start with."""
    try:
        from autoenhance_provider.compat import conf

        base_url = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # pragma: no cover - no configuration at all
        return ""
    return urlsplit(base_url).path.rstrip("/")


def external_views(prefix: str | None = None) -> list[dict[str, Any]]:
    """The two tabs; Airflow's UI fills in ``{DAG_ID}``, ``{RUN_ID}``, ``{TASK_ID}``, ``{MAP_INDEX}``."""
    root = (base_path() if prefix is None else prefix) + URL_PREFIX
    return [
        {
            "name": TAB_NAME,
            "href": root + "/run?dag_id={DAG_ID}&run_id={RUN_ID}",
            "destination": "dag_run",
            "url_route": RUN_TAB_ROUTE,
            "icon": ICON,
        },
        {
            "name": TAB_NAME,
            "href": root + "/task?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": TASK_TAB_ROUTE,
            "icon": ICON,
        },
    ]


class AutoenhanceUIPlugin(AirflowPlugin):
    """The "Autoenhance" tab on DAG runs and task instances (Airflow 3.1+)."""

    name = "autoenhance_ui"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Autoenhance tab"}]
    external_views = external_views()
