"""5. A nonsensical Retry-After falls back to the normal backoff.

Negative, NaN, infinite and garbage values must neither turn retries into a busy loop (no gap
between attempts) nor into an endless wait; the number of attempts stays the hook's own.
The gap bound is a lower bound on a sleep (0.02 s when the backoff is at least 0.025 s), which a
slow machine can only make larger.
"""

from __future__ import annotations

import itertools

import pytest
from servers import Request, async_get_order, describe, json_reply, run_bounded

from autoenhance_provider.exceptions import AutoenhanceError, AutoenhanceTransientError

#: A long max delay: an infinite Retry-After clamped to it (instead of ignored) waits 3 x 10 s, past
#: the guard, while the normal backoff waits 0.05 + 0.1 + 0.2 s at most.
RETRY = {"retry_limit": 3, "retry_delay": 0.05, "retry_max_delay": 10.0}
ATTEMPTS = RETRY["retry_limit"] + 1
MIN_GAP = 0.02
GUARD = 12
VALUES = [
    "-5",
    "-0.5",
    "NaN",
    "nan",
    "inf",
    "Infinity",
    "-inf",
    "1e400",
    "-1e400",
    "garbage",
    "5s",
    "0x10",
    "1,5",
]


def _gaps(server) -> list[float]:
    times = [r.at for r in server.seen("GET")]
    return [b - a for a, b in itertools.pairwise(times)]


def _app(value: str):
    def app(request: Request):
        return json_reply(429, {"message": "Too many requests"}, [("Retry-After", value)])

    return app


class TestRetryAfter:
    @pytest.mark.parametrize("value", VALUES)
    def test_sync_hook_falls_back_to_backoff(self, serve, connect, value) -> None:
        from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

        server = serve(_app(value))
        conn = connect(server)
        outcome = run_bounded(lambda: AutoenhanceHook(conn, **RETRY).get_order("o-1"), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceTransientError | AutoenhanceError), describe(outcome)
        assert len(server.seen("GET")) == ATTEMPTS
        gaps = _gaps(server)
        assert min(gaps) >= MIN_GAP, f"Retry-After {value!r} made retries back-to-back: gaps {gaps}"

    @pytest.mark.parametrize("value", VALUES)
    def test_async_hook_falls_back_to_backoff(self, serve, connect, value) -> None:
        server = serve(_app(value))
        conn = connect(server)
        outcome = run_bounded(lambda: async_get_order(conn, **RETRY), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
        assert len(server.seen("GET")) == ATTEMPTS
        gaps = _gaps(server)
        assert min(gaps) >= MIN_GAP, f"Retry-After {value!r} made retries back-to-back: gaps {gaps}"
