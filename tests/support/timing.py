"""Time in tests: a clock that moves only when told, and a bounded wait for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class FakeClock:
    """A clock that moves only when told: call it (a stand-in for ``time.monotonic``), or put it
    in place of a module's ``time``, where ``sleep`` records the seconds and advances it at once."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def wait_until(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``check`` (bounded) until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(interval)
