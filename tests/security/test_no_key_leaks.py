"""The API key never shows: not in task logs, exceptions, XCom, rendered template fields, nor in
any request to the storage or asset hosts; presigned URL signatures are never logged.

The pipeline DAG runs in a real (SQLite) Airflow with ``dag.test()`` against the sandbox, with a
recognisable fake key and every HTTP library logging at DEBUG. Everything written to stdout and
stderr (Airflow's task log output in ``dag.test()``) and every log record is then searched.
"""

from __future__ import annotations

import json
import logging
import re
import traceback

import pytest
from sec_helpers import LEAK_CANARY_KEY

from autoenhance_provider.exceptions import AutoenhanceAuthError, AutoenhanceError
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook
from example_dags_support import load_dag

pytestmark = [pytest.mark.dags, pytest.mark.integration]

SIGNATURE = re.compile(r"X-Amz-Signature=[0-9a-fA-F]{8,}")
HTTP_LOGGERS = ("urllib3", "urllib3.connectionpool", "aiohttp", "aiohttp.client", "requests")


@pytest.fixture
def everything_logged(caplog):
    caplog.set_level(logging.DEBUG)
    for name in HTTP_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def all_text(capfd, caplog) -> str:
    out, err = capfd.readouterr()
    records = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    return "\n".join((out, err, caplog.text, records))


def xcom_and_rendered_fields(dag_id: str, run_id: str) -> tuple[list, list]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = [
            (x.task_id, x.key, x.value)
            for x in session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        ]
        rendered = [
            (r.task_id, r.rendered_fields)
            for r in session.query(RenderedTaskInstanceFields).filter(
                RenderedTaskInstanceFields.dag_id == dag_id, RenderedTaskInstanceFields.run_id == run_id
            )
        ]
    return xcoms, rendered


def test_pipeline_run_shows_the_key_nowhere(
    airflow_db, sandbox, conn, monkeypatch, tmp_path, capfd, everything_logged
):
    sandbox.config.api_key = LEAK_CANARY_KEY  # live config; restored for the next test
    conn(password=LEAK_CANARY_KEY)
    monkeypatch.setenv("AUTOENHANCE_POLL_INTERVAL", "0.5")
    dag = load_dag("example_autoenhance_pipeline")
    run = dag.test(run_conf={"output_folder": str(tmp_path / "out")})
    assert str(run.state) == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}

    text = all_text(capfd, everything_logged)
    assert "Autoenhance" in text
    assert "/v3/orders" in text
    assert LEAK_CANARY_KEY not in text
    assert not SIGNATURE.findall(text)
    assert "/_storage/" in text
    assert "?<redacted>" in text

    xcoms, rendered = xcom_and_rendered_fields(dag.dag_id, run.run_id)
    assert {key for _, key, _ in xcoms} >= {"return_value", "order_id", "order_url"}
    assert LEAK_CANARY_KEY not in json.dumps(xcoms, default=str)
    assert rendered, "dag.test() stored no rendered template fields"
    assert LEAK_CANARY_KEY not in json.dumps(rendered, default=str)

    stats = sandbox.stats()
    assert stats["leaked_api_key"] == {"storage": 0, "assets": 0}
    assert stats["uploads"] == 4
    assert stats["downloads"]["enhanced"] == 4


def test_a_rejected_key_fails_the_run_without_showing_it(
    airflow_db, sandbox, conn, monkeypatch, tmp_path, capfd, everything_logged
):
    conn(password=LEAK_CANARY_KEY)  # the sandbox expects another key: 401
    monkeypatch.setenv("AUTOENHANCE_POLL_INTERVAL", "0.5")
    run = load_dag("example_autoenhance_pipeline").test(run_conf={"output_folder": str(tmp_path / "out")})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["create_order"] == "failed", states
    text = all_text(capfd, everything_logged)
    assert "AutoenhanceAuthError" in text
    assert "401" in text
    assert LEAK_CANARY_KEY not in text


def test_exceptions_never_carry_the_key(sandbox, conn, tmp_path):
    conn(password=LEAK_CANARY_KEY)
    hook = AutoenhanceHook(retry_delay=0, retry_max_delay=0)
    failures: list[BaseException] = []
    for call in (
        lambda: hook.create_order(name="x"),
        lambda: hook.get_order("no-such-order"),
        lambda: hook.create_image("a.jpg", order_id="o-1", enhance_type="warm"),
        lambda: hook.download_image("no-such-image", tmp_path / "x.jpg"),
        lambda: list(hook.list_orders()),
    ):
        with pytest.raises(AutoenhanceError) as info:
            call()
        failures.append(info.value)
    assert isinstance(failures[0], AutoenhanceAuthError)
    for exc in failures:
        rendered = "".join(traceback.format_exception(exc)) + repr(exc) + str(vars(exc))
        assert LEAK_CANARY_KEY not in rendered
    assert LEAK_CANARY_KEY not in repr(hook.config)
    assert LEAK_CANARY_KEY not in str(vars(hook))
    ok, message = hook.test_connection()
    assert not ok
    assert LEAK_CANARY_KEY not in message


async def test_trigger_errors_never_carry_the_key(sandbox, conn):
    from autoenhance_provider.triggers.autoenhance import AutoenhanceOrderTrigger

    conn(password=LEAK_CANARY_KEY)
    trigger = AutoenhanceOrderTrigger(order_id="o-1", hook_params={"retry_delay": 0, "retry_max_delay": 0})
    events = [e.payload async for e in trigger.run()]
    assert [e["status"] for e in events] == ["error"]  # 404: the sandbox reads orders without a key
    assert LEAK_CANARY_KEY not in json.dumps(events) + json.dumps(trigger.serialize())
    async with AutoenhanceAsyncHook() as hook:
        with pytest.raises(AutoenhanceError) as info:
            await hook.get_order("o-1")
    assert LEAK_CANARY_KEY not in "".join(traceback.format_exception(info.value))
