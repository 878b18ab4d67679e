"""OpenLineage: dataset names, the facets of the transfer operators after a real run, the optional extra.

The operators run against the sandbox (127.0.0.1); the facets come from what ``execute`` recorded,
through OpenLineage's own ``DefaultExtractor`` as the listener would call it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.lineage import (
    MAX_LINEAGE_FILES,
    RUN_FACET_KEY,
    TransferRecord,
    dataset_name,
    local_host,
    operator_lineage,
    storage_uri,
)
from autoenhance_provider.operators.download import DownloadImagesOperator
from autoenhance_provider.operators.upload import UploadBracketsOperator, UploadImagesOperator
from autoenhance_sandbox.testing import SandboxServer
from support.images import jpeg_bytes
from support.sandbox import sandbox_fixtures
from support.task import task_context

FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05}
REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------- dataset names
@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://bucket/shoot-42/front.jpg", ("s3://bucket", "shoot-42/front.jpg")),
        ("s3://aws_default@bucket/enhanced/", ("s3://bucket", "enhanced")),  # str(ObjectStoragePath)
        ("s3a://bucket/k.jpg", ("s3://bucket", "k.jpg")),
        ("gs://bucket/a/b.png", ("gs://bucket", "a/b.png")),
        ("gcs://bucket/a/b.png", ("gs://bucket", "a/b.png")),
        ("file:///data/in/a b#1.jpg", ("file://{host}", "/data/in/a b#1.jpg")),
        ("/data/out", ("file://{host}", "/data/out")),
        ("abfs://photos@acct.dfs.core.windows.net/x", ("abfs://photos@acct.dfs.core.windows.net", "x")),
    ],
)
def test_dataset_names_follow_openlineage_naming(location, expected):
    namespace, name = expected
    assert dataset_name(location) == (namespace.format(host=local_host()), name)


def test_object_storage_paths_lose_their_connection_id():
    path = ObjectStoragePath("s3://bucket/enhanced/o-1", conn_id="aws_default")
    assert dataset_name(path) == ("s3://bucket", "enhanced/o-1")
    assert storage_uri(path) == "s3://bucket/enhanced/o-1"
    assert storage_uri("file:///tmp/12 Main St #4") == "file:///tmp/12%20Main%20St%20%234"


def test_many_sources_are_named_by_their_folders():
    record = TransferRecord(
        operation="upload",
        order_id="o-1",
        api_base_url="https://api.autoenhance.ai",
        sources=[f"s3://bucket/shoot-{i % 3}/{i}.jpg" for i in range(MAX_LINEAGE_FILES + 1)],
        file_count=MAX_LINEAGE_FILES + 1,
    )
    lineage = operator_lineage(record)
    assert sorted((d.namespace, d.name) for d in lineage.inputs) == [
        ("s3://bucket", f"shoot-{i}") for i in range(3)
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("autoenhance://api.autoenhance.ai", "orders/o-1")
    ]


# ------------------------------------------------------------------------------ after a real run
lineage_sandbox, sandbox = sandbox_fixtures(
    "lineage_sandbox", "module", processing_seconds=0.1, merge_seconds=0.1
)


def new_order() -> str:
    hook = AutoenhanceHook(**FAST)
    try:
        return str(hook.create_order(name="lineage")["order_id"])
    finally:
        hook.close()


def extracted(operator: Any) -> Any:
    """What the OpenLineage listener gets for a finished task (the provider's DefaultExtractor)."""
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    return DefaultExtractor(operator).extract_on_complete(None)


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return sorted((d.namespace, d.name) for d in datasets)


def order_dataset(sandbox: SandboxServer, order_id: str) -> tuple[str, str]:
    return f"autoenhance://{sandbox.base_url.split('://', 1)[1].rstrip('/')}", f"orders/{order_id}"


def test_upload_images_lineage(sandbox, tmp_path):
    from openlineage.client.serde import Serde

    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for level, name in enumerate(["front.jpg", "back.jpg"]):
        (shoot / name).write_bytes(jpeg_bytes(level=40 + level * 50))
    (shoot / "notes.txt").write_text("not a photo")
    order_id = new_order()
    op = UploadImagesOperator(
        task_id="upload", order_id=order_id, source=str(shoot), on_invalid="skip", hook_params=dict(FAST)
    )
    op.execute(task_context())

    lineage = extracted(op)

    host = local_host()
    assert names(lineage.inputs) == [
        (f"file://{host}", str(shoot / "back.jpg")),
        (f"file://{host}", str(shoot / "front.jpg")),
    ]
    assert names(lineage.outputs) == [order_dataset(sandbox, order_id)]
    facet = lineage.run_facets[RUN_FACET_KEY]
    assert (facet.orderId, facet.operation, facet.fileCount, facet.skippedCount) == (order_id, "upload", 2, 1)
    assert facet.totalBytes == sum(p.stat().st_size for p in shoot.glob("*.jpg"))
    event = json.loads(Serde.to_json(facet))  # what is sent: the producer and schema come along
    assert event["orderId"] == order_id
    assert event["_schemaURL"].startswith("https://")


def test_upload_brackets_lineage(sandbox, tmp_path):
    for i in range(3):
        (tmp_path / f"bracket-{i}.jpg").write_bytes(jpeg_bytes(level=30 + i * 60))
    order_id = new_order()
    op = UploadBracketsOperator(
        task_id="brackets", order_id=order_id, source=str(tmp_path / "*.jpg"), hook_params=dict(FAST)
    )
    op.execute(task_context())

    lineage = extracted(op)

    assert names(lineage.inputs) == [
        (f"file://{local_host()}", str(tmp_path / f"bracket-{i}.jpg")) for i in range(3)
    ]
    assert names(lineage.outputs) == [order_dataset(sandbox, order_id)]
    facet = lineage.run_facets[RUN_FACET_KEY]
    assert (facet.operation, facet.fileCount, facet.skippedCount) == ("upload_brackets", 3, 0)


def test_download_lineage(sandbox, tmp_path):
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    (shoot / "front.jpg").write_bytes(jpeg_bytes(level=70))
    order_id = new_order()
    UploadImagesOperator(task_id="up", order_id=order_id, source=str(shoot), hook_params=dict(FAST)).execute(
        task_context()
    )
    hook = AutoenhanceHook(**FAST)
    hook.wait_for_order(order_id, poll_interval=0.1, timeout=30)
    hook.close()
    out = tmp_path / "out"
    op = DownloadImagesOperator(
        task_id="download", order_id=order_id, destination=str(out), hook_params=dict(FAST)
    )
    assert names(extracted(op).outputs) == []  # before a run: nothing to report, and no API call

    uris = op.execute(task_context())

    assert len(uris) == 1
    lineage = extracted(op)
    assert names(lineage.inputs) == [order_dataset(sandbox, order_id)]
    assert names(lineage.outputs) == [(f"file://{local_host()}", str(out))]
    facet = lineage.run_facets[RUN_FACET_KEY]
    assert (facet.orderId, facet.operation, facet.fileCount) == (order_id, "download", 1)


def test_the_facets_call_no_api(sandbox, tmp_path, monkeypatch):
    import requests

    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(level=90))
    op = UploadImagesOperator(
        task_id="upload", order_id=new_order(), source=str(tmp_path), hook_params=dict(FAST)
    )
    op.execute(task_context())

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the lineage method made a request")

    monkeypatch.setattr(requests.Session, "send", no_network)
    monkeypatch.delenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT")
    op.__dict__.pop("hook", None)  # a new hook would have to look the connection up again

    lineage = extracted(op)

    assert lineage is not None  # the extractor returns None when the method raises
    assert lineage.run_facets[RUN_FACET_KEY].fileCount == 1


# --------------------------------------------------------------------------- the optional extra
# Everything OpenLineage is blocked except two metadata modules: the distribution stays installed in
# this venv, and Airflow's provider discovery loads every installed provider's ``get_provider_info``
# entry point (without the distribution, there is no entry point to load).
_BLOCKER = """
import importlib.abc
import sys

BLOCKED = ("openlineage", "airflow.providers.openlineage", "airflow.providers.common.compat.openlineage")
ALLOWED = ("airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info")

def blocked(name):
    return name not in ALLOWED and any(name == b or name.startswith(b + ".") for b in BLOCKED)

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if blocked(name):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
for name in list(sys.modules):
    if blocked(name):
        del sys.modules[name]
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )


def test_the_operators_work_without_the_openlineage_provider(tmp_path):
    code = _BLOCKER + textwrap.dedent(
        f"""
        try:
            import openlineage.client  # noqa: F401
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("the blocker does not work")

        from autoenhance_provider.operators.download import DownloadImagesOperator
        from autoenhance_provider.operators.upload import UploadBracketsOperator, UploadImagesOperator
        import autoenhance_provider.lineage

        ops = [
            UploadImagesOperator(task_id="u", order_id="o", source={str(tmp_path)!r}),
            UploadBracketsOperator(task_id="b", order_id="o", source={str(tmp_path)!r}),
            DownloadImagesOperator(task_id="d", order_id="o", destination="{{{{ ds }}}}"),
        ]
        for op in ops:
            try:
                op.get_openlineage_facets_on_complete(None)
            except ImportError:
                pass  # only the OpenLineage listener calls it, and it exists only with the provider
            else:
                raise SystemExit(f"{{op.task_id}}: built facets without OpenLineage")
        print("ok", len(ops))
        """
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok 3")


def test_importing_the_operators_loads_no_openlineage_code():
    result = run_python(
        "import sys\n"
        "import autoenhance_provider.operators.upload, autoenhance_provider.operators.download\n"
        "import autoenhance_provider.lineage\n"
        "prefixes = ('openlineage', 'airflow.providers.openlineage.')\n"
        "loaded = [m for m in sys.modules if m.startswith(prefixes)]\n"
        "print([m for m in loaded if not m.endswith('.get_provider_info')])\n"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
