"""The account limits of the docs' "Rate Limits" page, as the sandbox plays them.

- request rate per client IP (``rate_limit_per_second``, ``rate_limit_burst``): 429 on ``/v3``,
  with ``Retry-After`` only in the ``rate_limit_retry_after=present`` reading;
- the same file name per hour (``duplicate_name_limit``): 429 on ``POST /v3/images`` or, with
  ``duplicate_name_reading=error``, the new image in ``error``;
- enhancements per day (``daily_enhancement_limit``): the image enters ``error`` with
  :data:`DAILY_LIMIT_REASON`.

The request rate is a token bucket on real (monotonic) time: it refills "as soon as traffic
slows". The hourly and daily windows are calendar hours and days (UTC) of the *sandbox clock*,
so a test that advances the clock by an hour or a day starts a new window;
``POST /_sandbox/limits/reset`` clears every window at once ("capacity upgraded").
"""

from __future__ import annotations

import time
from collections.abc import Callable

HOUR = 3600.0
DAY = 86400.0

#: ``status_reason`` of an image refused by the daily limit (the real wording is unpublished;
#: clients must match it loosely). ``{limit}`` is the account's daily limit.
DAILY_LIMIT_REASON = (
    "Daily enhancement limit reached: this account may enhance {limit} images per day. "
    "The limit resets daily (or when capacity is upgraded)."
)
#: ``message`` of the 429, and ``status_reason`` of the image in the ``error`` reading.
DUPLICATE_NAME_MESSAGE = (
    "Too many images named {name!r}: at most {limit} images with the same file name may be uploaded per hour."
)
RATE_LIMIT_MESSAGE = "Too Many Requests: at most {rate:g} requests per second per IP address."

REFUSAL_KINDS = ("rate_limit", "duplicate_name", "daily_limit")


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; one token per request."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class LimitCounters:
    """What the limits remember: buckets per client IP, names per hour, enhancements per day.

    Not thread-safe on its own: the state calls it under its lock (the middleware's rate check
    holds its own small lock-free path because the event loop is single-threaded).
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.buckets: dict[str, TokenBucket] = {}
        self.names: dict[tuple[int, str], int] = {}
        self.enhancements: dict[int, int] = {}
        #: API requests (``/v3``) in the current wall-clock second, and the most seen in one second.
        self._second = 0
        self._in_second = 0
        self.peak_per_second = 0

    def note_request(self) -> None:
        """Count one API request towards the peak rate (while a request-rate limit is on)."""
        second = int(self._monotonic())
        if second != self._second:
            self._second, self._in_second = second, 0
        self._in_second += 1
        self.peak_per_second = max(self.peak_per_second, self._in_second)

    def reset(self) -> None:
        """Every window starts afresh (the "capacity upgraded" admin call, and ``reset``)."""
        self.buckets.clear()
        self.names.clear()
        self.enhancements.clear()
        self.peak_per_second = 0

    def allow_request(self, client: str, rate: float, burst: float | None) -> bool:
        self.note_request()
        now = self._monotonic()
        size = max(1.0, burst if burst is not None else rate)
        bucket = self.buckets.get(client)
        if bucket is None or bucket.rate != rate or bucket.burst != size:
            bucket = self.buckets[client] = TokenBucket(rate, size, now)
        return bucket.take(now)

    def register_name(self, name: str, limit: int, now: float) -> bool:
        """Count one registration of ``name`` in this hour; False (not counted) beyond ``limit``."""
        key = (int(now // HOUR), name)
        if len(self.names) > 100_000:  # forget past hours
            self.names = {k: v for k, v in self.names.items() if k[0] == key[0]}
        count = self.names.get(key, 0)
        if count >= limit:
            return False
        self.names[key] = count + 1
        return True

    def enhance(self, limit: int, now: float) -> bool:
        """Count one enhancement today; False (not counted) once the day's ``limit`` is used."""
        day = int(now // DAY)
        count = self.enhancements.get(day, 0)
        if count >= limit:
            return False
        self.enhancements[day] = count + 1
        return True

    def used_today(self, now: float) -> int:
        return self.enhancements.get(int(now // DAY), 0)
