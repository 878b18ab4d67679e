"""HTTP for both hooks, one module per concern.

============================  ==============================================================
``http.policy``               retry policy: :class:`RetryPolicy`, :class:`Failure`, the
                              :class:`Retrier`, :func:`check_hop` (which URLs may be contacted)
``http.redaction``            what may be logged: URLs without query strings, no API key; the
                              log filter on urllib3's and aiohttp's loggers
``http.limits``               bounded bodies (:class:`BoundedDecoder`) and request deadlines
``http.sockets``              sockets that obey the deadline (the CPython internals, isolated)
``http.transport``            what both transports share (connection, policy, timeouts, budget)
``http.sync``                 :class:`SyncTransport` (``requests``): the hook's
``http.aio``                  :class:`AsyncTransport` (``aiohttp``): the trigger's
============================  ==============================================================

This package re-exports only the names the rest of the provider imports.
"""

from __future__ import annotations

from autoenhance_provider.http.aio import AsyncTransport
from autoenhance_provider.http.limits import ERROR_BODY_BYTES, MAX_PAGES, deadline_cap, within
from autoenhance_provider.http.policy import MAX_REDIRECTS, Failure, Retrier, RetryPolicy
from autoenhance_provider.http.redaction import redact_url
from autoenhance_provider.http.sync import (
    Recovered,
    SyncTransport,
    failure_for_requests_exception,
    iter_body,
    read_start,
    storage_error_text,
)
from autoenhance_provider.http.transport import Timeout

__all__ = [
    "ERROR_BODY_BYTES",
    "MAX_PAGES",
    "MAX_REDIRECTS",
    "AsyncTransport",
    "Failure",
    "Recovered",
    "Retrier",
    "RetryPolicy",
    "SyncTransport",
    "Timeout",
    "deadline_cap",
    "failure_for_requests_exception",
    "iter_body",
    "read_start",
    "redact_url",
    "storage_error_text",
    "within",
]
