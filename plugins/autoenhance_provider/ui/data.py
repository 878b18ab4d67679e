"""What a DAG run's tab shows, read from the metadata database: which orders, through which connection.

Order ids come only from the run's own ``order_id`` XComs (what every provider task pushes as soon
as it knows its order, :meth:`AutoenhanceTaskMixin.publish_order`), and only from tasks of the DAG
whose operator is one of this provider's. The connection is the task's ``autoenhance_conn_id``
(rendered, when it is a template). Nothing here is taken from the request's URL but the DAG, run,
task and map index the tab is for, after the caller has been authorised for that DAG.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from autoenhance_provider.connection import DEFAULT_CONN_ID
from autoenhance_provider.links.autoenhance import ORDER_ID_KEY
from autoenhance_provider.validation import require_id

#: Module prefix of the operators whose ``order_id`` XComs are trusted to name an order.
PROVIDER_MODULE = "autoenhance_provider."


class OrderRef(NamedTuple):
    """An order a run touched, the connection to read it with, and the task instances that named it."""

    order_id: str
    conn_id: str
    tasks: tuple[str, ...]


class TaskInfo(NamedTuple):
    exists: bool
    provider_task: bool


def _task_module(task: Any) -> str:
    return str(getattr(task, "_task_module", "") or getattr(task, "task_module", "") or "")


def _raw_conn_id(task: Any) -> Any:
    value = getattr(task, "autoenhance_conn_id", None)
    if value is None:
        value = (getattr(task, "partial_kwargs", None) or {}).get("autoenhance_conn_id")
    return value


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _is_id(value: Any) -> bool:
    try:
        require_id("order_id", value)
    except Exception:
        return False
    return True


def run_exists(dag_id: str, run_id: str) -> bool:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session(scoped=False) as session:
        found = session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return found is not None


def _serialized_dag(dag_id: str) -> Any:
    from airflow.models.serialized_dag import SerializedDagModel

    return SerializedDagModel.get_dag(dag_id)


def task_info(dag_id: str, task_id: str) -> TaskInfo:
    dag = _serialized_dag(dag_id)
    task = None if dag is None else dag.task_dict.get(task_id)
    if task is None:
        return TaskInfo(False, False)
    return TaskInfo(True, _task_module(task).startswith(PROVIDER_MODULE))


def order_refs(
    dag_id: str, run_id: str, task_id: str | None = None, map_index: int | None = None
) -> list[OrderRef]:
    """The orders the run's provider tasks published, in the order they were first published.

    With ``task_id`` (and ``map_index``) only that task instance's. An XCom that is not a valid
    order id, or that a task which is not one of this provider's operators pushed, is ignored.
    """
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import and_, select

    label_column = TI.__table__.c.rendered_map_index
    stmt = (
        select(XComModel.task_id, XComModel.map_index, XComModel.value, label_column)
        .join(
            TI,
            and_(
                TI.dag_id == XComModel.dag_id,
                TI.run_id == XComModel.run_id,
                TI.task_id == XComModel.task_id,
                TI.map_index == XComModel.map_index,
            ),
        )
        .where(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == ORDER_ID_KEY)
        .order_by(XComModel.timestamp, XComModel.task_id, XComModel.map_index)
    )
    if task_id is not None:
        stmt = stmt.where(XComModel.task_id == task_id)
        if map_index is not None:
            stmt = stmt.where(XComModel.map_index == map_index)
    with create_session(scoped=False) as session:
        rows = session.execute(stmt).all()
        if not rows:
            return []
        dag = _serialized_dag(dag_id)
        tasks = {} if dag is None else dag.task_dict
        found: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            task = tasks.get(row.task_id)
            if task is None or not _task_module(task).startswith(PROVIDER_MODULE):
                continue
            value = XComModel.deserialize_value(row)
            if not _is_id(value):  # not a string, or not an id: never sent anywhere
                continue
            order_id = str(value)
            conn_id = _raw_conn_id(task)
            if _is_template(conn_id) or (conn_id is not None and not isinstance(conn_id, str)):
                rendered = session.scalar(
                    select(RTIF.rendered_fields).where(
                        RTIF.dag_id == dag_id,
                        RTIF.run_id == run_id,
                        RTIF.task_id == row.task_id,
                        RTIF.map_index == row.map_index,
                    )
                )
                conn_id = (rendered or {}).get("autoenhance_conn_id") if isinstance(rendered, dict) else None
            if not isinstance(conn_id, str) or not conn_id or _is_template(conn_id):
                conn_id = DEFAULT_CONN_ID
            label = row.task_id if row.map_index < 0 else f"{row.task_id} [{row[3] or row.map_index}]"
            found.setdefault((order_id, conn_id), []).append(label)
    return [OrderRef(order_id, conn_id, tuple(labels)) for (order_id, conn_id), labels in found.items()]
