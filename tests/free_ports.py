"""Ports for servers the tests start as separate processes.

A port from ``bind(0)`` comes from the kernel's ephemeral range, the same range outgoing
connections take their local ports from: between choosing it and the server binding it, a
connection made by anything on the machine can take it ("Address already in use"). Ports
handed out here lie below that range, are checked free, and are never handed out twice.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_LOWEST = 10_000
_handed_out: set[int] = set()
_lock = threading.Lock()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback port outside the ephemeral range, different from every earlier one."""
    highest = max(_ephemeral_start() - 1, _LOWEST + 1_000)
    with _lock:
        for _ in range(1_000):
            port = random.randint(_LOWEST, highest)
            if port not in _handed_out and _is_free(port):
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free port found between {_LOWEST} and {highest}")
