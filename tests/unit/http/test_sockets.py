"""The socket deadline (``http.sockets``): the CPython internals it relies on, on this Python."""

from __future__ import annotations

import socket
import time

import pytest

from autoenhance_provider.http.limits import deadline
from autoenhance_provider.http.sockets import _DeadlineSocket


def test_the_private_socket_internals_it_relies_on_exist():
    with socket.socket() as sock:
        assert isinstance(sock._io_refs, int)
        assert callable(sock._decref_socketios)


def test_a_reader_keeps_a_closed_socket_open_until_it_is_closed():
    left, right = socket.socketpair()
    with right:
        reader = _DeadlineSocket(left).makefile("rb")
        left.close()  # only marks it: the reader still holds it, as http.client expects
        right.sendall(b"still here")
        assert reader.read1(64) == b"still here"
        reader.close()
        assert left.fileno() == -1


def test_a_trickled_read_stops_at_the_deadline_whatever_the_socket_timeout():
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(30)
        reader = _DeadlineSocket(left).makefile("rb")
        started = time.monotonic()
        with deadline(0.2), pytest.raises(TimeoutError):
            reader.read(10)  # nothing ever arrives
        assert time.monotonic() - started < 5
        assert left.gettimeout() == 30  # restored
        reader.close()
