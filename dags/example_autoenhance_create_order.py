"""Create an Autoenhance order and hand its id to the next task (the user's original example)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from autoenhance_provider.operators.order import CreateOrderOperator

with DAG(
    dag_id="example_autoenhance_create_order",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "autoenhance"],
) as dag:
    # [START howto_operator_create_order]
    create_order = CreateOrderOperator(task_id="create_order", name="Listing {{ ds }} ({{ run_id }})")
    # [END howto_operator_create_order]

    @task
    def use_order(order_id: str) -> str:
        print(f"Working on Autoenhance order {order_id}")
        return order_id

    use_order(create_order.output)
