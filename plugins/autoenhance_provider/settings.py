"""The enhancement settings contract, per API version: which names and values each version takes.

The API rejects a setting it does not know with a 422 only after a request (for uploads, after a
file has been read); checking first gives a clearer error, sooner, naming what the pinned
version accepts. The dated rule changes and their sources are at the top; checked settings come
back as :class:`EnhancementSettings`, so they are never checked twice. docs/contract.md
("Settings and API versions") is the prose of this module.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from autoenhance_provider.exceptions import AutoenhanceValidationError
from autoenhance_provider.validation import to_bool, to_int

log = logging.getLogger(__name__)

#: API versions where the settings contract changes (docs/contract.md, "Settings and API versions").
#: Sources: reference §9 and §13 #11/#12/#13, the SDK 1.1.0 models (pinned 2025-05-08).
AUTHENTIC_REMOVED = dt.date(2025, 1, 1)  # SDK-2410 knew "authentic"; the SDK pinned 2025-01-01 does not
WINDOW_PULL_TYPES_ADDED = dt.date(2025, 8, 31)  # DOCS /api-versions "Window Pull Types"
AI_ALIASES_ADDED = dt.date(2026, 1, 1)  # DOCS /ai-version: latest/stable/beta, 5.1-5.3; LOW_CLOUD_LOW_SAT
#: The rules used when the connection pins no version (the account's default version applies then).
NEWEST_KNOWN_VERSION = AI_ALIASES_ADDED

_BASE_ENHANCE_TYPES = ("property", "property_usa", "warm", "neutral", "modern")  # SDK 1.1.0 ImageIn
_BASE_CLOUD_TYPES = ("CLEAR", "LOW_CLOUD", "HIGH_CLOUD")  # SDK 1.1.0 ImageIn
#: ``ai_version`` enum of SDK 1.1.0 (``ImageIn``, ``OrderHDRProcessIn``).
SDK_AI_VERSIONS = (
    "dev", "5.x", "5.0", "4.x", "4.7", "4.5", "4.4", "4.3", "4.2", "4.1", "4.0",
    "3.x", "3.5", "3.4", "3.3", "3.2", "3.1", "3.0",
)  # fmt: skip
#: From 2026-01-01: the aliases and the numbered releases up to 5.3, the last one (DOCS /ai-version).
NEW_AI_VERSIONS = ("latest", "stable", "beta", "5.1", "5.2", "5.3")

#: Every value any API version knows (the per-version lists come from the functions below).
ENHANCE_TYPES = (*_BASE_ENHANCE_TYPES, "authentic")
CLOUD_TYPES = (*_BASE_CLOUD_TYPES, "LOW_CLOUD_LOW_SAT")
WINDOW_PULL_TYPES = ("NONE", "ONLY_WINDOWS", "WINDOWS_WITH_SKIES")
AI_VERSIONS = (*SDK_AI_VERSIONS, *NEW_AI_VERSIONS)

#: The settings key whose dict is sent unchecked (the explicit opt-in for what this provider
#: does not know yet); see :func:`validate_settings`.
PASS_THROUGH = "pass_through"  # noqa: S105 - a settings key, not a secret

#: Settings of an HDR ``/process`` body (SDK 1.1.0 ``OrderHDRProcessIn``, without the grouping keys).
PROCESS_SETTINGS = frozenset(
    {
        "ai_version",
        "cloud_type",
        "enhance",
        "enhance_type",
        "lens_correction",
        "privacy",
        "sky_replacement",
        "upscale",
        "vertical_correction",
        "window_pull",
    }
)
#: Settings only an image body (create, reprocess) takes: SDK 1.1.0 ``ImageIn`` plus ``hdr``
#: (SDK-2410/2502) and ``preset_id``/``restage`` (DOCS create spec).
IMAGE_ONLY_SETTINGS = frozenset(
    {"finetune_settings", "metadata", "rating", "threesixty", "hdr", "preset_id", "restage"}
)
#: Settings that exist only from an API version on.
VERSIONED_SETTINGS: dict[str, dt.date] = {"window_pull_type": WINDOW_PULL_TYPES_ADDED}
#: Names people use that are not settings, with what to use instead.
MISNAMED_SETTINGS = {
    "auto_privacy": "use privacy=True (blurs faces and licence plates); 'auto_privacy' is not an API field",
}

#: enum settings: name -> (the case the API uses, nullable)
_ENUM_SETTINGS: dict[str, tuple[str, bool]] = {
    "enhance_type": ("lower", False),
    "cloud_type": ("upper", True),
    "window_pull_type": ("upper", True),
    "ai_version": ("lower", True),
}
_BOOL_SETTINGS = frozenset(
    {
        "enhance",
        "sky_replacement",
        "vertical_correction",
        "lens_correction",
        "window_pull",
        "privacy",
        "upscale",
        "threesixty",
        "hdr",
    }
)
_NULLABLE_BOOL_SETTINGS = frozenset({"window_pull", "privacy"})
_OBJECT_SETTINGS = frozenset({"metadata", "finetune_settings", "restage"})
_STRING_SETTINGS = frozenset({"preset_id"})
_INT_SETTINGS = {"rating": (0, 5)}
#: Every setting name some API version knows in an image body.
KNOWN_SETTINGS = frozenset(PROCESS_SETTINGS | IMAGE_ONLY_SETTINGS | set(VERSIONED_SETTINGS))


class EnhancementSettings(dict[str, Any]):
    """Settings already checked by :func:`validate_settings` (not checked again for the same rules).

    ``rules`` records what they were checked for: the API version whose rules applied and the
    body (``"image"`` or ``"process"``). A copy made by Airflow (rendering, serialisation) is a
    plain dict again and is checked again. Keys passed through unchecked stay nested under
    ``pass_through``; :meth:`body` is what goes on the wire.
    """

    rules: tuple[dt.date, str] | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body fields: the checked settings plus the pass-through ones, flattened."""
        fields = {k: v for k, v in self.items() if k != PASS_THROUGH}
        fields.update(self.get(PASS_THROUGH) or {})
        return fields


def settings_body(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The wire form of checked settings (see :meth:`EnhancementSettings.body`)."""
    if isinstance(settings, EnhancementSettings):
        return settings.body()
    return EnhancementSettings(settings).body()


# ------------------------------------------------------------------------------ API versions
def parse_api_version(api_version: str | dt.date | None) -> dt.date | None:
    """``"2025-05-08"`` (or a date) -> date; ``None``/empty -> ``None`` (no pinned version)."""
    if api_version is None or isinstance(api_version, dt.date):
        return api_version
    text = str(api_version).strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise AutoenhanceValidationError(
            f"api_version must look like YYYY-MM-DD, got {api_version!r}"
        ) from None


def rules_version(api_version: str | dt.date | None) -> dt.date:
    """The version whose rules apply: the pinned one, else the newest this provider knows."""
    return parse_api_version(api_version) or NEWEST_KNOWN_VERSION


def enhance_types(api_version: str | dt.date | None = None) -> tuple[str, ...]:
    """``enhance_type`` values of a version: ``authentic`` only before 2025-01-01."""
    if rules_version(api_version) < AUTHENTIC_REMOVED:
        return (*_BASE_ENHANCE_TYPES, "authentic")
    return _BASE_ENHANCE_TYPES


def cloud_types(api_version: str | dt.date | None = None) -> tuple[str, ...]:
    """``cloud_type`` values of a version: ``LOW_CLOUD_LOW_SAT`` only from 2026-01-01."""
    if rules_version(api_version) >= AI_ALIASES_ADDED:
        return (*_BASE_CLOUD_TYPES, "LOW_CLOUD_LOW_SAT")
    return _BASE_CLOUD_TYPES


def ai_versions(api_version: str | dt.date | None = None) -> tuple[str, ...]:
    """``ai_version`` values of a version: the SDK enum, plus the aliases from 2026-01-01."""
    return AI_VERSIONS if rules_version(api_version) >= AI_ALIASES_ADDED else SDK_AI_VERSIONS


def setting_names(api_version: str | dt.date | None = None, *, body: str = "image") -> tuple[str, ...]:
    """The setting names an image (create/reprocess) or a process body accepts in a version."""
    version = rules_version(api_version)
    names = set(PROCESS_SETTINGS) if body == "process" else set(PROCESS_SETTINGS | IMAGE_ONLY_SETTINGS)
    names |= {name for name, since in VERSIONED_SETTINGS.items() if version >= since}
    return tuple(sorted(names))


def _allowed_values(name: str, version: dt.date) -> tuple[str, ...]:
    if name == "enhance_type":
        return enhance_types(version)
    if name == "cloud_type":
        return cloud_types(version)
    if name == "ai_version":
        return ai_versions(version)
    return WINDOW_PULL_TYPES


def _describe(version: dt.date, pinned: bool) -> str:
    if pinned:
        return f"API version {version.isoformat()}"
    return (
        f"the newest API version this provider knows ({version.isoformat()}; the connection pins no "
        "api_version, so the account's default version applies at the API)"
    )


def _version_choice(name: str, value: Any, version: dt.date, pinned: bool) -> str:
    """An enum value normalised to the API's case and checked against what ``version`` knows."""
    case, _ = _ENUM_SETTINGS[name]
    allowed = _allowed_values(name, version)
    text = str(value).strip()
    text = text.lower() if case == "lower" else text.upper()
    if text in allowed:
        return text
    hint = ""
    if text == "authentic" and name == "enhance_type":
        hint = f"; 'authentic' exists only before API version {AUTHENTIC_REMOVED.isoformat()}"
    elif (name == "cloud_type" and text == "LOW_CLOUD_LOW_SAT") or (
        name == "ai_version" and text in NEW_AI_VERSIONS
    ):
        hint = f"; {text!r} needs API version {AI_ALIASES_ADDED.isoformat()} or later"
    if hint:
        hint += f" (or send it under settings[{PASS_THROUGH!r}])"
    raise AutoenhanceValidationError(
        f"Invalid {name} {value!r} for {_describe(version, pinned)}; allowed values: "
        f"{', '.join(allowed)}{hint}"
    )


def _check_pass_through(value: Any, checked: Mapping[str, Any], context: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k.strip() for k in value):
        raise AutoenhanceValidationError(
            f"settings[{PASS_THROUGH!r}] must be a dict of API field names to values ({context})"
        )
    twice = sorted(set(value) & set(checked))
    if twice:
        raise AutoenhanceValidationError(
            f"{', '.join(twice)} given both as a setting and under settings[{PASS_THROUGH!r}] ({context})"
        )
    if value:
        log.warning(
            "Sending Autoenhance fields %s unchecked (settings[%r], %s)",
            ", ".join(sorted(value)),
            PASS_THROUGH,
            context,
        )
    return dict(value)


def _check_value(name: str, value: Any, version: dt.date, pinned: bool) -> Any:
    if name in _ENUM_SETTINGS:
        _, nullable = _ENUM_SETTINGS[name]
        if value is None:
            if nullable:
                return None
            raise AutoenhanceValidationError(
                f"Invalid {name} None; allowed values: {', '.join(_allowed_values(name, version))}"
            )
        return _version_choice(name, value, version, pinned)
    if name in _BOOL_SETTINGS:
        return None if value is None and name in _NULLABLE_BOOL_SETTINGS else to_bool(name, value)
    if name in _INT_SETTINGS:
        return to_int(name, value, *_INT_SETTINGS[name])
    if name in _OBJECT_SETTINGS:
        if value is not None and not isinstance(value, dict):
            raise AutoenhanceValidationError(f"{name} must be an object (dict), got {type(value).__name__}")
        return value
    return None if value is None else str(value)  # _STRING_SETTINGS


def _validate(
    settings: Mapping[str, Any], api_version: str | dt.date | None, context: str, body: str
) -> EnhancementSettings:
    pinned = parse_api_version(api_version) is not None
    version = rules_version(api_version)
    if isinstance(settings, EnhancementSettings) and settings.rules == (version, body):
        return settings
    if not isinstance(settings, Mapping):
        raise AutoenhanceValidationError(
            f"settings must be a dict, got {type(settings).__name__} ({context})"
        )
    allowed = setting_names(version, body=body)
    clean = EnhancementSettings()
    for name, value in settings.items():
        if name == PASS_THROUGH:
            continue
        if name not in allowed:
            raise AutoenhanceValidationError(_refusal(str(name), version, pinned, body, allowed, context))
        clean[name] = _check_value(name, value, version, pinned)
    if settings.get(PASS_THROUGH):
        clean[PASS_THROUGH] = _check_pass_through(settings[PASS_THROUGH], clean, context)
    clean.rules = (version, body)
    return clean


def _refusal(
    name: str, version: dt.date, pinned: bool, body: str, allowed: tuple[str, ...], context: str
) -> str:
    escape = f"To send it anyway, put it under settings[{PASS_THROUGH!r}]."
    if name in MISNAMED_SETTINGS:
        return f"Unknown Autoenhance setting {name!r} ({context}): {MISNAMED_SETTINGS[name]}."
    if name in IMAGE_ONLY_SETTINGS and body == "process":
        return (
            f"{name} applies to single images, not to an HDR process body ({context}); a process body "
            f"accepts: {', '.join(allowed)}. {escape}"
        )
    if name in VERSIONED_SETTINGS:
        return (
            f"{name} needs API version {VERSIONED_SETTINGS[name].isoformat()} or later; {context} uses "
            f"{_describe(version, pinned)}. Pin a newer api_version on the connection. {escape}"
        )
    return (
        f"Unknown Autoenhance setting {name!r} ({context}); settings {_describe(version, pinned)} "
        f"accepts: {', '.join(allowed)}. {escape}"
    )


def validate_settings(
    settings: Mapping[str, Any],
    *,
    api_version: str | dt.date | None = None,
    context: str = "enhancement settings",
) -> EnhancementSettings:
    """Check and normalise the settings of an image body (create, reprocess) for an API version.

    Names and values the version does not know are refused with the allowed list, never dropped
    or sent to earn a 422. ``settings["pass_through"]`` (a dict) is the explicit opt-in for
    fields this provider does not know: they are sent as given. ``api_version=None`` (the
    connection pins none) checks against the newest version known here.
    """
    return _validate(settings, api_version, context, "image")


def validate_process_settings(
    settings: Mapping[str, Any],
    *,
    api_version: str | dt.date | None = None,
    context: str = "process_order",
) -> EnhancementSettings:
    """Like :func:`validate_settings` for ``POST /v3/orders/{id}/process`` (``OrderHDRProcessIn``).

    Image-only settings (``threesixty``, ``metadata``, ``rating``, ...) are refused: the API
    answers 422 ``Unknown field.`` to them in a process body. The grouping keys
    (``number_of_brackets_per_image``, ``images``) are the hook's, not settings.
    """
    return _validate(settings, api_version, context, "process")


#: One date inside each span of API versions whose setting rules differ (oldest first).
RULE_EPOCHS = (
    AUTHENTIC_REMOVED - dt.timedelta(days=1),
    AUTHENTIC_REMOVED,
    WINDOW_PULL_TYPES_ADDED,
    AI_ALIASES_ADDED,
)


def check_settings_for_some_version(settings: Mapping[str, Any], *, body: str = "image") -> None:
    """The DAG-parse-time check: refuse only settings that no API version known here accepts.

    At parse time the connection (and so its pinned ``api_version``) is not known: a typo fails
    the DAG import, while a value that only some versions accept (``authentic``, ``latest``…)
    waits for the check against the pinned version that the hook makes at run time.
    """
    error: AutoenhanceValidationError | None = None
    for version in RULE_EPOCHS:
        try:
            _validate(settings, version, "checked at DAG-parse time against every known API version", body)
            return
        except AutoenhanceValidationError as exc:
            error = exc
    assert error is not None
    raise error
