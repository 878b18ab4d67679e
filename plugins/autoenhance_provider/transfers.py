"""Concurrent transfers with progress lines, shared by uploads and downloads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any, TypeVar

from autoenhance_provider.compat import AirflowFailException
from autoenhance_provider.exceptions import AutoenhanceError, AutoenhanceStorageError

T = TypeVar("T")
R = TypeVar("R")

#: Seconds between two progress lines (the first and last are always logged).
PROGRESS_EVERY = 5.0


class Progress:
    """Counts finished items and bytes; logs "37/200 uploaded, 180.4 MB, 12.1 MB/s"."""

    def __init__(self, total: int, verb: str, log: Any, every: float = PROGRESS_EVERY) -> None:
        self.total = total
        self.verb = verb
        self.done = 0
        self.bytes = 0
        self._log = log
        self._every = every
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_logged = 0.0

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.done += 1
            self.bytes += max(0, int(nbytes or 0))
            now = time.monotonic()
            if self.done == self.total or now - self._last_logged >= self._every:
                self._last_logged = now
                self._log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self._started, 1e-6)
        mb = self.bytes / 1e6
        return f"{self.done}/{self.total} {self.verb}, {mb:.1f} MB, {mb / elapsed:.1f} MB/s"


def run_concurrently(
    items: Iterable[T],
    work: Callable[[T], R],
    *,
    max_concurrency: int,
    describe: Callable[[T], str],
    log: Any,
    stop_on_any_failure: bool = False,
) -> tuple[list[tuple[T, R]], list[tuple[T, BaseException]]]:
    """Run ``work`` on every item with a bounded thread pool.

    A permanent failure (bad key, rejected settings) stops the remaining work at once; other
    failures are collected so everything else still finishes and a task retry only redoes the
    failed items — unless ``stop_on_any_failure`` (when the order of the items matters). A task
    timeout or kill in the main thread stops the queue too instead of waiting for it to drain.
    """
    items = list(items)
    done: list[tuple[T, R]] = []
    failed: list[tuple[T, BaseException]] = []
    if not items:
        return done, failed
    # Workers check this before starting an item: cancelling queued futures from this thread
    # alone is racy, a fast-failing worker can run through the whole queue first.
    stopping = threading.Event()

    def guarded(item: T) -> R:
        if stopping.is_set():
            raise _NotStarted
        try:
            return work(item)
        except Exception as exc:
            if stop_on_any_failure or isinstance(exc, AirflowFailException):
                stopping.set()
            raise

    pool = ThreadPoolExecutor(max_workers=max(1, min(max_concurrency, len(items))))
    try:
        futures: dict[Future[R], T] = {pool.submit(guarded, item): item for item in items}
        for future in as_completed(futures):
            item = futures[future]
            error = future.exception()
            if error is None:
                done.append((item, future.result()))
            elif not isinstance(error, _NotStarted):
                failed.append((item, error))
                log.error("%s failed: %s", describe(item), error)
    except BaseException:
        # AirflowTaskTimeout (SIGALRM) or a kill arrives here: don't wait for the queue.
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    order = {id(item): i for i, item in enumerate(items)}
    done.sort(key=lambda pair: order[id(pair[0])])
    return done, failed


def item_name(item: Any) -> str:
    """How an item is named in progress lines and errors: its ``name``, or the item itself."""
    return str(getattr(item, "name", item))


def transfer(
    items: list[Any],
    work: Callable[[Any], Any],
    what: str,
    max_concurrency: int,
    *,
    log: Any,
    keep_order: bool = False,
    size: Callable[[Any], int] | None = None,
) -> tuple[list[tuple[Any, Any]], list[tuple[Any, BaseException]]]:
    """Run ``work`` on every item, ``max_concurrency`` at a time, with progress lines.

    ``size`` gives the bytes moved from a result (default: the item's ``size``).
    """
    if not items:
        return [], []
    progress = Progress(len(items), f"{what}ed".replace("ee", "e"), log)

    def counted(item: Any) -> Any:
        result = work(item)
        progress.add(size(result) if size else getattr(item, "size", 0))
        return result

    return run_concurrently(
        items,
        counted,
        max_concurrency=max_concurrency,
        describe=lambda item: f"{what.capitalize()} of {item_name(item)}",
        log=log,
        stop_on_any_failure=keep_order,
    )


def raise_for_failures(
    failed: list[tuple[T, BaseException]],
    *,
    total: int,
    succeeded: int,
    what: str,
    name: Callable[[T], str] = item_name,
) -> None:
    """One way to report failed transfers: the first permanent error as it is (no retry burnt on
    it), otherwise a summary that Airflow may retry — a retry redoes only the failed items."""
    if not failed:
        return
    permanent = next((e for _, e in failed if isinstance(e, AirflowFailException)), None)
    if permanent is not None:
        raise permanent
    names = ", ".join(name(item) for item, _ in failed[:10])
    # Keep the storage class when that is what failed, so callers can tell it apart.
    storage = all(isinstance(e, AutoenhanceStorageError) for _, e in failed)
    raise (AutoenhanceStorageError if storage else AutoenhanceError)(
        f"{len(failed)} of {total} {what}(s) failed ({names}); {succeeded} succeeded and are kept, "
        f"a retry redoes only the rest. First error: {failed[0][1]}"
    ) from failed[0][1]


class _NotStarted(Exception):
    """An item skipped because a permanent failure stopped the run before it began."""
