"""One mapped task group per shoot folder: each shoot becomes its own order, end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, task, task_group

from autoenhance_provider.operators.download import DownloadImagesOperator
from autoenhance_provider.operators.order import CreateOrderOperator
from autoenhance_provider.operators.upload import UploadImagesOperator
from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

HERE = Path(__file__).resolve().parent
POLL_INTERVAL = float(os.environ.get("AUTOENHANCE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="example_autoenhance_per_shoot",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "autoenhance", "mapping"],
    params={
        "shoots_folder": Param(str(HERE / "sample_photos" / "shoots"), type="string"),
        "output_folder": Param(str(HERE.parent / "output" / "shoots"), type="string"),
    },
) as dag:

    @task
    def list_shoots(params: dict | None = None) -> list[dict[str, str]]:
        """One entry per sub-folder of the shoots folder."""
        root = Path(params["shoots_folder"])
        out = Path(params["output_folder"])
        return [
            {"shoot": d.name, "source": str(d), "destination": str(out / d.name)}
            for d in sorted(root.iterdir())
            if d.is_dir()
        ]

    # [START howto_mapped_task_group]
    @task
    def order_folder(destination: str, order_id: str) -> str:
        """``<shoot folder>/<order id>``."""
        return str(Path(destination) / order_id)

    @task_group
    def enhance_shoot(shoot: str, source: str, destination: str) -> None:
        order = CreateOrderOperator(task_id="create_order", name=shoot)
        upload = UploadImagesOperator(task_id="upload", order_id=order.output, source=source)
        wait = OrderProcessedSensor(
            task_id="wait",
            order_id=order.output,
            deferrable=True,
            poke_interval=POLL_INTERVAL,
            timeout=3600,
        )
        # One folder per order, inside the shoot's folder: a later run of the same shoot is a
        # new order and gets a folder of its own (a download never replaces another order's files).
        download = DownloadImagesOperator(
            task_id="download",
            order_id=order.output,
            destination=order_folder(destination, order.output),
            preview=False,
        )
        upload >> wait >> download

    enhance_shoot.expand_kwargs(list_shoots())
    # [END howto_mapped_task_group]
