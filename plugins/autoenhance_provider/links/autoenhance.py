"""The "Autoenhance order" button on task instances that know an order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: XCom key the operators push the order's web-app URL under, as soon as they know it.
ORDER_URL_KEY = "order_url"
ORDER_ID_KEY = "order_id"


class AutoenhanceOrderLink(BaseOperatorLink):
    """Opens the order in the Autoenhance web app; read from XCom, never from the network."""

    name = "Autoenhance order"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(key=ORDER_URL_KEY, ti_key=ti_key) or ""
