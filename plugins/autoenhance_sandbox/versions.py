"""``x-api-version`` switches: the only places where the sandbox's behaviour depends on the date.

Any ``YYYY-MM-DD`` (optionally followed by more text) is accepted; an absent or unparsable header
means "newest behaviour". Boundaries (see docs/sandbox.md, "Versions"):

- **2024-11-01** ("Dynamic Image Rendering"): before it the legacy download parameter ``size``
  (``small`` = 800 px wide, ``large`` = 2048 px wide, ``big`` = full size) is honoured; from this
  version on ``size`` is ignored and only ``max_width``/``scale``/``format``/``quality``/... count.
- **2025-01-01**: ``enhance_type="authentic"`` is accepted only *before* it (SDK-2410 knew it,
  the SDK pinned to 2025-01-01 does not).
- **2025-05-05** (upload URL key rename): ``POST /v3/images`` returns the presigned URL under
  ``s3PutObjectUrl`` when the requested version is *before* 2025-05-05, otherwise under
  ``upload_url``. The exact date is undocumented; 2025-05-05 is the oldest version known to read
  ``upload_url`` (a third-party client pins it), while the SDK pinned to 2025-01-01 reads
  ``s3PutObjectUrl``.
- **2025-05-08** (SDK 1.1.0's pin): the default ``ai_version`` filled in is ``5.x`` from here on,
  ``4.x`` before (SDK 1.0.7's enum, pinned 2025-01-01, has no 5.x).
- **2025-08-31** ("Window Pull Types"): ``window_pull_type`` exists only from this version on.
- **2026-01-01** (AI version aliases): ``latest``/``stable``/``beta`` and ``5.1``-``5.3`` are
  accepted and ``latest`` is the default; ``cloud_type="LOW_CLOUD_LOW_SAT"`` (only on the newer
  docs pages) is accepted. For older pins an alias sent is a 422 and stored aliases are shown as
  that version's default, so every value returned is in the SDK's enum.
"""

from __future__ import annotations

import datetime as dt

DYNAMIC_RENDERING = dt.date(2024, 11, 1)
AUTHENTIC_REMOVED = dt.date(2025, 1, 1)
UPLOAD_URL_RENAMED = dt.date(2025, 5, 5)
AI_5X_DEFAULT = dt.date(2025, 5, 8)
WINDOW_PULL_TYPES = dt.date(2025, 8, 31)
AI_ALIASES = dt.date(2026, 1, 1)
LEGACY_SIZES: dict[str, int | None] = {"small": 800, "large": 2048, "big": None}

#: ``ai_version`` enum of the official SDK 1.1.0 (``ImageIn``/``ImageOut``).
SDK_AI_VERSIONS: tuple[str, ...] = (
    "dev", "5.x", "5.0", "4.x", "4.7", "4.5", "4.4", "4.3", "4.2", "4.1", "4.0",
    "3.x", "3.5", "3.4", "3.3", "3.2", "3.1", "3.0",
)  # fmt: skip
#: Added by the January 2026 docs (``/ai-version``): aliases and the last numbered releases.
NEW_AI_VERSIONS: tuple[str, ...] = ("latest", "stable", "beta", "5.1", "5.2", "5.3")


def parse_api_version(value: str | None) -> dt.date | None:
    """``"2025-01-01"`` -> date; anything else -> ``None`` (newest)."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def at_least(version: dt.date | None, boundary: dt.date) -> bool:
    """Whether a request pinned to ``version`` (None = newest) gets the behaviour from ``boundary``."""
    return version is None or version >= boundary


def upload_url_field(version: dt.date | None) -> str:
    """Name of the presigned-URL key in ``POST /v3/images`` responses."""
    return "upload_url" if at_least(version, UPLOAD_URL_RENAMED) else "s3PutObjectUrl"


def legacy_size_honoured(version: dt.date | None) -> bool:
    """Whether the pre-2024-11-01 ``size`` download parameter applies."""
    return not at_least(version, DYNAMIC_RENDERING)


def ai_versions(version: dt.date | None) -> tuple[str, ...]:
    """``ai_version`` values accepted for a pinned version."""
    return SDK_AI_VERSIONS + NEW_AI_VERSIONS if at_least(version, AI_ALIASES) else SDK_AI_VERSIONS


def default_ai_version(version: dt.date | None) -> str:
    """What an image shows as ``ai_version`` when the client sent none (or an alias too new)."""
    if at_least(version, AI_ALIASES):
        return "latest"
    return "5.x" if at_least(version, AI_5X_DEFAULT) else "4.x"


def enhance_types(version: dt.date | None) -> tuple[str, ...]:
    base = ("property", "property_usa", "warm", "neutral", "modern")
    return base if at_least(version, AUTHENTIC_REMOVED) else (*base, "authentic")


def cloud_types(version: dt.date | None) -> tuple[str, ...]:
    base = ("CLEAR", "LOW_CLOUD", "HIGH_CLOUD")
    return (*base, "LOW_CLOUD_LOW_SAT") if at_least(version, AI_ALIASES) else base


def has_window_pull_type(version: dt.date | None) -> bool:
    return at_least(version, WINDOW_PULL_TYPES)


def shape_image(image: dict, version: dt.date | None) -> dict:
    """Present a stored image for the caller's version (values only that version knows)."""
    if image.get("ai_version") not in ai_versions(version):
        image["ai_version"] = default_ai_version(version)
    if image.get("cloud_type") is not None and image["cloud_type"] not in cloud_types(version):
        image["cloud_type"] = "LOW_CLOUD"
    if image.get("enhance_type") is not None and image["enhance_type"] not in enhance_types(version):
        image["enhance_type"] = "neutral"
    if not has_window_pull_type(version):
        image.pop("window_pull_type", None)
    return image


def shape_order(order: dict, version: dt.date | None) -> dict:
    for image in order.get("images") or ():
        shape_image(image, version)
    return order
