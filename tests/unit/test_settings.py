"""The enhancement settings (``settings.py``): normalised and checked against the rules of the pinned API
version, pass-through, process bodies.

The version rules are derived from the SDK 1.1.0 models and the reference (§4.1, §9, §13); the
sandbox's own rules (``autoenhance_sandbox.versions``) are an independent cross-check.
"""

from __future__ import annotations

import datetime as dt

import pytest

from autoenhance_provider.exceptions import AutoenhanceValidationError
from autoenhance_provider.settings import (
    AI_VERSIONS,
    CLOUD_TYPES,
    ENHANCE_TYPES,
    IMAGE_ONLY_SETTINGS,
    KNOWN_SETTINGS,
    NEWEST_KNOWN_VERSION,
    PASS_THROUGH,
    PROCESS_SETTINGS,
    SDK_AI_VERSIONS,
    WINDOW_PULL_TYPES,
    EnhancementSettings,
    ai_versions,
    cloud_types,
    enhance_types,
    parse_api_version,
    setting_names,
    settings_body,
    validate_process_settings,
    validate_settings,
)
from autoenhance_provider.validation import REPORT_CATEGORIES

SDK_PIN = "2025-05-08"  # what autoenhance 1.1.0 sends as x-api-version


# ------------------------------------------------------------------------------ settings
def test_validate_settings_normalises_every_kind_of_setting():
    clean = validate_settings(
        {
            "enhance_type": "Property_USA",
            "cloud_type": None,
            "window_pull_type": "only_windows",
            "enhance": "1",
            "window_pull": None,
            "privacy": "true",
            "upscale": 0,
            "hdr": "false",
            "threesixty": True,
            "rating": "0",
            "finetune_settings": None,
            "restage": {"tvs": "BLACK_OUT"},
            "preset_id": 12,
            "ai_version": "LATEST",
        }
    )

    assert clean == {
        "enhance_type": "property_usa",
        "cloud_type": None,
        "window_pull_type": "ONLY_WINDOWS",
        "enhance": True,
        "window_pull": None,
        "privacy": True,
        "upscale": False,
        "hdr": False,
        "threesixty": True,
        "rating": 0,
        "finetune_settings": None,
        "restage": {"tvs": "BLACK_OUT"},
        "preset_id": "12",
        "ai_version": "latest",
    }
    assert isinstance(clean, EnhancementSettings)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"enhance_type": "sepia"}, "allowed values: property, property_usa, warm, neutral, modern$"),
        ({"enhance_type": None}, "Invalid enhance_type None"),
        ({"cloud_type": "rainbow"}, "allowed values: CLEAR, LOW_CLOUD, HIGH_CLOUD, LOW_CLOUD_LOW_SAT$"),
        ({"window_pull_type": "all"}, "allowed values: NONE, ONLY_WINDOWS, WINDOWS_WITH_SKIES$"),
        ({"ai_version": "6.0"}, "Invalid ai_version '6.0'"),
        ({"sky_replacement": None}, "sky_replacement must be true or false"),
        ({"enhance": "definitely"}, "enhance must be true or false"),
        ({"rating": 9}, "rating must be between 0 and 5"),
        ({"restage": ["tvs"]}, "restage must be an object"),
    ],
)
def test_validate_settings_rejects_bad_values(settings, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        validate_settings(settings)


# ------------------------------------------------------------------------------ versions
@pytest.mark.parametrize(
    ("settings", "version", "accepted"),
    [
        ({"enhance_type": "authentic"}, "2024-10-01", True),
        ({"enhance_type": "authentic"}, "2024-12-31", True),
        ({"enhance_type": "authentic"}, "2025-01-01", False),
        ({"enhance_type": "authentic"}, SDK_PIN, False),
        ({"enhance_type": "authentic"}, None, False),
        ({"enhance_type": "modern"}, SDK_PIN, True),
        ({"enhance_type": "modern"}, None, True),
        ({"cloud_type": "LOW_CLOUD_LOW_SAT"}, "2025-12-31", False),
        ({"cloud_type": "LOW_CLOUD_LOW_SAT"}, "2026-01-01", True),
        ({"cloud_type": "LOW_CLOUD_LOW_SAT"}, None, True),
        ({"cloud_type": "HIGH_CLOUD"}, "2024-10-01", True),
        ({"window_pull_type": "NONE"}, "2025-08-30", False),
        ({"window_pull_type": "NONE"}, "2025-08-31", True),
        ({"window_pull_type": "WINDOWS_WITH_SKIES"}, None, True),
        ({"window_pull": True}, SDK_PIN, True),
        ({"ai_version": "latest"}, SDK_PIN, False),
        ({"ai_version": "stable"}, "2025-12-31", False),
        ({"ai_version": "beta"}, "2026-01-01", True),
        ({"ai_version": "5.3"}, SDK_PIN, False),
        ({"ai_version": "5.3"}, "2026-01-01", True),
        ({"ai_version": "5.x"}, SDK_PIN, True),
        ({"ai_version": "dev"}, SDK_PIN, True),
        ({"ai_version": "3.0"}, "2024-10-01", True),
        ({"ai_version": "latest"}, None, True),
    ],
)
def test_rules_follow_the_pinned_api_version(settings, version, accepted):
    if accepted:
        assert validate_settings(settings, api_version=version) == settings
    else:
        with pytest.raises(AutoenhanceValidationError):
            validate_settings(settings, api_version=version)


def test_a_value_too_new_names_the_version_it_needs_and_the_way_out():
    with pytest.raises(AutoenhanceValidationError) as info:
        validate_settings({"ai_version": "latest"}, api_version=SDK_PIN)
    assert str(info.value) == (
        "Invalid ai_version 'latest' for API version 2025-05-08; allowed values: dev, 5.x, 5.0, 4.x, 4.7, "
        "4.5, 4.4, 4.3, 4.2, 4.1, 4.0, 3.x, 3.5, 3.4, 3.3, 3.2, 3.1, 3.0; 'latest' needs API version "
        "2026-01-01 or later (or send it under settings['pass_through'])"
    )


def test_authentic_is_refused_with_the_version_that_dropped_it():
    with pytest.raises(
        AutoenhanceValidationError, match="'authentic' exists only before API version 2025-01-01"
    ):
        validate_settings({"enhance_type": "authentic"}, api_version=SDK_PIN)


def test_a_setting_too_new_is_refused_with_its_version():
    with pytest.raises(AutoenhanceValidationError) as info:
        validate_settings({"window_pull_type": "NONE"}, api_version=SDK_PIN, context="create_image")
    assert str(info.value) == (
        "window_pull_type needs API version 2025-08-31 or later; create_image uses API version 2025-05-08. "
        "Pin a newer api_version on the connection. To send it anyway, put it under "
        "settings['pass_through']."
    )


def test_unknown_names_are_refused_with_the_allowed_list():
    with pytest.raises(AutoenhanceValidationError) as info:
        validate_settings({"brand_new_flag": 3}, api_version=SDK_PIN, context="create_image")
    assert str(info.value) == (
        "Unknown Autoenhance setting 'brand_new_flag' (create_image); settings API version 2025-05-08 "
        "accepts: ai_version, cloud_type, enhance, enhance_type, finetune_settings, hdr, lens_correction, "
        "metadata, preset_id, privacy, rating, restage, sky_replacement, threesixty, upscale, "
        "vertical_correction, window_pull. To send it anyway, put it under settings['pass_through']."
    )


def test_without_a_pinned_version_the_newest_rules_apply_and_the_message_says_so():
    with pytest.raises(AutoenhanceValidationError) as info:
        validate_settings({"colour": "red"})
    message = str(info.value)
    assert "newest API version this provider knows (2026-01-01" in message
    assert "the account's default version applies" in message
    assert "window_pull_type" in message  # the newest version knows it
    assert dt.date(2026, 1, 1) == NEWEST_KNOWN_VERSION


def test_auto_privacy_is_refused_and_points_at_privacy():
    with pytest.raises(AutoenhanceValidationError) as info:
        validate_settings({"auto_privacy": True})
    assert str(info.value) == (
        "Unknown Autoenhance setting 'auto_privacy' (enhancement settings): use privacy=True (blurs faces "
        "and licence plates); 'auto_privacy' is not an API field."
    )
    assert "auto_privacy" not in KNOWN_SETTINGS


def test_old_call_signatures_still_work():
    assert validate_settings({"enhance_type": "warm"}) == {"enhance_type": "warm"}
    assert validate_settings({"enhance_type": "warm"}, context="process_order") == {"enhance_type": "warm"}


def test_settings_checked_for_newest_rules_are_checked_again_for_a_pinned_version():
    # Operators check at parse time (no connection yet: newest rules); the hook knows the pin.
    parse_time = validate_settings({"window_pull_type": "NONE"})
    assert validate_settings(parse_time) is parse_time  # same rules: not checked twice
    with pytest.raises(AutoenhanceValidationError, match="needs API version 2025-08-31"):
        validate_settings(parse_time, api_version=SDK_PIN)


def test_image_settings_are_checked_again_for_a_process_body():
    image = validate_settings({"threesixty": True})
    with pytest.raises(AutoenhanceValidationError, match="threesixty applies to single images"):
        validate_process_settings(image)


@pytest.mark.parametrize("value", ["2025-13-01", "yesterday", "05/08/2025"])
def test_a_malformed_api_version_is_refused(value):
    with pytest.raises(AutoenhanceValidationError, match="api_version must look like YYYY-MM-DD"):
        validate_settings({}, api_version=value)


def test_api_version_parsing():
    assert parse_api_version(None) is None
    assert parse_api_version(" ") is None
    assert parse_api_version("2025-05-08") == dt.date(2025, 5, 8)
    assert parse_api_version(dt.date(2024, 1, 2)) == dt.date(2024, 1, 2)


# ------------------------------------------------------------------------------ pass-through
def test_pass_through_is_sent_unchecked_and_logged(log_capture):
    clean = validate_settings(
        {"enhance_type": "warm", PASS_THROUGH: {"window_pull_style": "SOFT", "ai_version": "latest"}},
        api_version=SDK_PIN,
        context="create_image",
    )

    assert clean.body() == {"enhance_type": "warm", "window_pull_style": "SOFT", "ai_version": "latest"}
    assert settings_body(clean) == clean.body()
    text = log_capture.text()
    assert "ai_version, window_pull_style" in text
    assert "create_image" in text


def test_pass_through_survives_being_checked_again_from_a_plain_copy():
    # Airflow renders templated settings into plain dicts; the hook re-spreads them as **kwargs.
    first = validate_settings({"privacy": True, PASS_THROUGH: {"new_flag": 1}})
    again = validate_settings(dict(first), api_version=SDK_PIN)
    assert again.body() == {"privacy": True, "new_flag": 1}
    assert settings_body({"privacy": True, PASS_THROUGH: {"new_flag": 1}}) == {"privacy": True, "new_flag": 1}


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({PASS_THROUGH: ["new_flag"]}, "must be a dict of API field names"),
        ({PASS_THROUGH: {"": 1}}, "must be a dict of API field names"),
        ({"privacy": True, PASS_THROUGH: {"privacy": False}}, "privacy given both as a setting and under"),
    ],
)
def test_pass_through_mistakes_are_refused(settings, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        validate_settings(settings)


def test_an_empty_pass_through_sends_nothing():
    assert validate_settings({PASS_THROUGH: {}}).body() == {}


# ------------------------------------------------------------------------------ process bodies
@pytest.mark.parametrize("name", sorted(IMAGE_ONLY_SETTINGS))
def test_process_bodies_refuse_image_only_settings(name):
    value = {"threesixty": True, "hdr": True, "rating": 3, "preset_id": "p"}.get(name, {})
    validate_settings({name: value})  # fine for an image
    with pytest.raises(AutoenhanceValidationError) as info:
        validate_process_settings({name: value}, api_version=SDK_PIN)
    assert str(info.value) == (
        f"{name} applies to single images, not to an HDR process body (process_order); a process body "
        "accepts: ai_version, cloud_type, enhance, enhance_type, lens_correction, privacy, sky_replacement, "
        "upscale, vertical_correction, window_pull. To send it anyway, put it under settings['pass_through']."
    )
    assert {"threesixty", "metadata", "preset_id", "restage", "finetune_settings", "hdr", "rating"} == set(
        IMAGE_ONLY_SETTINGS
    )


def test_process_bodies_accept_the_process_settings_and_are_version_aware():
    every = {
        "ai_version": "4.x",
        "cloud_type": "clear",
        "enhance": True,
        "enhance_type": "neutral",
        "lens_correction": False,
        "privacy": None,
        "sky_replacement": "yes",
        "upscale": False,
        "vertical_correction": True,
        "window_pull": True,
    }
    clean = validate_process_settings(every, api_version=SDK_PIN)
    assert set(clean) == set(PROCESS_SETTINGS)
    assert clean["cloud_type"] == "CLEAR"
    assert clean["sky_replacement"] is True
    with pytest.raises(AutoenhanceValidationError, match="needs API version 2025-08-31"):
        validate_process_settings({"window_pull_type": "NONE"}, api_version=SDK_PIN)
    assert validate_process_settings({"window_pull_type": "NONE"}, api_version="2025-08-31") == {
        "window_pull_type": "NONE"
    }


# ------------------------------------------------------------------------------ the SDK as oracle
def _sdk_accepts(model: type, **fields) -> bool:
    try:
        model(**fields)
    except ValueError:  # pydantic's ValidationError is a ValueError
        return False
    return True


def test_at_the_sdk_pin_every_value_allowed_is_one_the_sdk_accepts_and_nothing_more():
    from autoenhance.models import ImageIn, OrderHDRProcessIn

    for model, extra in ((ImageIn, {"image_name": "a.jpg"}), (OrderHDRProcessIn, {})):
        for name, allowed, every in (
            ("enhance_type", enhance_types(SDK_PIN), ENHANCE_TYPES),
            ("cloud_type", cloud_types(SDK_PIN), CLOUD_TYPES),
            ("ai_version", ai_versions(SDK_PIN), AI_VERSIONS),
        ):
            for value in every:
                assert _sdk_accepts(model, **extra, **{name: value}) is (value in allowed), (
                    model,
                    name,
                    value,
                )
    assert ai_versions(SDK_PIN) == SDK_AI_VERSIONS


def test_setting_names_at_the_sdk_pin_match_the_sdk_models():
    from autoenhance.models import ImageIn, OrderHDRProcessIn

    process_fields = set(OrderHDRProcessIn.model_fields) - {"images", "number_of_brackets_per_image"}
    assert set(setting_names(SDK_PIN, body="process")) == process_fields
    image_fields = set(ImageIn.model_fields) - {"image_name", "order_id", "additional_properties"}
    # The documented extras beyond SDK 1.1.0's ImageIn: hdr (SDK-2410/2502), preset_id and restage (DOCS).
    assert set(setting_names(SDK_PIN)) - image_fields == {"hdr", "preset_id", "restage"}
    assert image_fields <= set(setting_names(SDK_PIN))


@pytest.mark.parametrize(
    "version",
    [
        None,
        "2024-10-01",
        "2024-12-31",
        "2025-01-01",
        SDK_PIN,
        "2025-08-30",
        "2025-08-31",
        "2025-12-31",
        "2026-01-01",
    ],
)
def test_the_rules_agree_with_the_sandbox(version):
    """Cross-check with the sandbox's independent implementation (``autoenhance_sandbox.versions``)."""
    from autoenhance_sandbox import schemas
    from autoenhance_sandbox import versions as sandbox

    pinned = sandbox.parse_api_version(version)
    assert set(enhance_types(version)) == set(sandbox.enhance_types(pinned))
    assert set(cloud_types(version)) == set(sandbox.cloud_types(pinned))
    assert set(ai_versions(version)) == set(sandbox.ai_versions(pinned))
    window = {"window_pull_type"} if sandbox.has_window_pull_type(pinned) else set()
    grouping = {"images", "number_of_brackets_per_image"}
    assert set(setting_names(version, body="process")) == (schemas.PROCESS_KEYS - grouping) | window
    not_settings = {"image_name", "order_id", "image_id", "contentType", "content_type"}
    assert set(setting_names(version)) == (schemas.IMAGE_KEYS - not_settings) | window


def test_vocabularies_match_the_api_contract():
    assert set(WINDOW_PULL_TYPES) == {"NONE", "ONLY_WINDOWS", "WINDOWS_WITH_SKIES"}
    assert {"property", "property_usa", "warm", "neutral", "modern"} <= set(ENHANCE_TYPES)
    assert len(REPORT_CATEGORIES) == 20
    assert {"enhance_type", "sky_replacement", "privacy", "upscale", "rating", "metadata"} <= KNOWN_SETTINGS
