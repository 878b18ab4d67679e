"""Sockets that obey the thread's request deadline — the one place that touches CPython internals.

urllib3 only has per-operation timeouts: a server trickling one byte every few seconds keeps a
read alive forever. These classes wrap the socket urllib3 connects, so that each ``recv_into`` and
``sendall`` is given at most what is left of :func:`autoenhance_provider.http.limits.deadline`.

What is private here, and why: ``socket.socket._io_refs`` and ``_decref_socketios`` are how
``socket.SocketIO`` keeps a socket open while a file made by ``makefile()`` still reads it
(``http.client`` closes the socket of a ``Connection: close`` answer and hands the reader to the
response). :class:`_DeadlineRawIO` replaces that reader, so it keeps the same count. They have
not changed since Python 3.2; ``tests/unit/http/test_sockets.py`` checks them on every Python CI runs.
"""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Iterator
from typing import Any

import urllib3
import urllib3.connection

from autoenhance_provider.http.limits import CHUNK_SIZE, Deadline, current_deadline


class _DeadlineRawIO(io.RawIOBase):
    """Socket reads that stop at the thread's deadline, however slowly bytes arrive."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        # Like socket.SocketIO: while a reader is open, socket.close() only marks the socket, so
        # http.client can hand a "Connection: close" socket over to the response that reads it.
        sock._io_refs += 1  # type: ignore[attr-defined]

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._sock._decref_socketios()  # type: ignore[attr-defined]
        super().close()

    def readinto(self, buffer: Any) -> int:
        with _socket_deadline(self._sock) as current:
            n = self._sock.recv_into(buffer)
        if current is not None:
            current.moved(n)
        return n


@contextlib.contextmanager
def _socket_deadline(sock: socket.socket) -> Iterator[Deadline | None]:
    """Bound one socket operation by what is left of this thread's deadline (if any)."""
    current = current_deadline()
    if current is None:
        yield None
        return
    remaining = current.remaining()
    if remaining <= 0:
        raise TimeoutError("the request deadline passed")
    timeout = sock.gettimeout()
    sock.settimeout(remaining if timeout is None else min(timeout, remaining))
    try:
        yield current
    finally:
        sock.settimeout(timeout)


class _DeadlineSocket:
    """A connected socket whose reads and writes obey the thread's deadline (everything else as is)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "r" in mode and "b" in mode:
            return io.BufferedReader(_DeadlineRawIO(self._sock), CHUNK_SIZE)
        return self._sock.makefile(mode, *args, **kwargs)  # type: ignore[call-overload]

    def sendall(self, data: Any, *args: Any) -> None:
        current = current_deadline()
        if current is not None:
            current.moved(len(data))  # an upload earns time for what it sends
        with _socket_deadline(self._sock):
            self._sock.sendall(data, *args)


class _DeadlineHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)  # type: ignore[assignment,unused-ignore]


class _DeadlineHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)  # type: ignore[assignment,unused-ignore]


class DeadlineHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class DeadlineHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection
