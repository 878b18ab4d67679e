"""Create an order, upload a folder of photos, wait (deferred) and download the enhanced images.

Input and output folders are DAG params; the defaults use the sample photos shipped in
``dags/sample_photos`` and write to ``output/enhanced/<order id>`` in the repository: each order
gets its own folder, so a second run never mixes its photos with the first one's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param

from autoenhance_provider.operators.download import DownloadImagesOperator
from autoenhance_provider.operators.order import CreateOrderOperator
from autoenhance_provider.operators.upload import UploadImagesOperator
from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

HERE = Path(__file__).resolve().parent
# The sandbox finishes in seconds; against the real API keep the 30 s default (see README).
POLL_INTERVAL = float(os.environ.get("AUTOENHANCE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="example_autoenhance_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "autoenhance"],
    params={
        "input_folder": Param(str(HERE / "sample_photos" / "listing-42"), type="string"),
        "output_folder": Param(str(HERE.parent / "output" / "enhanced"), type="string"),
        "full_size": Param(True, type="boolean", description="Buy full-size images (preview=false)"),
    },
) as dag:
    create_order = CreateOrderOperator(task_id="create_order", name="Listing {{ run_id }}")

    # [START howto_operator_upload_images]
    upload = UploadImagesOperator(
        task_id="upload_photos",
        order_id=create_order.output,
        source="{{ params.input_folder }}",
        enhance_type="warm",
        sky_replacement=True,
        max_concurrency=8,
    )
    # [END howto_operator_upload_images]

    # [START howto_sensor_order_processed]
    wait = OrderProcessedSensor(
        task_id="wait_for_enhancement",
        order_id=create_order.output,
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=3600,
    )
    # [END howto_sensor_order_processed]

    # [START howto_operator_download_images]
    download = DownloadImagesOperator(
        task_id="download_enhanced",
        order_id=create_order.output,
        destination="{{ params.output_folder }}/{{ ti.xcom_pull(task_ids='create_order') }}",
        format="jpeg",
        quality=90,
        preview="{{ not params.full_size }}",
    )
    # [END howto_operator_download_images]

    create_order >> upload >> wait >> download
