"""Upload sources (``files.storage``): a path or a file object, its size, the errors."""

from __future__ import annotations

import io

import pytest

from autoenhance_provider.exceptions import AutoenhanceSourceError
from autoenhance_provider.files.storage import open_source


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
