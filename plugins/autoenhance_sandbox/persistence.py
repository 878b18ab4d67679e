"""Saving and loading the state file of a sandbox started with ``data_dir``.

State is written to ``<data_dir>/state.json`` (atomically: temp file + rename) by the background
worker at most every :data:`SAVE_INTERVAL` seconds after a change, and once more on shutdown.
Blobs already live under ``<data_dir>`` (``uploads/``, ``derived/``, ``renders/``), so a restart
with the same ``data_dir`` and API key finds everything, including still-valid upload URLs and
asset links. A crash loses at most the last :data:`SAVE_INTERVAL` seconds of changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
SAVE_INTERVAL = 0.5


def save(root: Path, snapshot: dict[str, Any]) -> None:
    target = root / STATE_FILE
    tmp = root / f".{STATE_FILE}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(snapshot, handle, separators=(",", ":"))
    os.replace(tmp, target)


def load(root: Path) -> dict[str, Any] | None:
    target = root / STATE_FILE
    if not target.exists():
        return None
    with target.open(encoding="utf-8") as handle:
        data = json.load(handle)
    return data if isinstance(data, dict) else None
