"""The "Autoenhance" tab of DAG runs and task instances in the Airflow UI (Airflow 3.1+).

A small FastAPI app on the API server (``/autoenhance-ui``) renders the orders a DAG run touched,
with original and enhanced thumbnails side by side, and proxies the photos so the browser never
sees the API key or a signed URL. Every route authenticates the Airflow user and authorises read
access to the DAG first; order ids come only from the run's own ``order_id`` XComs. Registered by
the ``airflow.plugins`` entry point (:mod:`autoenhance_provider.ui.plugin`). See ``docs/ui.md``.
"""

from __future__ import annotations

from urllib.parse import quote

#: Where the API server mounts the app (not under ``/autoenhance``: that mount is the webhook
#: receiver's, and a mount catches every path below its prefix).
URL_PREFIX = "/autoenhance-ui"
#: The ``url_route`` of the two tabs (``/dags/<dag>/runs/<run>/plugin/<route>``).
RUN_TAB_ROUTE = "autoenhance-run"
TASK_TAB_ROUTE = "autoenhance-task"
TAB_NAME = "Autoenhance"
#: Width in pixels of the thumbnails and of the "full preview" (both previews: no credit is spent).
THUMB_WIDTH = 320
FULL_WIDTH = 1600


def run_tab_url(airflow_url: str, dag_id: str, run_id: str) -> str:
    """The "Autoenhance" tab of a DAG run in the Airflow UI (3.1+), for links and logs."""
    run = f"{airflow_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{run}/plugin/{RUN_TAB_ROUTE}"


__all__ = [
    "FULL_WIDTH",
    "RUN_TAB_ROUTE",
    "TAB_NAME",
    "TASK_TAB_ROUTE",
    "THUMB_WIDTH",
    "URL_PREFIX",
    "run_tab_url",
]
