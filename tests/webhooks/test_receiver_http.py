"""The receiver on a real socket (uvicorn on 127.0.0.1): slow senders, senders that leave."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time

from .conftest import SECRET, Recorder, Secrets, UvicornServer, make_app

EVENT = json.dumps(
    {"event": "image_processed", "order_id": "order-1", "image_id": "i", "order_is_processing": False}
).encode()


def request_head(length: int) -> bytes:
    return (
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {SECRET}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def connect(server: UvicornServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_a_body_that_trickles_in_is_cut_off_at_the_deadline():
    recorder = Recorder()
    with UvicornServer(make_app(Secrets(), recorder, body_seconds=1.0)) as server, connect(server) as sock:
        started = time.monotonic()
        sock.sendall(request_head(len(EVENT)) + EVENT[:10])
        answer = b""
        for byte in EVENT[10:40]:  # one byte every 0.1 s: 3 s for the body, the deadline is 1 s
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
            sock.settimeout(0.01)
            with contextlib.suppress(TimeoutError, BlockingIOError):
                answer += sock.recv(4096)
            if answer:
                break
        sock.settimeout(5)
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"Body not received within 1 seconds" in answer
    assert 0.9 < elapsed < 2.5  # answered at the deadline, not when the body would have ended
    assert recorder.events == []


def test_a_sender_that_leaves_mid_body_costs_one_log_line_not_a_traceback(caplog):
    caplog.set_level(logging.INFO)
    recorder = Recorder()
    with UvicornServer(make_app(Secrets(), recorder)) as server:
        for _ in range(3):
            with connect(server) as sock:
                sock.sendall(request_head(len(EVENT)) + EVENT[:20])
                time.sleep(0.2)  # the receiver is reading the body now
            time.sleep(0.2)
        with connect(server) as sock:  # and it still serves the next sender
            sock.sendall(request_head(len(EVENT)) + EVENT)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    left = [r for r in caplog.records if "left before its body was read" in r.getMessage()]
    assert len(left) == 1  # throttled: one line per webhook and minute
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
    assert [event.order_id for _, event in recorder.events] == ["order-1"]
