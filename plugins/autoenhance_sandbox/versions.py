"""``x-api-version`` switches: the only places where the sandbox's behaviour depends on the date.

Any ``YYYY-MM-DD`` (optionally followed by more text) is accepted; an absent or unparsable header
means "newest behaviour". Boundaries:

- **2024-11-01** ("Dynamic Image Rendering"): before it the legacy download parameter ``size``
  (``small`` = 800 px wide, ``large`` = 2048 px wide, ``big`` = full size) is honoured; from this
  version on ``size`` is ignored and only ``max_width``/``scale``/``format``/``quality``/... count.
- **2025-05-05** (upload URL key rename): ``POST /v3/images`` returns the presigned URL under
  ``s3PutObjectUrl`` when the requested version is *before* 2025-05-05, otherwise under
  ``upload_url``. The exact date of the rename is undocumented; 2025-05-05 is the oldest version
  known to read ``upload_url`` (a third-party client pins it), while the SDK pinned to
  2025-01-01 reads ``s3PutObjectUrl``.
"""

from __future__ import annotations

import datetime as dt

DYNAMIC_RENDERING = dt.date(2024, 11, 1)
UPLOAD_URL_RENAMED = dt.date(2025, 5, 5)
LEGACY_SIZES: dict[str, int | None] = {"small": 800, "large": 2048, "big": None}


def parse_api_version(value: str | None) -> dt.date | None:
    """``"2025-01-01"`` -> date; anything else -> ``None`` (newest)."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def upload_url_field(version: dt.date | None) -> str:
    """Name of the presigned-URL key in ``POST /v3/images`` responses."""
    if version is not None and version < UPLOAD_URL_RENAMED:
        return "s3PutObjectUrl"
    return "upload_url"


def legacy_size_honoured(version: dt.date | None) -> bool:
    """Whether the pre-2024-11-01 ``size`` download parameter applies."""
    return version is not None and version < DYNAMIC_RENDERING
