"""One request-rate budget per process and API host, shared by every thread and event loop.

Autoenhance answers 429 above 300 requests per second from one IP address, on all endpoints
(docs "Rate Limits"). A worker's concurrent transfers, a task's own calls and every wait of a
triggerer all draw from the same :class:`RequestRateLimiter` here, so one process never sends
more than ``max_requests_per_second`` a second (connection extra, default
:data:`DEFAULT_MAX_REQUESTS_PER_SECOND`) to the API host, with bursts of under a second up to
1.5 times that (see :class:`RequestRateLimiter`). Presigned uploads and asset downloads go to
other hosts and are not counted.

Several processes (Celery workers, a triggerer, on one host or behind one NAT address) each have
their own budget: the docs' "Limits" page says how to keep their sum below the API's limit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

# The real sleeps, bound at import: a test that records the client's backoff by patching
# ``time.sleep`` or ``asyncio.sleep`` sees the retry policy's delays, not this pacing.
_sleep = time.sleep
_async_sleep = asyncio.sleep

#: Requests per second one process sends to one API host unless the connection says otherwise:
#: two thirds of the API's documented 300/s per IP, so that even its bursts (1.5x) stay within it.
DEFAULT_MAX_REQUESTS_PER_SECOND = 200.0


class RequestRateLimiter:
    """``rate`` requests a second, and at most ``1.5 * rate`` in any one second (thread-safe).

    A token bucket in its scheduling form (GCRA): each request takes the next slot ``1/rate``
    after the previous one, but a process that was quiet may run up to half a second ahead of
    that schedule. So a burst that lasts under a second (a bulk upload registering 200 images)
    is not slowed, the sustained rate never exceeds ``rate``, and no second ever holds more than
    ``1.5 * rate`` requests: 300, the API's limit, at the default 200.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self._clock = clock
        self._lock = threading.Lock()
        self._tat = 0.0  # the theoretical time of the next request at exactly ``rate``
        self._set_rate(float(rate))
        #: Requests paced, how many had to wait, and the longest wait (seconds).
        self.requests = 0
        self.delayed = 0
        self.longest_wait = 0.0

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        self.interval = 1.0 / rate
        # Ahead of schedule by at most this much: ``rate/2 - 1`` requests, so that one second
        # holds at most ``rate`` (scheduled) + ``rate/2 - 1`` (ahead) + 1 = ``1.5 * rate``.
        self.tolerance = max(0.0, (rate / 2 - 1) * self.interval)

    def lower_to(self, rate: float) -> None:
        """Connections in one process that ask for different rates share the lowest."""
        with self._lock:
            if rate < self.rate:
                self._set_rate(float(rate))

    def reserve(self) -> float:
        """Take the next free slot; returns the seconds to wait before sending."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            slot = max(now, tat - self.tolerance)
            self._tat = tat + self.interval
            delay = slot - now
            self.requests += 1
            if delay > 0:
                self.delayed += 1
                self.longest_wait = max(self.longest_wait, delay)
            return delay

    def acquire(self) -> None:
        """Block the calling thread until its request may go."""
        delay = self.reserve()
        if delay > 0:
            _sleep(delay)

    async def acquire_async(self) -> None:
        """Suspend the calling task (never the loop) until its request may go."""
        delay = self.reserve()
        if delay > 0:
            await _async_sleep(delay)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rate": self.rate,
                "requests": self.requests,
                "delayed": self.delayed,
                "longest_wait": self.longest_wait,
            }


_LIMITERS: dict[str, RequestRateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(base_url: str, rate: float | None) -> RequestRateLimiter | None:
    """The process-wide limiter of one API host (None when the connection switches it off)."""
    if rate is None:
        return None
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(base_url)
        if limiter is None:
            limiter = _LIMITERS[base_url] = RequestRateLimiter(rate)
        elif rate < limiter.rate:
            limiter.lower_to(rate)
        return limiter


def reset_limiters() -> None:
    """Forget every budget (tests that change the rate between cases)."""
    with _LIMITERS_LOCK:
        _LIMITERS.clear()
