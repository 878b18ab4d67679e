"""What both transports share: the connection, the retry policy, the timeouts, the request budget."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from autoenhance_provider import __version__
from autoenhance_provider.connection import AutoenhanceConnectionConfig
from autoenhance_provider.http.policy import RetryPolicy
from autoenhance_provider.ratelimit import limiter_for

Timeout = float | tuple[float, float]


@cache
def user_agent(client: str = "requests") -> str:
    """``airflow-provider-autoenhance/<v> apache-airflow/<v> python-<client>/<v>``, computed once."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:  # pragma: no cover - e.g. only the task SDK installed
            return "unknown"

    return (
        f"airflow-provider-autoenhance/{__version__} apache-airflow/{installed('apache-airflow')} "
        f"python-{client}/{installed(client)}"
    )


class Transport:
    """What both transports know: the connection, the retry policy, the log, the timeouts."""

    def __init__(
        self,
        config: AutoenhanceConnectionConfig,
        policy: RetryPolicy,
        log: logging.Logger | Any,
        *,
        timeout: Timeout | None = None,
        conn_id: str | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.log = log
        self.timeout = config.timeouts(timeout)
        self.conn_id = conn_id
        #: The process-wide request budget for this API host (``max_requests_per_second``).
        self.limiter = limiter_for(config.base_url, config.max_requests_per_second)
