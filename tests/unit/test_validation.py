"""Input checks (``validation.py``): coercion, choices, per_page, download parameters, reports.

The enhancement settings and their version rules: tests/unit/test_settings.py.
"""

from __future__ import annotations

import pytest

from autoenhance_provider.exceptions import AutoenhanceValidationError
from autoenhance_provider.settings import CLOUD_TYPES, ENHANCE_TYPES
from autoenhance_provider.validation import (
    MAX_PER_PAGE,
    choice,
    to_bool,
    to_float,
    to_int,
    validate_download_params,
    validate_per_page,
    validate_report,
)


# ------------------------------------------------------------------------------ coercion
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        (" YES ", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("n", False),
        ("Off", False),
    ],
)
def test_to_bool_accepts_template_strings(value, expected):
    assert to_bool("flag", value) is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, None, 1.5, []])
def test_to_bool_rejects_everything_else(value):
    with pytest.raises(AutoenhanceValidationError, match="flag must be true or false"):
        to_bool("flag", value)


@pytest.mark.parametrize(("value", "expected"), [(3, 3), ("3", 3), (" 4 ", 4), (5.0, 5)])
def test_to_int(value, expected):
    assert to_int("n", value, 0, 10) == expected


@pytest.mark.parametrize("value", [True, "3.5", 3.5, "x", None, []])
def test_to_int_rejects_non_whole_numbers(value):
    with pytest.raises(AutoenhanceValidationError, match="n must be a whole number"):
        to_int("n", value)


def test_range_messages():
    with pytest.raises(AutoenhanceValidationError, match="n must be between 1 and 90, got 0"):
        to_int("n", 0, 1, 90)
    with pytest.raises(AutoenhanceValidationError, match="n must be at least 1, got -2"):
        to_int("n", -2, 1)
    with pytest.raises(AutoenhanceValidationError, match=r"x must be between 0\.0 and 1\.0, got 1\.5"):
        to_float("x", "1.5", 0.0, 1.0)
    with pytest.raises(AutoenhanceValidationError, match="x must be a number"):
        to_float("x", False)


def test_choice_normalises_case_and_lists_allowed_values():
    assert choice("enhance_type", " WARM ", ENHANCE_TYPES) == "warm"
    assert choice("cloud_type", "clear", CLOUD_TYPES, "upper") == "CLEAR"
    with pytest.raises(AutoenhanceValidationError) as info:
        choice("enhance_type", "sepia", ENHANCE_TYPES)
    assert str(info.value) == (
        "Invalid enhance_type 'sepia'; allowed values: "
        "property, property_usa, warm, neutral, modern, authentic"
    )


# ------------------------------------------------------------------------------ per_page
@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("15", 15), (MAX_PER_PAGE, 15), (16, 15), (100, 15)])
def test_per_page_is_clamped_to_the_sdk_limit(value, expected):
    assert validate_per_page(value) == expected


@pytest.mark.parametrize("value", [0, -1, "x"])
def test_per_page_below_one_or_not_a_number_is_refused(value):
    with pytest.raises(AutoenhanceValidationError, match="per_page"):
        validate_per_page(value)


# ------------------------------------------------------------------------------ download params
def test_validate_download_params_normalises():
    assert validate_download_params(
        "original",
        {
            "format": "jpg",
            "quality": 1,
            "max_width": "800",
            "scale": "1",
            "watermark": True,
            "finetune": "0",
            "size": "LARGE",
            "preview": None,
        },
    ).query == {
        "format": "jpeg",
        "quality": "1",
        "max_width": "800",
        "scale": "1",
        "watermark": "true",
        "finetune": "false",
        "size": "large",
    }


@pytest.mark.parametrize("quality", [1, 90])
def test_quality_bounds_are_inclusive(quality):
    assert validate_download_params("enhanced", {"quality": quality}).query == {"quality": str(quality)}


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("thumbnail", {}, "Invalid download kind 'thumbnail'; allowed values: original, enhanced, preview"),
        ("enhanced", {"quality": 0}, "quality must be between 1 and 90, got 0"),
        ("enhanced", {"quality": 91}, "quality must be between 1 and 90, got 91"),
        ("enhanced", {"quality": "high"}, "quality must be a whole number"),
        ("enhanced", {"scale": 0}, "scale must be greater than 0"),
        ("enhanced", {"scale": -0.5}, "scale must be between"),
        ("enhanced", {"format": "tiff"}, "Invalid format 'tiff'; allowed values: jpeg, png, webp"),
        ("enhanced", {"resolution": "4k"}, "Unknown download parameter 'resolution'"),
    ],
)
def test_validate_download_params_errors(kind, params, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        validate_download_params(kind, params)


def test_validate_report():
    assert validate_report("noise") == (["NOISE"], None)
    assert validate_report(["hdr", "OTHER"], "5") == (["HDR", "OTHER"], 5)
    with pytest.raises(AutoenhanceValidationError, match="at least one category"):
        validate_report([])
    with pytest.raises(AutoenhanceValidationError, match="Invalid report category 'UGLY'"):
        validate_report(["UGLY"])


def test_if_exists_is_checked_once_and_comes_back_as_its_own_type():
    from autoenhance_provider.validation import IfExists, validate_if_exists

    checked = validate_if_exists("fail")
    assert checked is IfExists.FAIL
    assert validate_if_exists(checked) is checked  # a checked value is not checked again
    assert checked == "fail"  # still the string users compare with
    with pytest.raises(
        AutoenhanceValidationError, match="if_exists must be one of skip, overwrite, fail, got 'Skip'"
    ):
        validate_if_exists("Skip")
