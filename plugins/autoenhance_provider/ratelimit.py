"""One request-rate budget per process and API host, shared by every thread and event loop.

Autoenhance answers 429 above 300 requests per second from one IP address, on all endpoints
(docs "Rate Limits"). A worker's concurrent transfers, a task's own calls and every wait of a
triggerer all draw from the same :class:`RequestRateLimiter` here, so one process never sends
more than ``max_requests_per_second`` (connection extra, default
:data:`DEFAULT_MAX_REQUESTS_PER_SECOND`) to the API host in any window of one second (a sliding
window: a request waits until the one ``rate`` requests before it is a second old). Presigned
uploads and asset downloads go to other hosts and are not counted.

Several processes (Celery workers, a triggerer, on one host or behind one NAT address) each have
their own budget: the docs' "Limits" page says how to keep their sum below the API's limit.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from typing import Any

# The real sleeps, bound at import: a test that records the client's backoff by patching
# ``time.sleep`` or ``asyncio.sleep`` sees the retry policy's delays, not this pacing.
_sleep = time.sleep
_async_sleep = asyncio.sleep

#: Requests per second one process sends to one API host unless the connection says otherwise:
#: two thirds of the API's documented 300/s per IP, leaving room for a second process.
DEFAULT_MAX_REQUESTS_PER_SECOND = 200.0


class RequestRateLimiter:
    """At most ``rate`` requests in any window of one second, across threads and event loops.

    A sliding window: a request may go when the one ``rate`` requests before it went at least a
    second earlier. A process that was quiet can send a second's worth at once (a bulk upload is
    not slowed below what it could do), and no second ever holds more than ``rate`` requests, so
    a server's bucket of ``300`` a second is never emptied by a budget below it. (Thread-safe.)
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: collections.deque[float] = collections.deque()
        self._set_rate(float(rate))
        #: Requests paced, how many had to wait, and the longest wait (seconds).
        self.requests = 0
        self.delayed = 0
        self.longest_wait = 0.0

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        # ``count`` requests per ``window`` seconds: one second, or longer for a rate below 1/s.
        self.count = max(1, int(rate))
        self.window = self.count / rate
        while len(self._sent) > self.count:
            self._sent.popleft()

    def lower_to(self, rate: float) -> None:
        """Connections in one process that ask for different rates share the lowest."""
        with self._lock:
            if rate < self.rate:
                self._set_rate(float(rate))

    def reserve(self) -> float:
        """Take the next free slot; returns the seconds to wait before sending."""
        with self._lock:
            now = self._clock()
            sent = self._sent
            slot = now
            if sent:
                slot = max(slot, sent[-1])  # slots never go back in time
            if len(sent) >= self.count:
                slot = max(slot, sent[0] + self.window)
                sent.popleft()
            sent.append(slot)
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
