"""Reproducible fault injection.

Whether the n-th request to an endpoint gets a fault is a pure function of
``(seed, endpoint key, n)`` (a keyed hash), so concurrency *across* endpoints never changes the
sequence one endpoint sees, and the same seed always replays the same failures.

Kinds and what they do (applied by :mod:`autoenhance_sandbox.middleware`):

- ``"429"``: answer ``429 Too Many Requests`` with ``Retry-After: 1``; always *before* the handler.
- ``"500"``/``"502"``/``"503"``: answer that status with an error body (JSON on the API, S3-style
  XML on storage/assets).
- ``"drop"``: send response headers announcing a ``Content-Length`` plus part of the body, then
  close the connection, so the client sees a broken/incomplete response.
- ``"slow"``: sleep ``slow_seconds`` and then serve the request normally.

Phases for 5xx and ``drop``: ``"before"`` replaces the request (the handler never runs, no state
changes); ``"after"`` lets the handler run to completion, so its state change is committed
(order/image/bracket created, upload stored and processing restarted, credit spent, deletion
done, render cached...), and only then replaces the response (or drops the connection after
sending the real status line). ``"both"`` picks one of the two per injected fault, also from the
hash. What an "after" fault leaves behind, per endpoint:

===============================================  ===============================================
``POST /v3/orders``                              order created (a retry with the same
                                                 ``order_id`` gets 409)
``PATCH /v3/orders/{order_id}``                  name changed
``DELETE /v3/orders/{order_id}``                 order and its images deleted (retry: 404)
``POST /v3/orders/{order_id}/process|merge``     merge scheduled (retry: 409 "already merging")
``POST /v3/images``                              image (and an implicit order) registered, its
                                                 upload URL lost; a retry makes a second image
                                                 with the same name (``duplicate_image_names``)
``POST|PATCH /v3/images/{image_id}/process``     settings changed, processing restarted
``DELETE /v3/images/{image_id}``                 image deleted (retry: 404)
``POST /v3/images/{image_id}/report``            report stored
``POST /v3/brackets``                            bracket registered (a retry adds another one)
``PUT /_storage/{object_key}``                   bytes stored, ``uploads`` counted, processing
                                                 (re)started / bracket marked uploaded
``GET /v3/images/{image_id}/enhanced``           with ``preview=false``: credit spent, purchase
                                                 counted, ``downloaded=true`` (a retry is free)
``GET /_assets/{token}``                         render computed and cached, download counted
other ``GET`` endpoints                          nothing (reads), the handler's work is discarded
===============================================  ===============================================
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS: tuple[str, ...] = ("429", "500", "502", "503", "drop", "slow")
FAULT_PHASES: tuple[str, ...] = ("before", "after", "both")


def normalise_kinds(kinds: Iterable[Any]) -> tuple[str, ...]:
    """Accept ``[429, "500", "DROP"]`` alike; reject unknown kinds early."""
    if isinstance(kinds, (str, int)):
        kinds = [kinds]
    result = tuple(str(kind).strip().lower() for kind in kinds)
    unknown = [kind for kind in result if kind not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; expected some of {list(FAULT_KINDS)}")
    return result


def normalise_endpoint_key(key: str) -> str:
    """``"post /v3/images/"`` -> ``"POST /v3/images"`` so keys match the stats keys."""
    method, _, path = key.strip().partition(" ")
    path = path.strip()
    if len(path) > 1:
        path = path.rstrip("/")
    return f"{method.upper()} {path}"


@dataclass
class FaultSettings:
    """The currently active fault plan (rate, kinds, per-endpoint rates, seed, phase)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    endpoints: dict[str, float] = field(default_factory=dict)
    seed: int | None = None
    phase: str = "both"
    slow_seconds: float = 1.5

    def as_dict(self) -> dict[str, Any]:
        """JSON shape used by ``GET/POST /_sandbox/faults``."""
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "endpoints": dict(self.endpoints),
            "seed": self.seed,
            "phase": self.phase,
            "slow_seconds": self.slow_seconds,
        }


@dataclass(frozen=True)
class Fault:
    """One decided fault: which kind, and whether it strikes before or after the handler."""

    kind: str
    phase: str  # "before" or "after"


class FaultInjector:
    """Decides faults per request; thread-safe because tests reconfigure it from another thread."""

    def __init__(self, settings: FaultSettings) -> None:
        self._lock = threading.Lock()
        self._settings = settings
        self._effective_seed = self._pick_seed(settings.seed)
        self._counters: dict[str, int] = {}

    @staticmethod
    def _pick_seed(seed: int | None) -> int:
        """No seed means "random but still hash-driven", so the code path is the same."""
        return seed if seed is not None else secrets.randbits(63)

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def configure(
        self,
        *,
        rate: float | None = None,
        kinds: Iterable[Any] | None = None,
        endpoints: Mapping[str, float] | None = None,
        seed: int | None = None,
        phase: str | None = None,
        slow_seconds: float | None = None,
        replace_seed: bool = False,
    ) -> FaultSettings:
        """Change some settings (``None`` keeps the current value) and restart all sequences."""
        current = self._settings
        new = FaultSettings(
            rate=current.rate if rate is None else _check_rate(rate, "rate"),
            kinds=current.kinds if kinds is None else normalise_kinds(kinds),
            endpoints=(
                dict(current.endpoints)
                if endpoints is None
                else {normalise_endpoint_key(k): _check_rate(v, k) for k, v in endpoints.items()}
            ),
            seed=seed if (seed is not None or replace_seed) else current.seed,
            phase=current.phase if phase is None else _check_phase(phase),
            slow_seconds=current.slow_seconds if slow_seconds is None else float(slow_seconds),
        )
        if new.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")
        with self._lock:
            self._settings = new
            self._effective_seed = self._pick_seed(new.seed)
            self._counters = {}
        return new

    def restart_sequences(self) -> None:
        """Forget how many requests each endpoint saw (used by reset)."""
        with self._lock:
            self._effective_seed = self._pick_seed(self._settings.seed)
            self._counters = {}

    def decide(self, endpoint_key: str) -> Fault | None:
        """Return the fault for this request to ``endpoint_key``, or ``None``."""
        with self._lock:
            settings = self._settings
            rate = settings.endpoints.get(endpoint_key, settings.rate)
            n = self._counters.get(endpoint_key, 0)
            self._counters[endpoint_key] = n + 1
            seed = self._effective_seed
        if rate <= 0.0 or not settings.kinds:
            return None
        digest = hashlib.blake2b(f"{seed}|{endpoint_key}|{n}".encode(), digest_size=24).digest()
        roll, pick, side = (int.from_bytes(digest[i : i + 8], "big") / 2.0**64 for i in (0, 8, 16))
        if roll >= rate:
            return None
        kind = settings.kinds[int(pick * len(settings.kinds))]
        if kind in ("429", "slow"):
            return Fault(kind, "before")
        phase = settings.phase if settings.phase != "both" else ("before" if side < 0.5 else "after")
        return Fault(kind, phase)


def _check_rate(value: Any, name: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name}: fault rate must be within [0, 1]")
    return rate


def _check_phase(value: str) -> str:
    if value not in FAULT_PHASES:
        raise ValueError(f"phase must be one of {list(FAULT_PHASES)}")
    return value
