"""4. Downloads are verified: only image bytes, complete, ever reach the destination.

"Nothing written" means the destination folder holds no file at all afterwards: not the target,
not a leftover temporary file.
"""

from __future__ import annotations

import pytest
from servers import (
    S3_ERROR_XML,
    Request,
    describe,
    done_order,
    execute_bounded,
    fast_hook,
    fast_operator,
    head,
    json_reply,
    reply,
    run_bounded,
    truncated,
)

from autoenhance_provider.exceptions import AutoenhanceError
from support.images import jpeg_bytes

GUARD = 15
HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"

NOT_AN_IMAGE = {
    "html": ("text/html; charset=utf-8", HTML),
    "html-upper-case-type": ("TEXT/HTML", HTML),
    "plain-text": ("text/plain", b"Service temporarily unavailable"),
    "s3-xml-error": ("application/xml", S3_ERROR_XML.encode()),
    "empty-jpeg": ("image/jpeg", b""),
    "html-labelled-jpeg": ("image/jpeg", HTML),
    "json-error-labelled-jpeg": ("image/jpeg", b'{"message": "Image not found"}'),
}


def _files(folder) -> list[str]:
    """Every file left in ``folder`` but the manifest that records the verified downloads."""
    from autoenhance_provider.files.manifest import MANIFEST_NAME

    return sorted(p.name for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def _download_into_a_new_folder(conn: str, tmp_path):
    """Download ``img-1`` as ``room.jpg`` into a new, empty folder: the outcome and the folder."""
    folder = tmp_path / "out"
    folder.mkdir()
    return run_bounded(lambda: fast_hook(conn).download_image("img-1", folder / "room.jpg"), GUARD), folder


def _assert_failed_writing_nothing(outcome, folder) -> None:
    assert outcome.finished, describe(outcome)
    assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
    assert _files(folder) == [], f"something was written: {_files(folder)}"


class TestDownloadsVerified:
    @pytest.mark.parametrize("case", sorted(NOT_AN_IMAGE))
    def test_a_200_that_is_not_an_image_is_an_error(self, serve, connect, tmp_path, case) -> None:
        content_type, body = NOT_AN_IMAGE[case]
        server = serve(lambda r: reply(200, body, content_type))
        _assert_failed_writing_nothing(*_download_into_a_new_folder(connect(server), tmp_path))

    @pytest.mark.parametrize("content_type", ["IMAGE/JPEG", "Image/Jpeg; charset=binary", "image/jpeg"])
    def test_content_type_check_is_case_insensitive(self, serve, connect, tmp_path, content_type) -> None:
        image = jpeg_bytes()
        server = serve(lambda r: reply(200, image, content_type))
        conn = connect(server)
        target = tmp_path / "room.jpg"
        outcome = run_bounded(lambda: fast_hook(conn).download_image("img-1", target), GUARD)
        assert outcome.finished, describe(outcome)
        assert outcome.error is None, describe(outcome)
        assert target.read_bytes() == image

    def test_body_cut_short_writes_nothing(self, serve, connect, tmp_path) -> None:
        image = jpeg_bytes()
        server = serve(lambda r: truncated(len(image) + 5000, image[:300]))
        _assert_failed_writing_nothing(*_download_into_a_new_folder(connect(server), tmp_path))

    def test_body_cut_short_into_a_file_object_is_an_error(self, serve, connect) -> None:
        import io

        image = jpeg_bytes()
        server = serve(lambda r: truncated(len(image) + 5000, image[:300]))
        conn = connect(server)
        sink = io.BytesIO()
        outcome = run_bounded(lambda: fast_hook(conn).download_image("img-1", sink), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)

    @pytest.mark.parametrize("damage", ["zero-byte", "truncated"])
    @pytest.mark.parametrize("recorded", [False, True], ids=["unrecorded", "recorded"])
    def test_operator_never_keeps_a_damaged_file(self, serve, connect, tmp_path, damage, recorded) -> None:
        """A damaged file under an image's name is never taken as downloaded: by default the task
        refuses to replace it (it cannot prove it wrote those bytes); ``overwrite`` repairs it."""
        import shutil

        from autoenhance_provider.exceptions import AutoenhanceValidationError
        from autoenhance_provider.files.manifest import MANIFEST_NAME
        from autoenhance_provider.operators.download import DownloadImagesOperator

        image = jpeg_bytes()

        def app(request: Request):
            if request.path == "/v3/orders/o-1":
                return json_reply(200, done_order())
            if request.path.startswith("/v3/images/img-1/"):
                return reply(200, image, "image/jpeg")
            return json_reply(404, {"message": "not found"})

        conn = connect(serve(app))

        def run(folder, **kwargs):
            operator = fast_operator(
                DownloadImagesOperator, conn, task_id="download", destination=str(folder), **kwargs
            )
            outcome = execute_bounded(operator, GUARD)
            assert outcome.finished, describe(outcome)
            return outcome

        # A clean run tells which file name the image gets.
        clean = tmp_path / "clean"
        assert run(clean).error is None
        (name,) = _files(clean)

        folder = tmp_path / "retry"
        folder.mkdir()
        if recorded:  # the manifest says this order wrote it: the bytes say otherwise
            shutil.copyfile(clean / MANIFEST_NAME, folder / MANIFEST_NAME)
        damaged = b"" if damage == "zero-byte" else image[:100]
        (folder / name).write_bytes(damaged)
        refused = run(folder)
        assert isinstance(refused.error, AutoenhanceValidationError), describe(refused)
        assert name in str(refused.error)
        assert (folder / name).read_bytes() == damaged
        repaired = run(folder, if_exists="overwrite")
        assert repaired.error is None, describe(repaired)
        assert _files(folder) == [name]
        assert (folder / name).read_bytes() == image, "the damaged file was not repaired"


class TestWithoutContentLength:
    """A body delimited only by the connection's close: the image's own end decides."""

    @staticmethod
    def _close_delimited(body: bytes) -> list:
        return [head(200, [("Content-Type", "image/jpeg")]) + body]

    def test_a_body_cut_short_by_the_connection_closing_is_never_named(
        self, serve, connect, tmp_path
    ) -> None:
        image = jpeg_bytes()
        server = serve(lambda r: self._close_delimited(image[: len(image) // 2]))
        outcome, folder = _download_into_a_new_folder(connect(server), tmp_path)
        _assert_failed_writing_nothing(outcome, folder)
        assert "cut short" in str(outcome.error)
        assert len(server.seen()) >= 2, "a body cut short is retried"

    def test_a_whole_body_without_length_is_written(self, serve, connect, tmp_path) -> None:
        image = jpeg_bytes()
        server = serve(lambda r: self._close_delimited(image))
        outcome = run_bounded(
            lambda: fast_hook(connect(server)).download_image("img-1", tmp_path / "room.jpg"), GUARD
        )
        assert outcome.error is None, describe(outcome)
        assert (tmp_path / "room.jpg").read_bytes() == image
