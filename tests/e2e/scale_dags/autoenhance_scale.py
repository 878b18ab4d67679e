"""The scale test's DAG (tests/e2e/test_celery_scale.py): one mapped task group per listing.

As docs/limits.md recommends under the account limits: the download runs when the wait is done
whatever its outcome (``trigger_rule="all_done"``), so the images enhanced before the daily limit
refused the rest are downloaded the same day, and a last ``done`` task needs both, so the run
stays failed until the refused images are done too; clearing a refused wait next day (with its
downstream tasks) sends only the refused images again and downloads only what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, task, task_group

from autoenhance_provider.operators.download import DownloadImagesOperator
from autoenhance_provider.operators.order import CreateOrderOperator
from autoenhance_provider.operators.upload import UploadImagesOperator
from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

POLL_INTERVAL = float(os.environ.get("AUTOENHANCE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="autoenhance_scale",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=16,
    params={
        "listings_folder": Param("/nonexistent", type="string"),
        "output_folder": Param("/nonexistent", type="string"),
    },
) as dag:

    @task
    def list_listings(params: dict | None = None) -> list[dict[str, str]]:
        root = Path(params["listings_folder"])
        out = Path(params["output_folder"])
        return [
            {"listing": d.name, "source": str(d), "destination": str(out / d.name)}
            for d in sorted(root.iterdir())
            if d.is_dir()
        ]

    @task_group
    def per_listing(listing: str, source: str, destination: str) -> None:
        order = CreateOrderOperator(task_id="create_order", name=listing)
        upload = UploadImagesOperator(task_id="upload", order_id=order.output, source=source)
        wait = OrderProcessedSensor(
            task_id="wait", order_id=order.output, deferrable=True, poke_interval=POLL_INTERVAL, timeout=900
        )
        download = DownloadImagesOperator(
            task_id="download",
            order_id=order.output,
            destination=destination,
            preview=False,
            trigger_rule="all_done",
        )
        # The listing is done when the wait and the download both are: keeps the run failed
        # (not green) while refused images wait for tomorrow. Never sent to a worker.
        done = EmptyOperator(task_id="done")
        upload >> wait >> download >> done
        wait >> done

    per_listing.expand_kwargs(list_listings())
