"""2. Bounded bodies: no answer may make the provider read or inflate without limit.

The gzip bomb is measured in a child process (peak RSS from ``getrusage``) whose address space
is capped about 1 GiB above its start, so a provider that inflates the whole body fails with a
MemoryError there instead of eating the shared machine's memory.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from servers import (
    Request,
    async_get_order,
    describe,
    done_order,
    fast_hook,
    gunzip_size,
    gzip_json_bomb,
    json_reply,
    keep_alive_json,
    reply,
    run_bounded,
    streamed,
)

from autoenhance_provider.exceptions import AutoenhanceAPIError, AutoenhanceError

BOMB_MB = 600
MAX_GROWTH_MB = 64
ERROR_PAGE_BYTES = 50 * 1024 * 1024
#: What kernel socket buffers on loopback may hold beyond what the client read.
MAX_ERROR_PAGE_SENT = 16 * 1024 * 1024
#: The largest default cap on pages this test can observe: loopback managed 276-570 pages/s on the
#: shared 2-core machine (measured), so 2,000 pages fit in the 18 s guard; 10,000 would not. A
#: provider whose list_orders takes ``max_pages`` is tested with a small explicit cap instead.
PAGE_CAP = 2_000
EXPLICIT_CAP = 100

_CHILD = textwrap.dedent(
    """
    import asyncio, json, resource, sys
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
    from autoenhance_provider.hooks.autoenhance_async import AutoenhanceAsyncHook

    mode = sys.argv[1]

    def vm_bytes():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
        return 0

    def outcome(fn):
        try:
            fn()
            return {"result": "returned", "mro": []}
        except BaseException as exc:
            return {"result": "raised", "mro": [c.__name__ for c in type(exc).__mro__],
                    "message": str(exc)[:300]}

    fast = dict(retry_limit=0, retry_delay=0.01, retry_max_delay=0.05)
    if mode == "sync":
        hook = AutoenhanceHook("hostile", **fast)
        hook.get_order("warm")
        call = lambda: hook.get_order("o-1")
    else:
        async def both():
            hook = AutoenhanceAsyncHook("hostile", **fast)
            await hook.get_order("warm")
            try:
                await hook.get_order("o-1")
            finally:
                await hook.aclose()
        call = lambda: asyncio.run(both())
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + (1 << 30), hard))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = outcome(call)
    result["growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print("RESULT " + json.dumps(result))
    """
)


def _bomb_app(request: Request):
    if "warm" in request.path:
        return json_reply(200, done_order("warm"))
    return reply(200, gzip_json_bomb(BOMB_MB), "application/json", [("Content-Encoding", "gzip")])


def _run_child(mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, mode], env=env, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the gzip bomb kept the client busy for over 60 s")
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"child failed: {done.stderr[-2000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


class TestBoundedBodies:
    def test_the_bomb_is_a_bomb(self) -> None:
        """Control: the payload really inflates to ~600 MB from well under 1 MB."""
        bomb = gzip_json_bomb(BOMB_MB)
        assert len(bomb) < 1024 * 1024
        assert gunzip_size(bomb) > BOMB_MB * 1024 * 1024

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_gzip_bomb_fails_clearly_without_inflating(self, serve, connect, mode) -> None:
        connect(serve(_bomb_app))
        result = _run_child(mode)
        assert "AutoenhanceAPIError" in result["mro"], f"expected AutoenhanceAPIError, got {result}"
        assert result["growth_mb"] < MAX_GROWTH_MB, f"peak RSS grew by {result['growth_mb']:.0f} MB"

    @pytest.mark.parametrize("call", ["sync_get_order", "sync_download", "async_get_order"])
    def test_huge_error_page_is_not_read_whole(self, serve, connect, tmp_path, call) -> None:
        server = serve(lambda r: streamed(500, ERROR_PAGE_BYTES))
        conn = connect(server)
        if call == "sync_get_order":
            fn = lambda: fast_hook(conn, retry_limit=0).get_order("o-1")  # noqa: E731
        elif call == "sync_download":
            fn = lambda: fast_hook(conn, retry_limit=0).download_image("img-1", tmp_path / "x.jpg")  # noqa: E731
        else:
            fn = lambda: async_get_order(conn, retry_limit=0)  # noqa: E731
        outcome = run_bounded(fn, 15)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceAPIError), describe(outcome)
        time.sleep(0.5)  # let the server notice the client has gone
        assert server.bytes_sent < MAX_ERROR_PAGE_SENT, (
            f"the client read {server.bytes_sent / 1e6:.0f} MB of a 50 MB error page"
        )

    def test_endless_pagination_stops_after_a_cap(self, serve, connect) -> None:
        def app(request: Request):
            n = len(request.query.get("offset", [])) and int(request.query["offset"][0][1:])
            return keep_alive_json(
                200, {"orders": [{"order_id": f"o-{n}"}], "pagination": {"next_offset": f"t{n + 1}"}}
            )

        server = serve(app)
        conn = connect(server)
        count = [0]

        hook = fast_hook(conn)
        explicit = "max_pages" in inspect.signature(hook.list_orders).parameters
        cap = EXPLICIT_CAP if explicit else PAGE_CAP

        def consume() -> None:
            pages = hook.list_orders(max_pages=cap) if explicit else hook.list_orders()
            for _ in pages:
                count[0] += 1

        outcome = run_bounded(consume, 18)
        assert outcome.finished, (
            f"list_orders followed {len(server.seen('GET'))} pages and was still going ({describe(outcome)})"
        )
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
        assert len(server.seen("GET")) <= cap + 1
