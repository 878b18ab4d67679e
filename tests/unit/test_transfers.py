"""The shared transfer loop: a task timeout or kill must not wait for the whole queue."""

from __future__ import annotations

import logging
import signal
import threading
import time

import pytest

from autoenhance_provider.transfers import run_concurrently


class _Timeout(BaseException):
    """Stands in for AirflowTaskTimeout, which Airflow raises from SIGALRM in the main thread."""


def test_a_timeout_in_the_main_thread_stops_the_queue():
    started: list[int] = []
    lock = threading.Lock()

    def slow(item: int) -> int:
        with lock:
            started.append(item)
        time.sleep(0.1)
        return item

    def on_alarm(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.25)
    began = time.monotonic()
    try:
        with pytest.raises(_Timeout):
            run_concurrently(range(40), slow, max_concurrency=2, describe=str, log=logging.getLogger("test"))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - began < 1.0  # 40 items x 0.1 s / 2 workers would be 2 s
    time.sleep(0.3)  # let the two running items finish
    assert len(started) < 12


def test_stop_on_any_failure_starts_nothing_after_a_failure():
    ran: list[int] = []

    def work(item: int) -> int:
        ran.append(item)
        if item == 2:
            raise RuntimeError("boom")
        return item

    done, failed = run_concurrently(
        range(6),
        work,
        max_concurrency=1,
        describe=str,
        log=logging.getLogger("test"),
        stop_on_any_failure=True,
    )
    assert ran == [0, 1, 2]
    assert [i for i, _ in done] == [0, 1]
    assert [i for i, _ in failed] == [2]
