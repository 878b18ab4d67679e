"""Chaos soak: one server picks a misbehaviour per request (seeded), ~200 hook calls run against it.

Every call must end in a result or an AutoenhanceError (never another exception type, never a
hang), and the key must appear nowhere: not in exceptions, results, or logs.
"""

from __future__ import annotations

import io
import itertools
import random
import threading
from collections.abc import Callable
from typing import Any

from servers import (
    FAST,
    KEY_ESCAPED,
    Request,
    assert_no_marker,
    describe,
    done_order,
    drip,
    exception_texts,
    head,
    json_reply,
    reply,
    run_bounded,
    truncated,
)

from autoenhance_provider.exceptions import AutoenhanceError
from support.images import jpeg_bytes

SEED = 20261202
CALLS = 200
#: Per call: FAST retries (2 attempts) of the slowest misbehaviour (~0.4 s) and composite calls.
CALL_GUARD = 8.0


def _ok(request: Request, server_url: Callable[[str], str]) -> list:
    """What a well-behaved API would answer."""
    path, method = request.path, request.method
    if path.startswith("/storage/"):
        return reply(200, b"", None, [("ETag", '"e"')])
    if method == "DELETE":
        return reply(204, b"", None)
    if path == "/v3/orders/" and method == "GET":
        return json_reply(200, {"orders": [done_order()], "pagination": {"next_offset": None}})
    if path == "/v3/orders/" and method == "POST":
        return json_reply(201, done_order())
    if path == "/v3/images/" and method == "POST":
        return json_reply(
            201, {"image_id": "img-1", "order_id": "o-1", "upload_url": server_url("/storage/put")}
        )
    if path == "/v3/brackets/":
        return json_reply(201, {"bracket_id": "b-1", "upload_url": server_url("/storage/b")})
    if path.endswith("/brackets"):
        return json_reply(200, {"brackets": [{"bracket_id": "b-1", "name": "b1.jpg"}]})
    if path.startswith("/v3/images/") and path.rsplit("/", 1)[-1] in ("enhanced", "original", "preview"):
        return reply(200, jpeg_bytes(), "image/jpeg")
    if path.startswith("/v3/images/"):
        return json_reply(200, {"image_id": "img-1", "image_name": "room.jpg", "status": "processed"})
    return json_reply(200, done_order())


def _misbehaviours(server_url: Callable[[str], str]) -> dict[str, Callable[[Request], Any]]:
    def key_of(r: Request) -> str:
        return r.header("x-api-key")

    return {
        "ok": lambda r: _ok(r, server_url),
        "ok-again": lambda r: _ok(r, server_url),
        "500": lambda r: json_reply(500, {"message": "Internal Server Error"}),
        "503-weird-retry-after": lambda r: json_reply(
            503, {}, [("Retry-After", random.choice(["-1", "NaN", "x"]))]
        ),
        "429": lambda r: json_reply(429, {"message": "slow down"}, [("Retry-After", "0.01")]),
        "404": lambda r: json_reply(404, {"message": "Not found"}),
        "401-echo": lambda r: reply(401, f"bad key {key_of(r)}", "text/plain"),
        "422-json-echo": lambda r: json_reply(
            422, {"message": f"key {key_of(r)}", "detail": {"h": {"k": [key_of(r)]}}}
        ),
        "400-percent-echo": lambda r: reply(
            400, "k=" + "".join(f"%{b:02X}" for b in key_of(r).encode()), "text/plain"
        ),
        "header-echo": lambda r: json_reply(503, {}, [("X-Echo", key_of(r))]),
        "empty-200": lambda r: reply(200, b"", "application/json"),
        "list-200": lambda r: reply(200, b"[1, 2]", "application/json"),
        "string-200": lambda r: reply(200, b'"ok"', "application/json"),
        "html-200": lambda r: reply(200, b"<html><body>maintenance</body></html>", "text/html"),
        "bad-gzip": lambda r: reply(
            200, b"\x1f\x8bnot gzip at all", "application/json", [("Content-Encoding", "gzip")]
        ),
        "truncated": lambda r: truncated(5000, b'{"order_id": "o-', "application/json"),
        "reset": lambda r: [],
        "slow": lambda r: list(drip(b"HTTP/1.1 2", 0.04)),
        "redirect-no-location": lambda r: [head(302, [], length=0)],
        "redirect-loop": lambda r: [head(307, [("Location", r.target)], length=0)],
        "redirect-off-machine": lambda r: [head(302, [("Location", "http://example.invalid/x")], length=0)],
        "redirect-echo": lambda r: [head(302, [("Location", f"/v3/orders/{key_of(r)[:40]}")], length=0)],
    }


def test_chaos_soak(serve, connect, logs, outside, tmp_path) -> None:
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    server_rng = random.Random(SEED)
    lock = threading.Lock()
    chosen: list[str] = []
    holder: dict[str, Any] = {}

    def app(request: Request):
        with lock:
            name = server_rng.choice(sorted(holder["modes"]))
            chosen.append(name)
        return holder["modes"][name](request)

    server = serve(app)
    holder["modes"] = _misbehaviours(server.url)
    conn = connect(server, key=KEY_ESCAPED, request_deadline=2, min_transfer_rate=10_000)
    hook = AutoenhanceHook(conn, **FAST)
    image = jpeg_bytes()
    calls: dict[str, Callable[[int], Any]] = {
        "get_order": lambda i: hook.get_order("o-1"),
        "get_order_or_none": lambda i: hook.get_order_or_none("o-1"),
        "list_orders": lambda i: list(itertools.islice(hook.list_orders(), 30)),
        "create_order": lambda i: hook.create_order(name=f"n{i}", order_id="o-1"),
        "update_order": lambda i: hook.update_order("o-1", f"n{i}"),
        "delete_order": lambda i: hook.delete_order("o-1"),
        "process_order": lambda i: hook.process_order("o-1"),
        "create_image": lambda i: hook.create_image("room.jpg", order_id="o-1", content_type="image/jpeg"),
        "upload_file": lambda i: hook.upload_file(
            server.url("/storage/put"), io.BytesIO(image), "image/jpeg"
        ),
        "get_image": lambda i: hook.get_image("img-1"),
        "delete_image": lambda i: hook.delete_image("img-1", missing_ok=True),
        "create_bracket": lambda i: hook.create_bracket("o-1", "b1.jpg"),
        "list_brackets": lambda i: hook.list_brackets("o-1"),
        "download_image": lambda i: hook.download_image("img-1", tmp_path / f"{i}.jpg"),
        "test_connection": lambda i: hook.test_connection(),
    }
    call_rng = random.Random(SEED + 1)
    wrong: list[str] = []
    leaks: list[str] = []
    ended = {"result": 0, "error": 0}

    def check_leak(where: str, *texts: Any) -> None:
        try:
            assert_no_marker(where, *texts)
        except AssertionError as exc:
            leaks.append(str(exc)[:300])

    try:
        for i in range(CALLS):
            name = call_rng.choice(sorted(calls))
            outcome = run_bounded(lambda name=name, i=i: calls[name](i), CALL_GUARD)
            assert outcome.finished, f"call {i} ({name}) hung; server behaviours so far: {chosen[-6:]}"
            if outcome.error is None:
                ended["result"] += 1
                check_leak(f"the result of call {i} ({name})", outcome.value)
            elif isinstance(outcome.error, AutoenhanceError):
                ended["error"] += 1
            else:
                wrong.append(f"call {i} {name} after {chosen[-3:]}: {describe(outcome)[:300]}")
            check_leak(f"the exception of call {i} ({name})", *exception_texts(outcome.error))
    finally:
        hook.close()
    check_leak("the logs", logs.text())
    problems = [f"{len(wrong)} call(s) ended in a non-Autoenhance exception:", *wrong[:15]]
    problems += [f"{len(leaks)} leak(s) of the key:", *leaks[:15]]
    summary = "\n".join(problems) + f"\n({ended}, {len(chosen)} requests)"
    assert not wrong, summary
    assert not leaks, summary
    assert ended["result"] > 0, "no call ever succeeded: the server's good answers were never used"
