"""Image names chosen by someone else cannot make DownloadImagesOperator write outside its folder.

End to end: the images are registered in the sandbox under hostile names (anyone with the web app
or the API can name an image), uploaded, processed, and downloaded by the operator over HTTP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from autoenhance_provider.files.manifest import MANIFEST_NAME
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.operators.download import DownloadImagesOperator
from support.images import jpeg_bytes
from support.task import task_context

pytestmark = pytest.mark.integration

#: ext4, xfs, btrfs, APFS, NTFS (in UTF-16 units): the strictest common limit of a whole name.
NAME_MAX_BYTES = 255
#: The provider's promise (docs/errors.md): a name keeps at most 150 bytes before its extension.
STEM_MAX_BYTES = 150


def listing(folder):
    """The files a download left in ``folder``, without the manifest that records them."""
    return [p for p in folder.iterdir() if p.name != MANIFEST_NAME]


def hostile_names(tmp_path: Path) -> list[str]:
    return [
        "../../etc/passwd",
        "../../../../../../../../tmp/escaped.jpg",
        "..\\..\\windows\\win.ini",
        "/etc/shadow.jpg",
        str(tmp_path / "outside.jpg"),  # an absolute path that would be writable
        "sub/dir/nested.jpg",
        "~/home.jpg",
        "a\x00b.jpg",  # NUL
        "new\nline\r\t.jpg",
        "\x1b[31mred.jpg",  # terminal escape
        "x" * 1000 + ".jpg",
        "写" * 300 + ".jpg",  # 150 characters would still be 450 bytes
        "é" * 200 + ".jpg",
        "..",
        ".",
        "..\uff0f..\uff0ffullwidth-slash.jpg",  # FULLWIDTH SOLIDUS, not a path separator
        "%2e%2e%2fencoded.jpg",
        "CON.jpg",
        " .jpg",
    ]


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != MANIFEST_NAME}


def test_hostile_image_names_stay_inside_the_destination(sandbox, conn, tmp_path):
    hook = AutoenhanceHook(retry_delay=0.01, retry_max_delay=0.05)
    order_id = hook.create_order(name="hostile")["order_id"]
    names = hostile_names(tmp_path)
    data = jpeg_bytes()
    source = tmp_path / "photo.jpg"
    source.write_bytes(data)
    for name in names:
        created = hook.create_image(name, order_id=order_id, content_type="image/jpeg")
        hook.upload_file(created["upload_url"], source, "image/jpeg")
    hook.wait_for_order(order_id, poll_interval=0.1, timeout=60)
    stored = sorted(i["image_name"] for i in hook.get_order(order_id)["images"])
    assert stored == sorted(names)  # the sandbox kept the names as given

    dest = tmp_path / "work" / "dest"
    before_tmp = snapshot(tmp_path)
    operator = DownloadImagesOperator(
        task_id="download", order_id=order_id, destination=str(dest), preview=False, format="jpeg"
    )
    uris = operator.execute(task_context())
    operator.hook.close()

    files = sorted(listing(dest))
    assert len(files) == len(names) == len(uris)
    for path in files:
        assert path.parent == dest
        assert path.is_file()
        assert not path.is_symlink()
        assert not path.name.startswith(".")
        assert len(path.name.encode()) <= NAME_MAX_BYTES
        assert all(ch not in path.name for ch in "/\\\x00\n\r\t\x1b")
        assert path.read_bytes()[:3] == b"\xff\xd8\xff"
    # Each image's file, by the manifest: a path in the name keeps only its last part.
    manifest = json.loads((dest / MANIFEST_NAME).read_text())["files"]
    name_of = {i["image_id"]: i["image_name"] for i in hook.get_order(order_id)["images"]}
    file_of = {name_of[entry["identity"]["image_id"]]: file for file, entry in manifest.items()}
    assert sorted(file_of.values()) == sorted(p.name for p in files)
    assert file_of["../../etc/passwd"] == "passwd.jpg"
    assert file_of["/etc/shadow.jpg"] == "shadow.jpg"
    assert file_of["../../../../../../../../tmp/escaped.jpg"] == "escaped.jpg"
    assert file_of["sub/dir/nested.jpg"] == "nested.jpg"
    assert file_of["x" * 1000 + ".jpg"] == "x" * STEM_MAX_BYTES + ".jpg"
    assert file_of["写" * 300 + ".jpg"] == "写" * (STEM_MAX_BYTES // 3) + ".jpg"  # 3 bytes each, not cut
    assert file_of["é" * 200 + ".jpg"] == "é" * (STEM_MAX_BYTES // 2) + ".jpg"
    assert all(len(Path(f).stem.encode()) <= STEM_MAX_BYTES for f in file_of.values())
    # Nothing appeared anywhere else: not next to the destination, not at the absolute paths.
    created = snapshot(tmp_path) - before_tmp
    assert created == {"work", "work/dest"} | {f"work/dest/{p.name}" for p in files}
    assert not (tmp_path / "outside.jpg").exists()
    assert not Path("/tmp/escaped.jpg").exists()
    assert not Path(os.path.expanduser("~/home.jpg")).exists()
    # A retry maps every image to the same file and downloads nothing again.
    again = DownloadImagesOperator(
        task_id="download", order_id=order_id, destination=str(dest), preview=False, format="jpeg"
    )
    before = sandbox.stats()["downloads"]["enhanced"]
    assert sorted(again.execute(task_context())) == sorted(uris)
    assert sandbox.stats()["downloads"]["enhanced"] == before
    assert set(sandbox.stats()["purchases_per_image"].values()) == {1}
