"""Request and business counters behind ``GET /_sandbox/stats``.

Counters only; values derived from live state (live orders, duplicate names, credits) are added
by :meth:`autoenhance_sandbox.state.SandboxState.stats` so both live in exactly one place.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from autoenhance_sandbox.faults import FAULT_KINDS
from autoenhance_sandbox.limits import REFUSAL_KINDS

DOWNLOAD_KINDS = ("original", "enhanced", "preview", "watermark")


@dataclass
class Counters:
    """Monotonic counters, cleared by reset; persisted with the state when ``data_dir`` is set."""

    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    orders_created: int = 0
    images_created: int = 0
    merged_images: int = 0
    brackets_created: int = 0
    uploads: int = 0
    seeded_orders: int = 0
    reports: int = 0
    downloads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DOWNLOAD_KINDS, 0))
    purchases: int = 0
    purchases_per_image: dict[str, int] = field(default_factory=dict)
    leaked_api_key: dict[str, int] = field(default_factory=lambda: {"storage": 0, "assets": 0})
    faults_injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    webhooks_sent: int = 0
    #: Requests or images refused by an account limit (docs "Rate Limits"), by limit.
    limit_refusals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REFUSAL_KINDS, 0))
    #: Processing runs that counted as an enhancement (an upload, reprocess or merge not refused).
    enhancements: int = 0
    enhancements_per_image: dict[str, int] = field(default_factory=dict)

    def record_request(self, endpoint_key: str, status: str) -> None:
        """Count one finished request under ``"<METHOD> <route template>"`` and its status."""
        by_status = self.requests.setdefault(endpoint_key, {})
        by_status[status] = by_status.get(status, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counters:
        counters = cls()
        for key, value in data.items():
            if hasattr(counters, key):
                current = getattr(counters, key)
                if isinstance(current, dict) and isinstance(value, dict):
                    current.update(value)
                else:
                    setattr(counters, key, value)
        return counters
