"""What may be logged: URLs without query strings (presigned signatures), text without API keys.

Importing this module installs :class:`RedactQueryStrings` on the loggers of urllib3 and aiohttp,
which quote full URLs; every exception text the transports build goes through these functions.
The keys themselves are registered and scrubbed by :mod:`autoenhance_provider.exceptions`.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from autoenhance_provider.exceptions import register_secret, scrub


def redact_url(url: str) -> str:
    """A URL safe to log: no query string (presigned signatures, tokens), no user info, no key."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = "<redacted>" if parts.query else ""
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


_URL_QUERY = re.compile(r"((?:https?://|/)[^\s?'\"]*)\?[^\s'\")]+")


def redact_urls_in(text: str) -> str:
    """Strip query strings from every URL-looking token in ``text``, and any known key."""
    return scrub(_URL_QUERY.sub(r"\1?<redacted>", text))


def redact_secret(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` cut out, in every form a server may echo it in."""
    if secret:
        register_secret(secret)
    return scrub(text)


class RedactQueryStrings(logging.Filter):
    """Strip query strings (presigned signatures) and API keys from urllib3/aiohttp records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_urls_in(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


def _redact_arg(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact_urls_in(value)
    if isinstance(value, (bytes, list, tuple, dict)):
        return redact_urls_in(repr(value))  # header lists and raw bytes, rendered safely
    text = str(value)  # e.g. a yarl.URL
    redacted = redact_urls_in(text)
    return value if redacted == text else redacted


_FILTER = RedactQueryStrings()


def install_log_redaction() -> None:
    for name in ("urllib3.connectionpool", "urllib3.response", "aiohttp.client", "aiohttp.internal"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


install_log_redaction()
