"""Configuration of one sandbox instance, shared by the app, the CLI and the test helpers.

The dataclass is *live*: the running app keeps a reference to it, so a test may change e.g.
``processing_seconds`` on the fly and the next request uses the new value.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoenhance_sandbox.faults import FAULT_KINDS, FAULT_PHASES, normalise_kinds


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
