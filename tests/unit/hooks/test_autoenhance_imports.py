"""Importing the operators (what every DAG file that uses them does at parse time) leaves the
workflow modules unloaded: the hook imports them when an entry point first runs."""

from __future__ import annotations

import json
import subprocess
import sys

WORKFLOW = ("autoenhance_provider.uploads", "autoenhance_provider.downloads", "autoenhance_provider.hdr")


def test_parsing_a_dag_file_does_not_load_the_workflow_modules() -> None:
    code = (
        "import json, sys\n"
        "import autoenhance_provider.operators.order, autoenhance_provider.operators.upload\n"
        "import autoenhance_provider.operators.download, autoenhance_provider.sensors.autoenhance\n"
        "import autoenhance_provider.triggers.autoenhance\n"
        "from autoenhance_provider.hooks.autoenhance import AutoenhanceHook\n"
        "AutoenhanceHook('any')\n"
        f"print(json.dumps([m for m in {WORKFLOW!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_an_entry_point_loads_its_workflow_module(hook, requests_mock) -> None:
    from support.api import api, order

    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1", is_merging=True))
    assert hook.process_order_once("o-1") is False  # grouping has started: nothing to send
    assert "autoenhance_provider.hdr" in sys.modules
