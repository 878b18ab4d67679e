"""HDR: upload exposure brackets, group them three by three, wait, download the merged results."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param

from autoenhance_provider.operators.download import DownloadImagesOperator
from autoenhance_provider.operators.order import CreateOrderOperator, ProcessOrderOperator
from autoenhance_provider.operators.upload import UploadBracketsOperator
from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

HERE = Path(__file__).resolve().parent
POLL_INTERVAL = float(os.environ.get("AUTOENHANCE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="example_autoenhance_hdr",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "autoenhance", "hdr"],
    params={
        "brackets_folder": Param(str(HERE / "sample_photos" / "hdr"), type="string"),
        "output_folder": Param(str(HERE.parent / "output" / "hdr"), type="string"),
    },
) as dag:
    create_order = CreateOrderOperator(task_id="create_order", name="HDR {{ run_id }}")

    # [START howto_operator_hdr]
    upload_brackets = UploadBracketsOperator(
        task_id="upload_brackets",
        order_id=create_order.output,
        source="{{ params.brackets_folder }}",
    )
    process = ProcessOrderOperator(
        task_id="group_and_enhance",
        order_id=create_order.output,
        number_of_brackets_per_image=3,
        enhance_type="neutral",
        window_pull_type="WINDOWS_WITH_SKIES",
    )
    # [END howto_operator_hdr]

    wait = OrderProcessedSensor(
        task_id="wait_for_hdr",
        order_id=create_order.output,
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=3600,
    )
    download = DownloadImagesOperator(
        task_id="download_hdr",
        order_id=create_order.output,
        destination="{{ params.output_folder }}/{{ ti.xcom_pull(task_ids='create_order') }}",
        preview=False,
    )

    create_order >> upload_brackets >> process >> wait >> download
