"""Download every Autoenhance order the moment it finishes, wherever it was created.

Scheduled on the asset the webhook receiver updates when an order's last image is processed
(``autoenhance/default/order_finished``; see docs/webhooks.md), so orders that photographers
create in the Autoenhance web app or app start Airflow work too, with no polling. The order ids
come from the triggering asset events' extra; each order goes to its own folder
``<output_folder>/<order id>``. Several events can trigger one run (they are queued until it
starts) and the same order can be reported twice (a duplicate delivery): each order is downloaded
once per run, and ``if_exists="skip"`` makes a second download of an order a no-op.

An order id in an asset event comes from outside (a webhook delivery): it is data, never a
template. ``finished_order_ids`` keeps only ids by the provider's id rule, and ``as_data`` wraps
each mapped value in Airflow's ``literal()``, so Airflow does not render it (docs/security.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from autoenhance_provider.operators.download import DownloadImagesOperator
from autoenhance_provider.webhooks import as_data, finished_order_ids, order_finished_asset

HERE = Path(__file__).resolve().parent
ORDER_FINISHED = order_finished_asset()
OUTPUT_FOLDER = os.environ.get("AUTOENHANCE_WEBHOOK_OUTPUT", str(HERE.parent / "output" / "webhook-orders"))

with DAG(
    dag_id="example_autoenhance_webhook_download",
    # [START howto_schedule_order_finished]
    schedule=ORDER_FINISHED,
    # [END howto_schedule_order_finished]
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "autoenhance", "webhook"],
    params={
        "output_folder": Param(OUTPUT_FOLDER, type="string"),
        "full_size": Param(True, type="boolean", description="Buy full-size images (preview=false)"),
    },
) as dag:
    # [START howto_webhook_finished_orders]
    @task
    def finished_orders(**context: Any) -> list[dict[str, str]]:
        """One ``{order_id, destination}`` per order these asset events say is finished."""
        events = (context.get("triggering_asset_events") or {}).get(ORDER_FINISHED, [])
        folder = context["params"]["output_folder"]
        return [
            {"order_id": order_id, "destination": f"{folder}/{order_id}"}
            for order_id in finished_order_ids(events)
        ]

    DownloadImagesOperator.partial(
        task_id="download_order",
        format="jpeg",
        quality=90,
        preview="{{ not params.full_size }}",
        if_exists="skip",
    ).expand_kwargs(finished_orders().map(as_data))
    # [END howto_webhook_finished_orders]
