"""The request-rate budget (issue 19): one per process and API host, for threads and event loops."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from autoenhance_provider.connection import AutoenhanceConnectionConfig
from autoenhance_provider.exceptions import AutoenhanceConfigError
from autoenhance_provider.http import AsyncTransport, RetryPolicy, SyncTransport
from autoenhance_provider.ratelimit import (
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    RequestRateLimiter,
    limiter_for,
    reset_limiters,
)


class _Conn:
    conn_id = "autoenhance_default"
    host = "https://api.example.test"
    port = None
    password = "k" * 20

    def __init__(self, **extra: object) -> None:
        self.extra_dejson = extra
        self.extra = None


@pytest.fixture(autouse=True)
def _fresh_budgets():
    reset_limiters()
    yield
    reset_limiters()


def test_rate_a_second_with_bursts_of_half_a_second_at_most():
    now = [100.0]
    limiter = RequestRateLimiter(10, clock=lambda: now[0])
    delays = [round(limiter.reserve(), 3) for _ in range(9)]
    assert delays == [0.0] * 5 + [0.1, 0.2, 0.3, 0.4]  # a burst of 5 (1.5 x 10 in the first second)
    now[0] += 10.0  # quiet for a while: the same burst again, never more
    assert [round(limiter.reserve(), 3) for _ in range(6)] == [0.0] * 5 + [0.1]
    assert limiter.stats()["delayed"] == 5


def test_a_rate_below_one_per_second():
    now = [0.0]
    limiter = RequestRateLimiter(0.5, clock=lambda: now[0])
    assert [limiter.reserve() for _ in range(3)] == [0.0, 2.0, 4.0]


def test_threads_share_one_budget():
    limiter = RequestRateLimiter(50)
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(15):
            limiter.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent.sort()
    assert len(sent) == 120
    assert sent[-1] - sent[0] >= 1.9 - 0.02  # a burst of 25, then 95 at 50 a second
    assert max_in_any_second(sent) <= 75


def test_tasks_of_one_loop_share_the_budget():
    limiter = RequestRateLimiter(50)
    sent: list[float] = []

    async def one() -> None:
        await limiter.acquire_async()
        sent.append(time.monotonic())

    async def everything() -> None:
        await asyncio.gather(*(one() for _ in range(120)))

    asyncio.run(everything())
    sent.sort()
    assert sent[-1] - sent[0] >= 1.9 - 0.02
    assert max_in_any_second(sent) <= 75


def max_in_any_second(times: list[float], width: float = 0.9) -> int:
    """The most requests in any window (0.9 s: a thread may note its time a little late)."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_the_connection_extra():
    config = AutoenhanceConnectionConfig.from_connection(_Conn())
    assert config.max_requests_per_second == DEFAULT_MAX_REQUESTS_PER_SECOND
    assert DEFAULT_MAX_REQUESTS_PER_SECOND < 300
    assert (
        AutoenhanceConnectionConfig.from_connection(
            _Conn(max_requests_per_second="50")
        ).max_requests_per_second
        == 50
    )
    assert (
        AutoenhanceConnectionConfig.from_connection(_Conn(max_requests_per_second=0)).max_requests_per_second
        is None
    )
    with pytest.raises(AutoenhanceConfigError, match="max_requests_per_second"):
        AutoenhanceConnectionConfig.from_connection(_Conn(max_requests_per_second=-1))


def test_sync_and_async_transports_of_one_host_share_the_budget_and_the_lowest_rate_wins():
    fast = AutoenhanceConnectionConfig.from_connection(_Conn(max_requests_per_second=150))
    slow = AutoenhanceConnectionConfig.from_connection(_Conn(max_requests_per_second=40))
    sync = SyncTransport(fast, RetryPolicy(), None)
    asynchronous = AsyncTransport(slow, RetryPolicy(), None)
    assert sync.limiter is asynchronous.limiter
    assert sync.limiter is not None
    assert sync.limiter.rate == 40
    off = AutoenhanceConnectionConfig.from_connection(_Conn(max_requests_per_second=0))
    assert SyncTransport(off, RetryPolicy(), None).limiter is None
    assert limiter_for("https://other.example.test", 100) is not sync.limiter
