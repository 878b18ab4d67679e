"""Configuration of one sandbox instance, shared by the app, the CLI and the test helpers.

The dataclass is *live*: the running app keeps a reference to it, so a test may change e.g.
``processing_seconds`` on the fly and the next request uses the new value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from autoenhance_sandbox.faults import FAULT_KINDS, FAULT_PHASES, normalise_kinds

#: Behaviours public sources leave open: option name -> the readings the sandbox can play (the
#: first is the default). See docs/sandbox.md, "Contract table".
CONTRACT_CHOICES: dict[str, tuple[str, ...]] = {
    "duplicate_order_id": ("conflict", "validation", "bad_request", "existing"),
    "upload_content_type": ("for_sent_type", "octet_stream"),
    "preview_route": ("both", "enhanced_only"),
    "process_route": ("available", "missing_404", "missing_405"),
    "merge_route": ("available", "missing_404", "missing_405"),
    "per_page_over_max": ("reject", "clamp"),
    "unknown_image_fields": ("ignore", "reject"),
    # Account limits (docs "Rate Limits"): which undocumented shape each refusal takes.
    "rate_limit_retry_after": ("absent", "present"),
    "duplicate_name_reading": ("429", "error"),
    "refused_image_reprocess": ("allowed", "reregister"),
}
#: Plausible answers when credits run out (402 Payment Required is the default).
CREDIT_STATUSES: tuple[int, ...] = (402, 400, 403, 409, 422, 429)
OPTION_NAMES: tuple[str, ...] = (*CONTRACT_CHOICES, "out_of_credits_status")
#: The account limits (docs "Rate Limits"); ``None`` = no limit (the default: existing tests and
#: demos see an unlimited account). Set by CLI flag, ``AUTOENHANCE_SANDBOX_<NAME>``,
#: ``POST /_sandbox/limits`` or ``SandboxServer.set_limits``. See docs/sandbox.md, "Limits".
LIMIT_NAMES: tuple[str, ...] = (
    "rate_limit_per_second",  # token bucket per client IP on /v3 (the API: 300)
    "rate_limit_burst",  # bucket size (default: one second's worth)
    "duplicate_name_limit",  # registrations of the exact same image_name per hour (the API: 30)
    "daily_enhancement_limit",  # enhancements per (sandbox) day (the API: 500 by default)
)
ENV_PREFIX = "AUTOENHANCE_SANDBOX_"


@dataclass
class SandboxConfig:
    """Everything that shapes the sandbox's behaviour; defaults mimic a small, healthy API."""

    api_key: str = "sandbox-key"
    processing_seconds: float = 2.0
    merge_seconds: float = 1.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    fault_phase: str = "both"
    slow_seconds: float = 1.5
    seed: int | None = None
    data_dir: str | None = None
    webhook_url: str | None = None
    webhook_token: str | None = None
    credits: int | None = None
    asset_base_url: str | None = None
    duplicate_order_id: str = "conflict"
    upload_content_type: str = "for_sent_type"
    preview_route: str = "both"
    process_route: str = "available"
    merge_route: str = "available"
    per_page_over_max: str = "reject"
    unknown_image_fields: str = "ignore"
    out_of_credits_status: int = 402
    rate_limit_retry_after: str = "absent"
    duplicate_name_reading: str = "429"
    refused_image_reprocess: str = "allowed"
    rate_limit_per_second: float | None = None
    rate_limit_burst: float | None = None
    duplicate_name_limit: int | None = None
    daily_enhancement_limit: int | None = None

    def __post_init__(self) -> None:
        """Fail fast on nonsense so a typo in a test or CLI flag is not silently ignored."""
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if self.processing_seconds < 0 or self.merge_seconds < 0 or self.slow_seconds < 0:
            raise ValueError("durations must be >= 0")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        if self.fault_phase not in FAULT_PHASES:
            raise ValueError(f"fault_phase must be one of {FAULT_PHASES}")
        self.fault_kinds = normalise_kinds(self.fault_kinds)
        if self.credits is not None and self.credits < 0:
            raise ValueError("credits must be >= 0")
        if self.asset_base_url:
            self.asset_base_url = self.asset_base_url.rstrip("/")
        self.set_options(**{name: getattr(self, name) for name in OPTION_NAMES})
        self.set_limits(**{name: getattr(self, name) for name in LIMIT_NAMES})

    def options(self) -> dict[str, Any]:
        """The contract options (JSON shape of ``GET /_sandbox/options``)."""
        return {name: getattr(self, name) for name in OPTION_NAMES}

    def set_options(self, **changes: Any) -> dict[str, Any]:
        """Validate and apply contract options all-or-nothing (a typo must fail, not be ignored)."""
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "out_of_credits_status":
                try:
                    status = int(value)
                except (TypeError, ValueError):
                    raise ValueError(f"out_of_credits_status must be one of {CREDIT_STATUSES}") from None
                if status not in CREDIT_STATUSES:
                    raise ValueError(f"out_of_credits_status must be one of {CREDIT_STATUSES}")
                checked[name] = status
            elif name in CONTRACT_CHOICES:
                text = str(value).strip().lower()
                if text not in CONTRACT_CHOICES[name]:
                    raise ValueError(f"{name} must be one of {list(CONTRACT_CHOICES[name])}")
                checked[name] = text
            else:
                raise ValueError(f"unknown sandbox option {name!r}; known: {list(OPTION_NAMES)}")
        for name, value in checked.items():
            setattr(self, name, value)
        return self.options()

    def limits(self) -> dict[str, Any]:
        """The account limits (JSON shape of ``GET /_sandbox/limits``; ``None`` = unlimited)."""
        return {name: getattr(self, name) for name in LIMIT_NAMES}

    def set_limits(self, **changes: Any) -> dict[str, Any]:
        """Validate and apply limits all-or-nothing; ``None`` (or ``""``, ``"off"``) switches one off."""
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in LIMIT_NAMES:
                raise ValueError(f"unknown sandbox limit {name!r}; known: {list(LIMIT_NAMES)}")
            if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none")):
                checked[name] = None
                continue
            if isinstance(value, bool):
                raise ValueError(f"{name} must be a number or null")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number or null") from None
            if name in ("duplicate_name_limit", "daily_enhancement_limit"):
                if number != int(number) or number < 0:
                    raise ValueError(f"{name} must be a whole number >= 0 or null")
                checked[name] = int(number)
            else:
                if not number > 0 or number != number or number == float("inf"):
                    raise ValueError(f"{name} must be a number > 0 or null")
                checked[name] = number
        for name, value in checked.items():
            setattr(self, name, value)
        return self.limits()


def options_from_env(environ: dict[str, str]) -> dict[str, str]:
    """``AUTOENHANCE_SANDBOX_DUPLICATE_ORDER_ID=existing`` -> ``{"duplicate_order_id": "existing"}``."""
    known = {f.name for f in fields(SandboxConfig)}
    return {
        name: environ[ENV_PREFIX + name.upper()]
        for name in OPTION_NAMES
        if name in known and environ.get(ENV_PREFIX + name.upper())
    }


def limits_from_env(environ: dict[str, str]) -> dict[str, str]:
    """``AUTOENHANCE_SANDBOX_DAILY_ENHANCEMENT_LIMIT=500`` -> ``{"daily_enhancement_limit": "500"}``."""
    return {
        name: environ[ENV_PREFIX + name.upper()]
        for name in LIMIT_NAMES
        if environ.get(ENV_PREFIX + name.upper())
    }
