"""The image types Autoenhance takes (``files.media``): content types, magic bytes, safe names, extensions."""

from __future__ import annotations

import pytest

from autoenhance_provider.files.media import (
    BRACKET_CONTENT_TYPE,
    MAX_NAME_CHARS,
    content_type_for,
    extension_for,
    safe_stem,
    sniff_matches,
)


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
