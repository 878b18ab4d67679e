"""Request parsing and validation: the one place that knows the input contract (§4, §6, §7).

Errors are collected per field and raised as one 422 in APIFlask's shape
(``{"message": "Validation error", "detail": {"json"|"query": {field: [msg, ...]}}}``).

Strict where the official SDK 1.1.0 is strict: order, bracket, report and process/merge bodies
reject unknown keys ("Unknown field.", as marshmallow does); enum values must be spelt exactly;
ranges are checked. Image bodies (``ImageIn`` declares ``additionalProperties``) ignore unknown
keys unless the ``unknown_image_fields="reject"`` option is set. Which values exist depends on
the request's ``x-api-version`` (:mod:`autoenhance_sandbox.versions`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoenhance_sandbox.errors import ApiError, FieldErrors, validation_error
from autoenhance_sandbox.versions import (
    LEGACY_SIZES,
    ai_versions,
    cloud_types,
    enhance_types,
    has_window_pull_type,
    legacy_size_honoured,
)

WINDOW_PULL_TYPES = ("NONE", "ONLY_WINDOWS", "WINDOWS_WITH_SKIES")
REPORT_CATEGORIES = (
    "AUTO_PRIVACY", "COLOUR", "CONTRAST", "DOWNLOAD", "DYNAMIC_RANGE", "EXPOSURE", "HDR",
    "IMAGE_QUALITY", "ITEM_REMOVAL", "LENS_CORRECTION", "NO_COMPLAINTS", "NOISE", "OTHER",
    "PERSPECTIVE_CORRECTION", "PROCESSING", "SHARPNESS", "SKY_REPLACEMENT", "WHITE_BALANCE",
    "WINDOW_PULL", "PRIVACY",
)  # fmt: skip
REPORT_SOURCES = ("WEBAPP", "API")
DOWNLOAD_FORMATS = ("jpeg", "png", "webp")
PER_PAGE_MAX = 15  # SDK 1.1.0: le=15
PER_PAGE_DEFAULT = 5  # SDK 1.0.7 / 1.1.0 Pagination default

#: Request body keys per schema (SDK 1.1.0 models; image bodies add documented extras).
_SETTINGS_KEYS = (
    "ai_version", "cloud_type", "enhance", "enhance_type", "lens_correction", "privacy",
    "sky_replacement", "upscale", "vertical_correction", "window_pull",
)  # fmt: skip
ORDER_KEYS = frozenset({"name", "order_id"})
BRACKET_KEYS = frozenset({"metadata", "name", "order_id"})
REPORT_KEYS = frozenset({"categories", "comment", "score", "source"})
MERGE_KEYS = frozenset({*_SETTINGS_KEYS, "number_of_brackets_per_image"})  # OrderHDRMerge
PROCESS_KEYS = frozenset({*MERGE_KEYS, "images"})  # OrderHDRProcessIn
IMAGE_KEYS = frozenset(
    {
        *_SETTINGS_KEYS,
        *("finetune_settings", "image_name", "metadata", "order_id", "rating", "threesixty"),  # SDK
        *("contentType", "content_type", "hdr", "image_id", "preset_id", "restage"),  # DOCS/EX
    }
)
MSG_UNKNOWN = "Unknown field."

#: Output values of settings a client did not send.
IMAGE_DEFAULTS: dict[str, Any] = {
    "enhance": True,
    "enhance_type": "neutral",
    "ai_version": None,  # shown as the caller's version default (versions.default_ai_version)
    "sky_replacement": False,
    "cloud_type": None,
    "vertical_correction": True,
    "lens_correction": True,
    "window_pull": None,
    "window_pull_type": None,
    "privacy": False,
    "upscale": False,
    "threesixty": False,
    "rating": None,
    "metadata": {},
    "finetune_settings": None,
    "preset_id": None,
    "restage": None,
}

_BOOLS = ("enhance", "sky_replacement", "vertical_correction", "lens_correction", "upscale", "threesixty")
_NULLABLE_BOOLS = ("window_pull", "privacy")
_OBJECTS = ("metadata", "finetune_settings", "restage")
_ID_RE = re.compile(r"[^/\s?#%\\]{1,128}")

MSG_REQUIRED = "Missing data for required field."
MSG_STRING = "Not a valid string."
MSG_BOOL = "Not a valid boolean."
MSG_INT = "Not a valid integer."
MSG_NUMBER = "Not a valid number."
MSG_MAPPING = "Not a valid mapping type."
MSG_LIST = "Not a valid list."


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Empty body -> ``{}``; malformed JSON or a non-object -> 422 under ``json._schema``."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise validation_error("json", "_schema", f"Invalid JSON body: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise validation_error("json", "_schema", "Invalid input type; expected a JSON object.")
    return data


def check_keys(
    body: Mapping[str, Any], allowed: frozenset[str], errors: FieldErrors, version: dt.date | None
) -> None:
    """Add "Unknown field." for every key the schema (for this API version) does not declare."""
    if has_window_pull_type(version) and "window_pull" in allowed:
        allowed = allowed | {"window_pull_type"}
    for key in body:
        if key not in allowed:
            errors.add(key, MSG_UNKNOWN)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_of(values: tuple[str, ...]) -> str:
    return "Must be one of: " + ", ".join(values) + "."


def _check_id(errors: FieldErrors, name: str, value: Any, *, required: bool) -> str | None:
    if value is None:
        if required:
            errors.add(name, MSG_REQUIRED)
        return None
    if not isinstance(value, str):
        errors.add(name, MSG_STRING)
        return None
    if not _ID_RE.fullmatch(value):
        errors.add(name, "Must be 1-128 characters without '/', '?', '#', '%' or whitespace.")
        return None
    return value


def _check_name(errors: FieldErrors, name: str, value: Any, *, required: bool) -> str | None:
    if value is None:
        if required:
            errors.add(name, MSG_REQUIRED)
        return None
    if not isinstance(value, str):
        errors.add(name, MSG_STRING)
        return None
    if required and not value.strip():
        errors.add(name, "Shorter than minimum length 1.")
        return None
    return value


def _parse_settings(body: Mapping[str, Any], errors: FieldErrors, version: dt.date | None) -> dict[str, Any]:
    """Validate the enhancement settings shared by image create/reprocess and order process.

    Keys a body may not carry were rejected (or dropped) by :func:`check_keys` before.
    """
    enums: dict[str, tuple[str, ...]] = {
        "enhance_type": enhance_types(version),
        "cloud_type": cloud_types(version),
    }
    if has_window_pull_type(version):
        enums["window_pull_type"] = WINDOW_PULL_TYPES
    out: dict[str, Any] = {}
    for name in _BOOLS:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = value
        else:
            errors.add(name, MSG_BOOL)
    for name in _NULLABLE_BOOLS:
        if name not in body:
            continue
        value = body[name]
        if value is None or isinstance(value, bool):
            out[name] = value
        else:
            errors.add(name, MSG_BOOL)
    for name, values in enums.items():
        if name not in body or body[name] is None:
            if name in body and name != "enhance_type":  # null enhance_type = server default
                out[name] = None
            continue
        value = body[name]
        if not isinstance(value, str):
            errors.add(name, MSG_STRING)
            continue
        if value not in values:
            errors.add(name, _one_of(values))
        else:
            out[name] = value
    ai_version = body.get("ai_version")
    if ai_version is not None:
        if not isinstance(ai_version, str):
            errors.add("ai_version", MSG_STRING)
        elif ai_version not in ai_versions(version):
            errors.add("ai_version", _one_of(ai_versions(version)))
        else:
            out["ai_version"] = ai_version
    if "rating" in body and body["rating"] is not None:
        rating = body["rating"]
        if not _is_int(rating):
            errors.add("rating", MSG_INT)
        elif not 0 <= rating <= 5:
            errors.add("rating", "Must be greater than or equal to 0 and less than or equal to 5.")
        else:
            out["rating"] = rating
    for name in _OBJECTS:
        if name not in body:
            continue
        value = body[name]
        if value is None:
            out[name] = {} if name == "metadata" else None
        elif isinstance(value, dict):
            out[name] = value
        else:
            errors.add(name, MSG_MAPPING)
    if "preset_id" in body:
        value = body["preset_id"]
        if value is None or isinstance(value, str):
            out["preset_id"] = value
        else:
            errors.add("preset_id", MSG_STRING)
    if "window_pull_type" in out and "window_pull" not in out and out["window_pull_type"] is not None:
        out["window_pull"] = out["window_pull_type"] != "NONE"
    return out


@dataclass
class ImageRequest:
    """A validated ``POST /v3/images`` (or reprocess) body; ``settings`` holds only sent keys."""

    image_name: str | None
    order_id: str | None
    image_id: str | None
    content_type: str | None
    hdr: bool
    settings: dict[str, Any] = field(default_factory=dict)


def parse_image_in(
    body: Mapping[str, Any], *, partial: bool, version: dt.date | None = None, unknown: str = "ignore"
) -> ImageRequest:
    """ImageIn (create: ``image_name`` required) or ImageInUpdate (``partial``: all optional).

    ``unknown="ignore"`` drops undeclared keys (ImageIn's additionalProperties), ``"reject"``
    answers 422 for them.
    """
    errors = FieldErrors("json")
    if unknown == "reject":
        check_keys(body, IMAGE_KEYS, errors, version)
    else:
        allowed = IMAGE_KEYS | ({"window_pull_type"} if has_window_pull_type(version) else set())
        body = {key: value for key, value in body.items() if key in allowed}
    name = _check_name(errors, "image_name", body.get("image_name"), required=not partial)
    order_id = None if partial else _check_id(errors, "order_id", body.get("order_id"), required=False)
    image_id = None if partial else _check_id(errors, "image_id", body.get("image_id"), required=False)
    content_type = None
    for key in ("content_type", "contentType"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or "/" not in value:
            errors.add(key, "Not a valid MIME type.")
        else:
            content_type = value.strip()
    hdr = body.get("hdr")
    if hdr is not None and not isinstance(hdr, bool):
        errors.add("hdr", MSG_BOOL)
    settings = _parse_settings(body, errors, version)
    if hdr and not partial and order_id is None and "order_id" not in errors.errors:
        errors.add("order_id", "Required when hdr is true.")
    errors.raise_if_any()
    return ImageRequest(name, order_id, image_id, content_type, bool(hdr), settings)


def parse_order_in(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``{name?, order_id?}`` for ``POST /v3/orders``."""
    errors = FieldErrors("json")
    check_keys(body, ORDER_KEYS, errors, None)
    order_id = _check_id(errors, "order_id", body.get("order_id"), required=False)
    name = _check_name(errors, "name", body.get("name"), required=False)
    errors.raise_if_any()
    return order_id, name


def parse_order_patch(body: Mapping[str, Any]) -> str | None:
    """Only ``name`` can be edited (DOCS); ``order_id`` (OrderIn) is checked, then ignored."""
    errors = FieldErrors("json")
    check_keys(body, ORDER_KEYS, errors, None)
    _check_id(errors, "order_id", body.get("order_id"), required=False)
    name = _check_name(errors, "name", body.get("name"), required=False)
    errors.raise_if_any()
    return name


def parse_bracket_in(body: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """BracketIn: ``order_id`` and ``name`` required, ``metadata`` optional object."""
    errors = FieldErrors("json")
    check_keys(body, BRACKET_KEYS, errors, None)
    order_id = _check_id(errors, "order_id", body.get("order_id"), required=True)
    name = _check_name(errors, "name", body.get("name"), required=True)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        errors.add("metadata", MSG_MAPPING)
    errors.raise_if_any()
    assert order_id is not None
    assert name is not None
    return order_id, name, metadata or {}


@dataclass
class ProcessRequest:
    """Validated OrderHDRProcessIn: settings plus exactly one grouping mode."""

    settings: dict[str, Any]
    per_image: int | None = None  # number_of_brackets_per_image (>0)
    groups: list[list[str]] | None = None  # images[].bracket_ids

    @property
    def mode(self) -> str:
        if self.groups:
            return "manual"
        return "fixed" if self.per_image else "automatic"


def parse_process(
    body: Mapping[str, Any], *, allow_grouping: bool, version: dt.date | None = None
) -> ProcessRequest:
    """Parse ``/process`` (OrderHDRProcessIn) or legacy ``/merge`` (OrderHDRMerge: no ``images``).

    ``number_of_brackets_per_image`` absent/null/0 and ``images`` absent/null/[] both mean
    automatic grouping; a positive number together with a non-empty ``images`` is a 422.
    """
    errors = FieldErrors("json")
    check_keys(body, PROCESS_KEYS if allow_grouping else MERGE_KEYS, errors, version)
    settings = _parse_settings(body, errors, version)
    per_image: int | None = None
    groups: list[list[str]] | None = None
    raw_n = body.get("number_of_brackets_per_image")
    if raw_n is not None:
        if not _is_int(raw_n):
            errors.add("number_of_brackets_per_image", MSG_INT)
        elif raw_n < 0:
            errors.add("number_of_brackets_per_image", "Must be greater than or equal to 0.")
        elif raw_n > 0:
            per_image = raw_n
    if allow_grouping:
        raw_groups = body.get("images")
        if raw_groups is not None:
            groups = _parse_groups(raw_groups, errors) or None
        if per_image and groups:
            errors.add("_schema", "Use either number_of_brackets_per_image or images, not both.")
    errors.raise_if_any()
    return ProcessRequest(settings, per_image, groups)


def _parse_groups(raw: Any, errors: FieldErrors) -> list[list[str]]:
    if not isinstance(raw, list):
        errors.add("images", MSG_LIST)
        return []
    groups: list[list[str]] = []
    for index, item in enumerate(raw):
        if isinstance(item, dict) and set(item) - {"bracket_ids"}:
            errors.add("images", f"Item {index}: unknown field(s) {sorted(set(item) - {'bracket_ids'})}.")
            continue
        ids = item.get("bracket_ids") if isinstance(item, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            errors.add("images", f"Item {index}: bracket_ids must be a non-empty list of bracket ids.")
            continue
        groups.append(list(ids))
    return groups


def parse_report(body: Mapping[str, Any]) -> dict[str, Any]:
    """ReportIn: ``categories`` (required enum list), ``comment``, ``score`` 0-5, ``source``."""
    errors = FieldErrors("json")
    check_keys(body, REPORT_KEYS, errors, None)
    categories = body.get("categories")
    normalised: list[str] = []
    if categories is None:
        errors.add("categories", MSG_REQUIRED)
    elif not isinstance(categories, list):
        errors.add("categories", MSG_LIST)
    else:
        for value in categories:
            if value not in REPORT_CATEGORIES:
                errors.add("categories", _one_of(REPORT_CATEGORIES))
                break
            normalised.append(value)
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        errors.add("comment", MSG_STRING)
    score = body.get("score")
    if score is not None and (not _is_int(score) or not 0 <= score <= 5):
        errors.add("score", "Must be an integer between 0 and 5.")
    source = body.get("source")
    if source is not None and source not in REPORT_SOURCES:
        errors.add("source", _one_of(REPORT_SOURCES))
    errors.raise_if_any()
    return {"categories": normalised, "comment": comment, "score": score, "source": source or "API"}


# ---------------------------------------------------------------------------------------------
# Query strings
# ---------------------------------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


def _query_bool(errors: FieldErrors, query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    errors.add(name, MSG_BOOL)
    return default


def _query_int(errors: FieldErrors, query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw.strip())
    except ValueError:
        errors.add(name, MSG_INT)
        return None


@dataclass(frozen=True)
class DownloadParams:
    """Validated rendering parameters of a download request."""

    format: str | None = None
    quality: int | None = None
    max_width: int | None = None
    scale: float | None = None
    preview: bool = False
    watermark: bool = False

    @property
    def has_rendering(self) -> bool:
        """Whether an ``/original`` request asks for anything but the stored bytes."""
        return any(v is not None for v in (self.format, self.quality, self.max_width, self.scale)) or (
            self.preview or self.watermark
        )


def parse_download_query(query: Mapping[str, str], kind: str, version: dt.date | None) -> DownloadParams:
    """§7.1 parameters. ``preview`` defaults to true on enhanced/preview/watermark."""
    errors = FieldErrors("query")
    fmt = query.get("format")
    if fmt is not None and fmt != "":
        fmt = fmt.strip().lower()
        fmt = "jpeg" if fmt == "jpg" else fmt
        if fmt not in DOWNLOAD_FORMATS:
            errors.add("format", _one_of(DOWNLOAD_FORMATS))
    else:
        fmt = None
    quality = _query_int(errors, query, "quality")
    if quality is not None and not 1 <= quality <= 90:
        errors.add("quality", "Must be greater than or equal to 1 and less than or equal to 90.")
    max_width = _query_int(errors, query, "max_width")
    if max_width is not None and max_width < 1:
        errors.add("max_width", "Must be greater than or equal to 1.")
    scale: float | None = None
    raw_scale = query.get("scale")
    if raw_scale:
        try:
            scale = float(raw_scale)
        except ValueError:
            errors.add("scale", MSG_NUMBER)
        else:
            if not 0.0 < scale <= 1.0:
                errors.add("scale", "Must be greater than 0 and less than or equal to 1.")
    preview = _query_bool(errors, query, "preview", default=kind != "original")
    watermark = _query_bool(errors, query, "watermark", default=kind == "watermark")
    _query_bool(errors, query, "finetune", default=False)  # accepted, no visible effect
    size = query.get("size")
    if size:
        size = size.strip().lower()
        if size not in LEGACY_SIZES:
            errors.add("size", _one_of(tuple(LEGACY_SIZES)))
        elif legacy_size_honoured(version) and max_width is None:
            max_width = LEGACY_SIZES[size]
    errors.raise_if_any()
    if kind == "watermark":
        watermark = True
    if kind == "preview":
        preview = True
    return DownloadParams(fmt, quality, max_width, scale, preview, watermark)


def parse_list_query(query: Mapping[str, str], over_max: str = "reject") -> tuple[int | None, int]:
    """``offset`` (opaque token from a previous page) and ``per_page`` (1..15, default 5).

    Out of range: ``over_max="reject"`` answers 422 (an APIFlask ``Range(1, 15)`` validator),
    ``"clamp"`` serves 1..15 and echoes the value used.
    """
    errors = FieldErrors("query")
    per_page = _query_int(errors, query, "per_page")
    if per_page is not None and over_max == "reject" and not 1 <= per_page <= PER_PAGE_MAX:
        errors.add(
            "per_page", f"Must be greater than or equal to 1 and less than or equal to {PER_PAGE_MAX}."
        )
    after = None
    token = query.get("offset")
    if token:
        after = decode_offset(token)
        if after is None:
            errors.add("offset", "Invalid offset token; pass back pagination.next_offset unchanged.")
    errors.raise_if_any()
    per_page = PER_PAGE_DEFAULT if per_page is None else max(1, min(PER_PAGE_MAX, per_page))
    return after, per_page


def encode_offset(after_seq: int) -> str:
    """Opaque cursor: base64url of a tiny JSON document (clients must not parse it)."""
    raw = json.dumps({"v": 1, "after": after_seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_offset(token: str) -> int | None:
    """Inverse of :func:`encode_offset`; ``None`` for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("v") != 1 or not _is_int(data.get("after")):
        return None
    return data["after"] if data["after"] >= 0 else None


# ---------------------------------------------------------------------------------------------
# Admin bodies
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRequest:
    """``POST /_sandbox/seed`` body."""

    orders: int
    images_per_order: int
    finish_after_seconds: float | None
    error_fraction: float


def parse_seed(body: Mapping[str, Any]) -> SeedRequest:
    errors = FieldErrors("json")
    orders = body.get("orders", 1)
    per = body.get("images_per_order", 1)
    finish = body.get("finish_after_seconds")
    fraction = body.get("error_fraction", 0.0)
    if not _is_int(orders) or not 0 <= orders <= 1_000_000:
        errors.add("orders", "Must be an integer between 0 and 1000000.")
    if not _is_int(per) or not 0 <= per <= 100:
        errors.add("images_per_order", "Must be an integer between 0 and 100.")
    if finish is not None and (
        not isinstance(finish, (int, float)) or isinstance(finish, bool) or finish < 0
    ):
        errors.add("finish_after_seconds", "Must be a number >= 0.")
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 <= fraction <= 1:
        errors.add("error_fraction", "Must be a number between 0 and 1.")
    errors.raise_if_any()
    return SeedRequest(orders, per, None if finish is None else float(finish), float(fraction))


def fault_error(exc: Exception) -> ApiError:
    """Turn a ValueError from the fault settings into a 422."""
    return validation_error("json", "_schema", str(exc))
