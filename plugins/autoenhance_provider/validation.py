"""Checks of user input: identifiers (the id rule), download parameters, reports, and the coercions.

The API rejects bad values with a 422 only after a request (and, for uploads, after a file has
been read); checking first gives a clearer error, sooner. Values arrive from Jinja templates as
strings too, so booleans and numbers are coerced here (:func:`to_bool`, :func:`to_int`,
:func:`choice`, also used by :mod:`autoenhance_provider.settings`, the enhancement settings per
API version, and by the connection). A checked value comes back as its own type
(:class:`DownloadRequest`), so it is never checked twice: operators check at parse time when a
value is static, else after rendering, and the hook checks only what reaches it unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, NamedTuple
from urllib.parse import quote

from autoenhance_provider.exceptions import AutoenhanceValidationError

REPORT_CATEGORIES = (
    "AUTO_PRIVACY",
    "COLOUR",
    "CONTRAST",
    "DOWNLOAD",
    "DYNAMIC_RANGE",
    "EXPOSURE",
    "HDR",
    "IMAGE_QUALITY",
    "ITEM_REMOVAL",
    "LENS_CORRECTION",
    "NO_COMPLAINTS",
    "NOISE",
    "OTHER",
    "PERSPECTIVE_CORRECTION",
    "PROCESSING",
    "SHARPNESS",
    "SKY_REPLACEMENT",
    "WHITE_BALANCE",
    "WINDOW_PULL",
    "PRIVACY",
)
DOWNLOAD_KINDS = ("original", "enhanced", "preview")
DOWNLOAD_FORMATS = ("jpeg", "png", "webp")
LEGACY_SIZES = ("small", "large", "big")
#: ``GET /v3/orders/?per_page=``: SDK 1.1.0 declares ``le=15`` (reference §6).
MAX_PER_PAGE = 15

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


def to_bool(name: str, value: Any) -> bool:
    """Accept real booleans and the strings a rendered template produces."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise AutoenhanceValidationError(f"{name} must be true or false, got {value!r}")


def to_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool):
        raise AutoenhanceValidationError(f"{name} must be a whole number, got {value!r}")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise AutoenhanceValidationError(f"{name} must be a whole number, got {value!r}")
    _check_range(name, number, lo, hi)
    return number


def to_float(name: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool):
        raise AutoenhanceValidationError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AutoenhanceValidationError(f"{name} must be a number, got {value!r}") from None
    _check_range(name, number, lo, hi)
    return number


def _check_range(name: str, number: float, lo: float | None, hi: float | None) -> None:
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        bounds = f"between {lo} and {hi}" if lo is not None and hi is not None else f"at least {lo}"
        raise AutoenhanceValidationError(f"{name} must be {bounds}, got {number:g}")


def choice(name: str, value: Any, allowed: Iterable[str], case: str = "lower") -> str:
    """Normalise ``value`` to the API's case and check it against ``allowed``."""
    allowed = tuple(allowed)
    text = str(value).strip()
    text = text.lower() if case == "lower" else text.upper()
    if text not in allowed:
        raise AutoenhanceValidationError(f"Invalid {name} {value!r}; allowed values: {', '.join(allowed)}")
    return text


#: The one rule for ids, wherever they come from (the DAG, an API answer, a webhook body, an asset
#: event, another task's XCom): Autoenhance's UUIDs and the client ids people choose. Letters,
#: digits and ``_ - . : @ + ~``, starting with a letter, digit or ``_``, at most 200 characters. No
#: braces, ``%``, ``#``, whitespace, ``/`` or ``\``: an id is one path segment and a folder name,
#: and never reads as a Jinja template, a URL escape or a fragment.
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+~-]{0,199}")
ID_RULE = "letters, digits and _ - . : @ + ~, starting with a letter, digit or _, at most 200 characters"


def is_valid_id(value: Any) -> bool:
    """Whether ``value`` is an id by :data:`ID_PATTERN`, as it stands (nothing stripped)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def require_id(name: str, value: Any) -> str:
    """An order/image/bracket id by :data:`ID_PATTERN` (surrounding whitespace of a rendered
    template removed), or :class:`AutoenhanceValidationError` naming the parameter.

    Checked before any request, so ``order_id=upload.output`` (a list) or a typo like ``"../x"``
    fails with the parameter's name instead of a 404 from a mangled path.
    """
    if not isinstance(value, str):
        hint = " (a task's whole output? pick one value)" if isinstance(value, (list, tuple, dict)) else ""
        raise AutoenhanceValidationError(
            f"{name} must be a string, got {type(value).__name__} {_shorten(value)}{hint}"
        )
    text = value.strip()
    if not text:
        raise AutoenhanceValidationError(f"{name} must not be empty")
    if not is_valid_id(text):
        raise AutoenhanceValidationError(f"{name} {_shorten(text)} is not a valid id: use {ID_RULE}")
    return text


def _shorten(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def path_segment(name: str, value: Any) -> str:
    """An id as one URL path segment."""
    return quote(require_id(name, value), safe="")


def is_template(value: Any) -> bool:
    """Whether ``value`` is only known at run time: a Jinja template or an XComArg, at any depth."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_template(k) or is_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(is_template(v) for v in value)
    from autoenhance_provider.compat import RuntimeValue

    return isinstance(value, RuntimeValue)


class IfExists(str, Enum):
    """What a download does with a file already at an image's name (see ``download_order``)."""

    SKIP = "skip"
    OVERWRITE = "overwrite"
    FAIL = "fail"


def validate_if_exists(value: Any) -> IfExists:
    """``if_exists`` checked once: a member comes back as it is, anything else is checked."""
    if isinstance(value, IfExists):
        return value
    try:
        return IfExists(value)
    except ValueError:
        allowed = ", ".join(m.value for m in IfExists)
        raise AutoenhanceValidationError(f"if_exists must be one of {allowed}, got {value!r}") from None


class DownloadRequest(NamedTuple):
    """A checked download: the API's spelling of the kind and the query parameters as strings."""

    kind: str
    query: dict[str, str]

    @property
    def buys_full_size(self) -> bool:
        """Whether this download may spend a credit (a full-size enhanced image)."""
        return self.kind == "enhanced" and self.query.get("preview") == "false"


def validate_per_page(value: Any) -> int:
    """``per_page`` for ``GET /v3/orders/``: at least 1, clamped to 15 (SDK 1.1.0's limit, ``le=15``)."""
    return min(to_int("per_page", value, 1), MAX_PER_PAGE)


def validate_download_params(kind: str, params: Mapping[str, Any]) -> DownloadRequest:
    """Check a download's kind and rendering parameters (``None`` = not sent)."""
    checked_kind = choice("download kind", kind, DOWNLOAD_KINDS)
    query: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name == "format":
            fmt = "jpeg" if str(value).strip().lower() in ("jpg", "jpeg") else value
            query[name] = choice("format", fmt, DOWNLOAD_FORMATS)
        elif name == "quality":
            query[name] = str(to_int("quality", value, 1, 90))
        elif name == "max_width":
            query[name] = str(to_int("max_width", value, 1))
        elif name == "scale":
            scale = to_float("scale", value, 0.0, 1.0)
            if scale <= 0:
                raise AutoenhanceValidationError(f"scale must be greater than 0 and at most 1, got {scale:g}")
            query[name] = f"{scale:g}"
        elif name in ("preview", "watermark", "finetune"):
            query[name] = "true" if to_bool(name, value) else "false"
        elif name == "size":
            query[name] = choice("size", value, LEGACY_SIZES)
        else:
            raise AutoenhanceValidationError(
                f"Unknown download parameter {name!r}; allowed: format, quality, max_width, scale, preview, "
                "watermark, finetune, size"
            )
    return DownloadRequest(checked_kind, query)


def validate_report(categories: Iterable[str], score: Any = None) -> tuple[list[str], int | None]:
    if isinstance(categories, str):
        categories = [categories]
    cats = [choice("report category", c, REPORT_CATEGORIES, "upper") for c in categories]
    if not cats:
        raise AutoenhanceValidationError("A report needs at least one category")
    return cats, None if score is None else to_int("score", score, 0, 5)
