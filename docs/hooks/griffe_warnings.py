"""MkDocs hook: drop griffe's "No matching parameter for 'x'" warnings, keep every other one.

The operators document, in their class docstring, parameters they pass on to their base class
through ``**kwargs`` (``autoenhance_conn_id``, ``source_conn_id``, the enhancement settings…).
griffe cannot see those in the signature and warns, which ``mkdocs build --strict`` would turn
into a failure; every other docstring warning still fails the build.
"""

from __future__ import annotations

import logging
from typing import Any

LOGGER = "mkdocs.plugins.griffe"


class _DropUnmatchedParameters(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No matching parameter for" not in record.getMessage()


def on_startup(command: str, dirty: bool, **kwargs: Any) -> None:
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, _DropUnmatchedParameters) for f in logger.filters):
        logger.addFilter(_DropUnmatchedParameters())
