"""Where one download is written (``files.targets``)."""

from __future__ import annotations

import io

from autoenhance_provider.files.targets import DownloadTarget


def test_download_target_describes_itself(tmp_path):
    assert DownloadTarget(tmp_path / "x.jpg").describe() == str(tmp_path / "x.jpg")
    assert DownloadTarget(io.BytesIO()).describe() is None
    assert DownloadTarget(io.BytesIO()).rewindable is True
