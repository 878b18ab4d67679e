"""Run whenever an Autoenhance download lands, wherever it went: scheduled on the downloads alias.

``DownloadImagesOperator`` with a templated destination (like ``example_autoenhance_pipeline``'s
``output/enhanced/<order id>``) cannot name its asset at parse time; it declares the asset alias
``autoenhance-downloads`` instead and, at run time, adds the rendered destination's asset to it
with ``{order_id, count, uris}`` as the event's extra. This DAG is scheduled on that alias, so it
runs after every such download and sees which order, which folder and which files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pendulum
from airflow.sdk import DAG, AssetAlias, task

from autoenhance_provider.operators.download import DOWNLOADS_ALIAS

log = logging.getLogger(__name__)


def describe_downloads(triggering_asset_events: Mapping[Any, Any] | None) -> list[dict[str, Any]]:
    """One summary per download event: destination, order, file count and the (capped) file list."""
    summaries: list[dict[str, Any]] = []
    for asset, events in (triggering_asset_events or {}).items():
        for event in events:
            extra = dict(getattr(event, "extra", None) or {})
            uris = extra.get("uris") or []
            summary = {
                "destination": getattr(event, "asset", asset).uri,
                "order_id": extra.get("order_id"),
                "count": extra.get("count", 0),
                # a list; one string, a URI per line, from Airflow before 3.2
                "files": uris.splitlines() if isinstance(uris, str) else list(uris),
            }
            log.info(
                "Order %s: %d file(s) in %s", summary["order_id"], summary["count"], summary["destination"]
            )
            for uri in summary["files"]:
                log.info("  %s", uri)
            summaries.append(summary)
    return summaries


with DAG(
    dag_id="example_autoenhance_asset_consumer",
    # [START howto_asset_alias_schedule]
    schedule=[AssetAlias(DOWNLOADS_ALIAS)],
    # [END howto_asset_alias_schedule]
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "autoenhance"],
) as dag:

    @task
    def list_downloaded_files(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """Log the downloaded files; the summaries go to XCom for whatever comes next."""
        return describe_downloads(triggering_asset_events)

    list_downloaded_files()
