"""Compatibility readings of the Autoenhance API: every fallback for an old or undocumented reading.

Where the public sources disagree about a name, a path, a method or a spelling, the provider accepts
both. This module holds what each alternative *is* (names, paths, statuses that trigger the
fallback, small pure readers), with the sources and their dates; the code that follows it stays where
the request is made (cited per reading below). Source tags are those of docs/contract.md, which
gives each reading's row in "Undocumented behaviours"; the tags' dates: SDK-2308 August 2023,
SDK-2410 October 2024, SDK-2502 February 2025, SDK-1.1.0 June 2025 (``x-api-version: 2025-05-08``).
No import from the rest of the provider: any module may use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# --- Upload URL field --------------------------------------------------------------------------
# ``s3PutObjectUrl`` (camelCase) in older versions: SDK-2410/2502 (Oct 2024 / Feb 2025), EX,
# DOCS-old; ``upload_url`` in newer ones: SDK-1.1.0 (June 2025), DOCS creating ("older API
# version" note). Boundary date unknown. Read in this order.
# Used by: records.py ``with_upload_url`` (image and bracket creates, read by the hook).
UPLOAD_URL_FIELDS = ("upload_url", "s3PutObjectUrl")


def upload_url(created: Mapping[str, Any]) -> Any:
    """The presigned URL of a create answer under either name (falsy when neither is given)."""
    return created.get(UPLOAD_URL_FIELDS[0]) or created.get(UPLOAD_URL_FIELDS[1])


# --- Re-PUT as application/octet-stream --------------------------------------------------------
# Presigned image PUT: DOCS say the URL is signed for the type sent at create; DOCS' HDR curl,
# 3P-go and 3P-ts (2024-2025) sign/send ``application/octet-stream`` always. When the storage host
# refuses the signature for the sent type, the PUT is tried once more with this type.
# Used by: uploads.py ``upload_file``. (Brackets are always sent as it: files.BRACKET_CONTENT_TYPE.)
SIGNATURE_FALLBACK_CONTENT_TYPE = "application/octet-stream"

# --- Preview route -----------------------------------------------------------------------------
# ``GET /v3/images/{id}/preview`` (SDK-2410, Oct 2024; DOCS preview page) was dropped from
# SDK-2502 (Feb 2025) and SDK-1.1.0 (June 2025) for ``/enhanced?preview=true``. The current route
# is tried first; these statuses mean "not served here", and ``/preview`` is asked instead.
# Used by: downloads.py ``download_image``.
PREVIEW_CURRENT_KIND = "enhanced"
PREVIEW_CURRENT_QUERY: Mapping[str, str] = {"preview": "true"}
PREVIEW_ROUTE_MISSING = frozenset({404, 405, 422})

# --- /process versus /merge (HDR) --------------------------------------------------------------
# ``POST /v3/orders/{id}/process`` (SDK-1.1.0, June 2025; DOCS grouping-brackets) replaced the
# legacy ``/merge`` (SDK-2308…2502, Aug 2023-Feb 2025; EX; DOCS-old); when is unknown. A 405, or a
# 404 for an order that exists, means ``/process`` is missing: the same settings go to ``/merge``,
# which cannot express explicit grouping.
# Used by: hooks/autoenhance.py ``process_order``.
PROCESS_ROUTE = "process"
MERGE_ROUTE = "merge"
PROCESS_ROUTE_MISSING = frozenset({404, 405})

# --- Reprocess method --------------------------------------------------------------------------
# ``POST /v3/images/{id}/process`` in every SDK (2023-2025) and the DOCS spec block; some DOCS code
# samples on the same page use ``PATCH`` (several revisions). On 405 the PATCH is sent.
# Used by: hooks/autoenhance.py ``reprocess_image``.
REPROCESS_METHOD = "POST"
REPROCESS_FALLBACK_METHOD = "PATCH"
REPROCESS_METHOD_MISSING = 405

# --- JSON/HTML download indirection ------------------------------------------------------------
# Spec (SDK): 200 with the image. Observed: a 302 chain (AZ, 3P-ts). Older behaviour: a JSON body
# naming the image URL (older DOCS snippets call ``response.json()`` and name it ``imageSource``;
# 3P-ts "legacy"), or a Flask HTML redirect page whose ``href`` is the target (3P-ts, HDR).
# Used by: downloads.py ``_follow_indirect``.
INDIRECT_CONTENT_TYPES = ("application/json", "text/html")
INDIRECT_URL_KEYS = ("url", "image_url", "imageSource", "download_url", "downloadUrl")


def indirect_image_url(content_type: str, body: bytes) -> str | None:
    """Older API versions answer a download with JSON or a redirect page naming the image URL."""
    ct = content_type.split(";")[0].strip().lower()
    if ct == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if isinstance(data, dict):
            for key in INDIRECT_URL_KEYS:
                if isinstance(data.get(key), str):
                    return str(data[key])
        return None
    if ct == "text/html":
        match = re.search(r"""href=["']([^"']+)["']""", body.decode("utf-8", "replace"), re.IGNORECASE)
        return match.group(1) if match else None
    return None


# --- Image status synonyms ---------------------------------------------------------------------
# The spec's words are ``waiting``, ``processing``, ``processed``, ``error``, ``expired``; there is
# no ``failed`` (SDK-2410, Oct 2024). Third-party clients (a Supabase edge function, 3P) also treat
# ``complete`` as done and poll an ``enhanced`` flag; these words are read as the spec's word.
# Used by: records.py ``ImageStatus.parse``.
IMAGE_STATUS_SYNONYMS: Mapping[str, str] = {
    "complete": "processed",
    "completed": "processed",
    "enhanced": "processed",
    "failed": "error",
}

__all__ = [
    "IMAGE_STATUS_SYNONYMS",
    "INDIRECT_CONTENT_TYPES",
    "INDIRECT_URL_KEYS",
    "MERGE_ROUTE",
    "PREVIEW_CURRENT_KIND",
    "PREVIEW_CURRENT_QUERY",
    "PREVIEW_ROUTE_MISSING",
    "PROCESS_ROUTE",
    "PROCESS_ROUTE_MISSING",
    "REPROCESS_FALLBACK_METHOD",
    "REPROCESS_METHOD",
    "REPROCESS_METHOD_MISSING",
    "SIGNATURE_FALLBACK_CONTENT_TYPE",
    "UPLOAD_URL_FIELDS",
    "indirect_image_url",
    "upload_url",
]
