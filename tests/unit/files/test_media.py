"""File types, names and sources, and the small transport helpers (settings: test_validation.py)."""

from __future__ import annotations

import io

import pytest

from autoenhance_provider import __version__
from autoenhance_provider.exceptions import AutoenhanceSourceError
from autoenhance_provider.files.media import (
    BRACKET_CONTENT_TYPE,
    MAX_NAME_CHARS,
    content_type_for,
    extension_for,
    safe_stem,
    sniff_matches,
)
from autoenhance_provider.files.storage import open_source
from autoenhance_provider.files.targets import DownloadTarget
from autoenhance_provider.http.sync import storage_error_text
from autoenhance_provider.http.transport import user_agent
from autoenhance_provider.readings import indirect_image_url


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
    assert f"python-aiohttp/{version('aiohttp')}" in user_agent("aiohttp")


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
