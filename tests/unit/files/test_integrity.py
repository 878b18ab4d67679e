"""An image is named only when it is complete: the declared length, else the format's own end
(JPEG EOI, PNG IEND, WebP RIFF size, TIFF structure, ISO-BMFF boxes) or a checksum the server sends."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from PIL import Image

from autoenhance_provider.exceptions import AutoenhanceDownloadError
from autoenhance_provider.files.integrity import ImageCheck, declared_checksum, format_end_problem
from autoenhance_provider.files.targets import DownloadTarget
from support.api import api


def rendered(fmt: str, size=(64, 48), **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


FORMATS = {
    "jpeg": rendered("JPEG"),
    "png": rendered("PNG"),
    "webp": rendered("WEBP"),
    "tiff": rendered("TIFF"),
    "tiff-strips": rendered("TIFF", size=(300, 200), compression="tiff_lzw"),
}


def heic_like() -> bytes:
    """ISO-BMFF top-level boxes: ftyp, meta, mdat (what the end check reads)."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return (8 + len(payload)).to_bytes(4, "big") + kind + payload

    return (
        box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic")
        + box(b"meta", b"\x00" * 40)
        + box(b"mdat", b"\x11" * 500)
    )


def write(body: bytes, *, chunks: int = 7, **kwargs) -> bytes:
    """Write ``body`` (split in chunks, no Content-Length) through a DownloadTarget into a file object."""
    sink = io.BytesIO()
    step = max(1, len(body) // chunks)
    DownloadTarget(sink).write(iter([body[i : i + step] for i in range(0, len(body), step)]), **kwargs)
    return sink.getvalue()


@pytest.mark.parametrize("name", [*FORMATS, "heic"])
def test_a_whole_image_without_length_is_accepted(name, tmp_path):
    body = heic_like() if name == "heic" else FORMATS[name]
    assert write(body, content_type="image/x") == body
    target = DownloadTarget(tmp_path / "out.img")
    target.write(iter([body]), content_type=None)
    assert (tmp_path / "out.img").read_bytes() == body


@pytest.mark.parametrize("name", [*FORMATS, "heic"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_body_cut_short_without_length_is_never_named(name, keep, tmp_path):
    body = heic_like() if name == "heic" else FORMATS[name]
    cut = body[: max(40, int(len(body) * keep))]
    with pytest.raises(AutoenhanceDownloadError, match="cut short"):
        DownloadTarget(tmp_path / "out.img").write(iter([cut]))
    assert list(tmp_path.iterdir()) == []  # neither the name nor a temporary file
    with pytest.raises(AutoenhanceDownloadError, match="cut short"):
        write(cut)


def test_the_declared_length_decides_when_there_is_one():
    body = FORMATS["jpeg"]
    assert write(body, declared_length=len(body)) == body
    with pytest.raises(AutoenhanceDownloadError, match=f"got 100 of the {len(body)} bytes"):
        write(body[:100], declared_length=len(body))


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_a_checksum_header_proves_or_refuses_a_body_without_length(algorithm):
    body = FORMATS["tiff"]
    header = "x-amz-checksum-sha256" if algorithm == "sha256" else "Content-MD5"
    good = base64.b64encode(hashlib.new(algorithm, body).digest()).decode()
    checksum = declared_checksum({header.lower(): good} if algorithm == "sha256" else {"content-md5": good})
    assert checksum == (algorithm, hashlib.new(algorithm, body).hexdigest())
    assert write(body, checksum=checksum) == body
    changed = body[:-1] + bytes([body[-1] ^ 1])
    with pytest.raises(AutoenhanceDownloadError, match=f"{algorithm} does not match"):
        write(changed, checksum=checksum)


def test_an_unusable_checksum_header_is_ignored():
    assert declared_checksum({"content-md5": "not base64!"}) is None
    assert declared_checksum({"x-amz-checksum-sha256": base64.b64encode(b"short").decode()}) is None
    assert declared_checksum({}) is None


def test_trailing_padding_after_the_jpeg_end_is_tolerated():
    body = FORMATS["jpeg"] + b"\x00\x00\r\n"
    assert write(body) == body


def test_a_format_whose_end_cannot_be_checked_is_refused_without_length():
    raf = b"FUJIFILMCCD-RAW 0201FF383501" + b"\x00" * 200
    assert "cannot be verified" in (format_end_problem(raf[:32], raf[-64:], len(raf), None) or "")
    with pytest.raises(AutoenhanceDownloadError, match="cut short"):
        write(raf)
    assert write(raf, declared_length=len(raf)) == raf  # with a length it is fine


def test_a_tiff_into_an_unreadable_file_object_cannot_be_proven_without_length():
    class WriteOnly(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            return len(data)

    with pytest.raises(AutoenhanceDownloadError, match="cannot be checked here"):
        DownloadTarget(WriteOnly()).write(iter([FORMATS["tiff"]]))


def test_image_check_still_refuses_what_is_not_an_image():
    with pytest.raises(AutoenhanceDownloadError, match="not an image"):
        ImageCheck("image/jpeg", None).copy(iter([b"<html>" + b"x" * 64]), io.BytesIO())


# ------------------------------------------------------------------------- through the hook
def test_a_valid_jpeg_served_as_text_plain_is_refused(hook, requests_mock, tmp_path):
    """The Content-Type check on its own: the bytes are a real, whole JPEG."""
    body = FORMATS["jpeg"]
    requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        content=body,
        headers={"Content-Type": "text/plain", "Content-Length": str(len(body))},
    )

    with pytest.raises(AutoenhanceDownloadError, match="'text/plain', not an image"):
        hook.download_image("i-1", tmp_path / "i-1.jpg")

    assert list(tmp_path.iterdir()) == []


def test_a_jpeg_cut_short_without_length_is_retried_and_never_kept(hook, requests_mock, tmp_path):
    body = FORMATS["jpeg"]
    route = requests_mock.get(
        api("/v3/images/i-1/enhanced"),
        [
            {"content": body[: len(body) // 2], "headers": {"Content-Type": "image/jpeg"}},
            {"content": body, "headers": {"Content-Type": "image/jpeg"}},
        ],
    )

    hook.download_image("i-1", tmp_path / "i-1.jpg")

    assert route.call_count == 2
    assert (tmp_path / "i-1.jpg").read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i-1.jpg"]
