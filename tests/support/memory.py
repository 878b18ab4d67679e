"""A process's resident memory (Linux ``/proc``): now, and its peak while something runs."""

from __future__ import annotations

import threading
from pathlib import Path


def rss_mib(pid: int | str = "self") -> float:
    """The resident set size of process ``pid`` (this one by default), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


class PeakRss:
    """Sample a process's resident memory every 20 ms in a background thread, from now until ``stop()``."""

    def __init__(self, pid: int | str = "self") -> None:
        self.pid = pid
        self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib(self.pid))

    def stop(self) -> float:
        """Stop sampling; the peak, a last sample included."""
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_mib(self.pid))
