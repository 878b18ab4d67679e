"""Settings validation, download parameters, file types and the small transport helpers."""

from __future__ import annotations

import io
import logging

import pytest

from autoenhance_provider import __version__
from autoenhance_provider.exceptions import AutoenhanceSourceError, AutoenhanceValidationError
from autoenhance_provider.files import (
    BRACKET_CONTENT_TYPE,
    MAX_NAME_CHARS,
    DownloadTarget,
    content_type_for,
    extension_for,
    open_source,
    safe_stem,
    sniff_matches,
)
from autoenhance_provider.hooks.autoenhance import indirect_image_url
from autoenhance_provider.http import storage_error_text, user_agent
from autoenhance_provider.validation import (
    CLOUD_TYPES,
    ENHANCE_TYPES,
    KNOWN_SETTINGS,
    REPORT_CATEGORIES,
    WINDOW_PULL_TYPES,
    choice,
    to_bool,
    to_float,
    to_int,
    validate_download_params,
    validate_report,
    validate_settings,
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


# ------------------------------------------------------------------------------ settings
def test_validate_settings_normalises_every_kind_of_setting():
    clean = validate_settings(
        {
            "enhance_type": "Property_USA",
            "cloud_type": None,
            "window_pull_type": "only_windows",
            "enhance": "1",
            "window_pull": None,
            "auto_privacy": "true",
            "upscale": 0,
            "hdr": "false",
            "threesixty": True,
            "rating": "0",
            "finetune_settings": None,
            "restage": {"tvs": "BLACK_OUT"},
            "preset_id": 12,
            "ai_version": None,
        }
    )

    assert clean == {
        "enhance_type": "property_usa",
        "cloud_type": None,
        "window_pull_type": "ONLY_WINDOWS",
        "enhance": True,
        "window_pull": None,
        "auto_privacy": True,
        "upscale": False,
        "hdr": False,
        "threesixty": True,
        "rating": 0,
        "finetune_settings": None,
        "restage": {"tvs": "BLACK_OUT"},
        "preset_id": "12",
        "ai_version": None,
    }


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"enhance_type": "sepia"}, "allowed values: property, property_usa"),
        ({"enhance_type": None}, "Invalid enhance_type None"),
        ({"cloud_type": "rainbow"}, "allowed values: CLEAR, LOW_CLOUD, HIGH_CLOUD, LOW_CLOUD_LOW_SAT"),
        ({"window_pull_type": "all"}, "allowed values: NONE, ONLY_WINDOWS, WINDOWS_WITH_SKIES"),
        ({"sky_replacement": None}, "sky_replacement must be true or false"),
        ({"enhance": "definitely"}, "enhance must be true or false"),
        ({"rating": 9}, "rating must be between 0 and 5"),
        ({"restage": ["tvs"]}, "restage must be an object"),
    ],
)
def test_validate_settings_rejects_bad_values(settings, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        validate_settings(settings)


def test_unknown_settings_pass_through_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="autoenhance_provider.validation")

    assert validate_settings({"brand_new_flag": 3}, context="create_image") == {"brand_new_flag": 3}
    assert "brand_new_flag" in caplog.text
    assert "create_image" in caplog.text


def test_vocabularies_match_the_api_contract():
    assert set(WINDOW_PULL_TYPES) == {"NONE", "ONLY_WINDOWS", "WINDOWS_WITH_SKIES"}
    assert {"property", "property_usa", "warm", "neutral", "modern"} <= set(ENHANCE_TYPES)
    assert len(REPORT_CATEGORIES) == 20
    assert {"enhance_type", "sky_replacement", "privacy", "upscale", "rating", "metadata"} <= KNOWN_SETTINGS


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


# ------------------------------------------------------------------------------ media
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.JPG", "image/jpeg"),
        ("b.jpeg", "image/jpeg"),
        ("c.png", "image/png"),
        ("d.CR3", "image/x-canon-cr3"),
        ("e.dng", "image/x-adobe-dng"),
        ("f.heif", "image/heic"),
        ("dir.v2/g.tif", "image/tiff"),
        ("notes.txt", None),
        ("noext", None),
        ("archive.jpg.zip", None),
    ],
)
def test_content_type_for(name, expected):
    assert content_type_for(name) == expected


def test_bracket_content_type():
    assert BRACKET_CONTENT_TYPE == "application/octet-stream"


@pytest.mark.parametrize(
    ("content_type", "head", "ok"),
    [
        ("image/jpeg", b"\xff\xd8\xff\xe0rest", True),
        ("image/jpeg", b"\x89PNG\r\n\x1a\n", False),
        ("image/png", b"\x89PNG\r\n\x1a\nrest", True),
        ("image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),
        ("image/webp", b"RIFF\x00\x00\x00\x00AVI LIST", False),
        ("image/heic", b"\x00\x00\x00\x18ftypheic", True),
        ("image/avif", b"\x00\x00\x00\x18ftypavif", True),
        ("image/avif", b"\x00\x00\x00\x18ftypheic", False),
        ("image/x-canon-cr3", b"\x00\x00\x00\x18ftypcrx ", True),
        ("image/x-fuji-raf", b"FUJIFILMCCD-RAW 0201", True),
        ("image/tiff", b"II*\x00rest", True),
        ("image/x-adobe-dng", b"MM\x00*rest", True),
        ("image/x-nikon-nef", b"\xff\xd8\xff", False),
    ],
)
def test_sniff_matches(content_type, head, ok):
    assert sniff_matches(content_type, head) is ok


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("kitchen.jpg", "kitchen"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.png", "evil"),
        ("bad\x00name\x07.jpg", "badname"),
        ("what?*:<>|.jpg", "what______"),
        ("archive.tar", "archive.tar"),
        ("..", "fallback"),
        ("", "fallback"),
        ("   .  ", "fallback"),
    ],
)
def test_safe_stem_cannot_escape_the_folder(name, expected):
    assert safe_stem(name, "fallback") == expected


def test_safe_stem_length_is_bounded():
    stem = safe_stem("x" * 500 + ".jpg", "f")
    assert len(stem) == MAX_NAME_CHARS


def test_safe_stem_fallback_is_sanitised_too():
    assert safe_stem("", "../id") == ".._id"
    assert safe_stem("", "") == "image"


@pytest.mark.parametrize(
    ("kind", "fmt", "name", "ext"),
    [
        ("enhanced", "png", "a.jpg", ".png"),
        ("enhanced", "jpeg", "a.png", ".jpg"),
        ("enhanced", None, "a.png", ".jpg"),
        ("original", None, "a.PNG", ".png"),
        ("original", None, "a.jpeg", ".jpg"),
        ("original", None, "a.cr2", ".cr2"),
        ("original", None, "a.TIFF", ".tiff"),
        ("original", None, "notes.txt", ".jpg"),
        ("preview", "webp", "a", ".webp"),
    ],
)
def test_extension_for(kind, fmt, name, ext):
    assert extension_for(kind, fmt, name) == ext


# ------------------------------------------------------------------------------ transport helpers
def test_user_agent_names_the_provider_and_airflow():
    from importlib.metadata import version

    ua = user_agent()
    assert ua.startswith(f"airflow-provider-autoenhance/{__version__} ")
    assert f"apache-airflow/{version('apache-airflow')}" in ua
    assert "python-requests/" in ua
    assert f"python-httpx/{version('httpx')}" in user_agent("httpx")


@pytest.mark.parametrize(
    ("content_type", "body", "url"),
    [
        ("application/json", b'{"image_url": "https://x/a.jpg"}', "https://x/a.jpg"),
        ("application/json; charset=utf-8", b'{"imageSource": "https://x/b.jpg"}', "https://x/b.jpg"),
        ("application/json", b'{"url": "/relative.jpg"}', "/relative.jpg"),
        ("application/json", b'{"image_url": 5}', None),
        ("application/json", b"[1]", None),
        ("application/json", b"{broken", None),
        ("text/html", b"<p>Redirecting to <a href='https://x/c.jpg'>here</a>", "https://x/c.jpg"),
        ("text/html", b"<p>no link</p>", None),
        ("image/jpeg", b"\xff\xd8", None),
    ],
)
def test_indirect_image_url(content_type, body, url):
    assert indirect_image_url(content_type, body) == url


def test_storage_error_text():
    xml = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message><X>secret</X></Error>"
    assert storage_error_text(xml) == "AccessDenied: Request has expired"
    assert storage_error_text("<Error><Code>SlowDown</Code></Error>") == "SlowDown"
    assert storage_error_text("oops https://h/p?sig=SECRET") == "oops https://h/p?<redacted>"
    assert len(storage_error_text("y" * 1000)) == 200


def test_open_source_path_and_file_object(tmp_path):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"12345")
    with open_source(src) as (handle, size):
        assert size == 5
        assert handle.read() == b"12345"
    assert handle.closed  # a file the hook opened is closed again

    buf = io.BytesIO(b"abcdef")
    buf.seek(2)
    with open_source(buf) as (handle, size):
        assert handle is buf
        assert size == 4
    assert not buf.closed  # a caller's file object is left open


def test_open_source_unseekable_stream_has_unknown_size():
    class Stream:
        def read(self, n=-1):
            return b""

        def seekable(self):
            return False

    with open_source(Stream()) as (_, size):
        assert size is None


def test_open_source_errors(tmp_path):
    with (
        pytest.raises(AutoenhanceSourceError, match="Source file not found"),
        open_source(tmp_path / "missing.jpg"),
    ):
        pass
    with pytest.raises(AutoenhanceSourceError, match="Source file not found"), open_source(tmp_path):
        pass  # a directory is not a file


def test_download_target_describes_itself(tmp_path):
    assert DownloadTarget(tmp_path / "x.jpg").describe() == str(tmp_path / "x.jpg")
    assert DownloadTarget(io.BytesIO()).describe() is None
    assert DownloadTarget(io.BytesIO()).rewindable is True
