"""Reading captured log events (the ``logs`` fixture of tests/unit/conftest.py)."""

from __future__ import annotations

import contextlib
from typing import Any


def rendered(events: list[dict[str, Any]], level: str | None = None) -> list[str]:
    """Messages of structlog events captured with ``structlog.testing.capture_logs``."""
    out = []
    for event in events:
        if level and event.get("log_level") != level:
            continue
        text = str(event.get("event"))
        args = event.get("positional_args")
        if args:
            with contextlib.suppress(TypeError):
                text = text % tuple(args)
        out.append(text)
    return out
