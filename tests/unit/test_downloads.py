"""Crash-safe, owner-safe downloads: the manifest is written per file before the file gets its name,
temporary files are recognisable and swept by a later try, files the provider cannot prove it wrote
(a user's file, a symlink, another order's image) are never replaced by default."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest

from autoenhance_provider.exceptions import AutoenhanceError, AutoenhanceValidationError
from autoenhance_provider.files.manifest import MANIFEST_NAME, Manifest
from autoenhance_provider.files.storage import TempToken, sweep_temp_files, to_storage_path
from support.api import ORDER_ID, api, order
from support.downloads import IMAGES, content_of, download_op, listing
from support.task import FakeTI, task_context


def token_of(ti: FakeTI) -> TempToken:
    return TempToken.for_task(ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.try_number)


def manifest_files(folder) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text())["files"]


# ------------------------------------------------------------------------ recorded as each lands
def test_each_file_is_in_the_manifest_on_disk_before_it_gets_its_name(downloads, tmp_path):
    """Write-ahead: when the second image is fetched the first is already recorded on disk (one
    at a time), and a file is never under its name without its entry."""
    seen: list[tuple[list[str], list[str]]] = []
    serve = downloads._asset

    def asset(request, context):
        names = sorted(p.name for p in listing(tmp_path))
        recorded = sorted(manifest_files(tmp_path)) if (tmp_path / MANIFEST_NAME).exists() else []
        seen.append((names, recorded))
        return serve(request, context)

    downloads.mock.get(downloads.asset_url_pattern, content=asset)
    download_op(str(tmp_path), max_concurrency=1).execute(task_context())

    assert seen[0] == ([], [])
    assert seen[1] == (["Kitchen.jpg"], ["Kitchen.jpg"])
    assert sorted(manifest_files(tmp_path)) == ["Kitchen.jpg", "Living Room.jpg"]


def _killed_after_first_file(downloads, tmp_path, requests_mock):
    """The folder as a SIGKILL during the second image's body leaves it: the first file and its
    manifest entry, and the second's temporary file of try 1."""
    folder = tmp_path / "out"
    snapshot = tmp_path / "at-kill"
    ti = FakeTI(try_number=1)
    serve = downloads._asset

    def asset(request, context):
        in_flight = request.url.rsplit("/", 1)[-1].split("?")[0] == IMAGES[1]["image_id"]
        if in_flight and not snapshot.exists():
            shutil.copytree(folder, snapshot)
            (snapshot / token_of(ti).temp_name("Living Room.jpg")).write_bytes(b"\xff\xd8\xff\xe0half")
        return serve(request, context)

    requests_mock.get(downloads.asset_url_pattern, content=asset)
    download_op(str(folder), max_concurrency=1).execute(task_context(ti))
    return snapshot


def test_a_retry_after_a_kill_downloads_only_the_file_in_flight_and_sweeps_its_temp_file(
    downloads, tmp_path, requests_mock
):
    folder = _killed_after_first_file(downloads, tmp_path, requests_mock)
    assert sorted(p.name for p in listing(folder)) == [
        TempToken.for_task("test_dag", "test_task", "manual__2026-01-01T00:00:00", -1, 1).temp_name(
            "Living Room.jpg"
        ),
        "Kitchen.jpg",
    ]
    before = list(downloads.downloaded_ids())

    uris = download_op(str(folder), max_concurrency=1).execute(task_context(FakeTI(try_number=2)))

    assert downloads.downloaded_ids()[len(before) :] == [IMAGES[1]["image_id"]]  # not Kitchen again
    assert sorted(p.name for p in listing(folder)) == ["Kitchen.jpg", "Living Room.jpg"]  # no .part
    assert len(uris) == 2
    assert (folder / "Living Room.jpg").read_bytes() == content_of(IMAGES[1]["image_id"])


def test_a_kill_between_recording_and_renaming_is_recovered(downloads, tmp_path):
    """The entry is saved, the rename never happened: a retry downloads that file (only)."""
    download_op(str(tmp_path), max_concurrency=1).execute(task_context())
    os.unlink(tmp_path / "Living Room.jpg")  # as if the process died right before the rename
    before = len(downloads.downloaded_ids())

    download_op(str(tmp_path), max_concurrency=1).execute(task_context(FakeTI(try_number=2)))

    assert downloads.downloaded_ids()[before:] == [IMAGES[1]["image_id"]]


def test_replacing_this_orders_own_rendering_survives_a_kill_before_the_rename(downloads, tmp_path):
    """Previews first, then full size: an entry recorded for the full size whose rename never
    happened still proves the preview bytes (its ``prior``), so a retry replaces them."""
    download_op(str(tmp_path), preview=True).execute(task_context())
    preview_bytes = (tmp_path / "Kitchen.jpg").read_bytes()
    entry = manifest_files(tmp_path)["Kitchen.jpg"]
    manifest = Manifest.load(to_storage_path(tmp_path))
    identity = {**entry["identity"], "query": {"preview": "false"}}
    manifest.record(
        "Kitchen.jpg", identity, 999, "0" * 64, {"bytes": entry["bytes"], "sha256": entry["sha256"]}
    )
    manifest.save(to_storage_path(tmp_path))  # recorded, then killed before the rename
    assert (tmp_path / "Kitchen.jpg").read_bytes() == preview_bytes

    uris = download_op(str(tmp_path), preview=False).execute(task_context())

    assert len(uris) == 2
    assert manifest_files(tmp_path)["Kitchen.jpg"]["identity"]["query"] == {"preview": "false"}


def test_the_manifest_is_saved_after_a_partial_failure_and_the_retry_downloads_only_the_rest(
    downloads, tmp_path, requests_mock
):
    """Counted by downloads (a second purchase would be free in the sandbox, a second download not)."""
    serve = downloads._asset

    def asset(request, context):
        if IMAGES[1]["image_id"] in request.url:
            context.status_code = 503
            return b"<Error><Code>SlowDown</Code></Error>"
        return serve(request, context)

    requests_mock.get(downloads.asset_url_pattern, content=asset)
    with pytest.raises(AutoenhanceError, match="1 of 2 download"):
        download_op(str(tmp_path), preview=False).execute(task_context())
    assert sorted(manifest_files(tmp_path)) == ["Kitchen.jpg"]
    requests_mock.get(downloads.asset_url_pattern, content=serve)
    first_try = downloads.downloaded_ids()

    download_op(str(tmp_path), preview=False).execute(task_context(FakeTI(try_number=2)))

    retry = downloads.downloaded_ids()[len(first_try) :]
    assert retry == [IMAGES[1]["image_id"]], retry
    assert downloads.downloaded_ids().count(IMAGES[0]["image_id"]) == 1


def test_concurrent_saves_lose_no_entry(tmp_path):
    folder = to_storage_path(tmp_path)
    manifest = Manifest()
    others = Manifest()  # another writer (another task) saving into the same folder meanwhile
    others.record("other.jpg", {"order_id": "o-2"}, 1, "a" * 64)
    others.save(folder)

    def land(i: int) -> None:
        manifest.record(f"f{i}.jpg", {"order_id": "o-1", "image_id": str(i)}, i, f"{i:064x}")
        manifest.save(folder)

    threads = [threading.Thread(target=land, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(manifest_files(tmp_path)) == sorted([*(f"f{i}.jpg" for i in range(16)), "other.jpg"])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------------------------ temporary files
def test_temp_names_are_recognised_only_when_they_are_ours():
    token = TempToken.for_task("d", "t", "r", -1, 3)
    name = token.temp_name("Kitchen.jpg")
    assert name.startswith(".autoenhance-")
    assert name.endswith("-Kitchen.jpg.part")
    assert TempToken.parse(name) == token
    for foreign in (".Kitchen.jpg.1a2b3c4d.part", ".autoenhance-notes.part", "Kitchen.jpg.part", "a.jpg"):
        assert TempToken.parse(foreign) is None
    assert TempToken.for_task("d", "t", "r", -1, 4).supersedes(token)
    assert not TempToken.for_task("d", "t", "r", 0, 4).supersedes(token)  # another mapped task
    assert not token.supersedes(token)


def test_sweep_removes_earlier_tries_and_stale_files_only(tmp_path):
    now = time.time()
    current = TempToken.for_task("d", "t", "r", -1, 3)
    earlier = TempToken.for_task("d", "t", "r", -1, 2)
    other_task = TempToken.for_task("d", "other", "r", -1, 1)
    names = {
        "earlier": earlier.temp_name("a.jpg"),
        "current": current.temp_name("a.jpg"),
        "other": other_task.temp_name("b.jpg"),
        "stale": other_task.temp_name("c.jpg"),
        "user": ".autoenhance-notes.part",
        "old_style": ".a.jpg.1a2b3c4d.part",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    old = now - 3 * 24 * 3600
    os.utime(tmp_path / names["stale"], (old, old))
    os.utime(tmp_path / names["user"], (old, old))

    removed = sweep_temp_files(to_storage_path(tmp_path), current, now=now)

    assert sorted(removed) == sorted([names["earlier"], names["stale"]])
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {names["current"], names["other"], names["user"], names["old_style"]}


def test_a_failed_download_leaves_no_temporary_file(downloads, tmp_path):
    downloads.asset_status = 503

    with pytest.raises(AutoenhanceError):
        download_op(str(tmp_path)).execute(task_context())

    assert [p.name for p in tmp_path.iterdir()] == []


# ------------------------------------------------------------------------------ owner safety
def symlinked_kitchen(tmp_path):
    """A folder ``out`` whose ``Kitchen.jpg`` is a symlink to a photo of the user's outside it."""
    outside = tmp_path / "precious.jpg"
    outside.write_bytes(b"my own photo")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "Kitchen.jpg").symlink_to(outside)
    return folder, outside


def test_a_symlink_is_never_followed_nor_replaced_by_default(downloads, tmp_path):
    folder, outside = symlinked_kitchen(tmp_path)

    with pytest.raises(AutoenhanceValidationError, match=r"Kitchen\.jpg \(a symlink\)"):
        download_op(str(folder)).execute(task_context())

    assert downloads.api_downloads() == []
    assert (folder / "Kitchen.jpg").is_symlink()
    assert outside.read_bytes() == b"my own photo"


def test_overwrite_replaces_the_symlink_itself_never_its_target(downloads, tmp_path):
    folder, outside = symlinked_kitchen(tmp_path)

    download_op(str(folder), if_exists="overwrite").execute(task_context())

    assert not (folder / "Kitchen.jpg").is_symlink()
    assert (folder / "Kitchen.jpg").read_bytes() == content_of(IMAGES[0]["image_id"])
    assert outside.read_bytes() == b"my own photo"


def test_a_symlinked_file_is_never_proven_even_if_it_points_at_the_right_bytes(downloads, tmp_path):
    first = tmp_path / "first"
    download_op(str(first)).execute(task_context())
    second = tmp_path / "second"
    second.mkdir()
    shutil.copyfile(first / MANIFEST_NAME, second / MANIFEST_NAME)
    (second / "Kitchen.jpg").symlink_to(first / "Kitchen.jpg")
    shutil.copyfile(first / "Living Room.jpg", second / "Living Room.jpg")

    with pytest.raises(AutoenhanceValidationError, match=r"Kitchen\.jpg \(a symlink\)"):
        download_op(str(second)).execute(task_context())


def test_a_symlinked_manifest_is_not_trusted(downloads, tmp_path):
    first = tmp_path / "first"
    download_op(str(first)).execute(task_context())
    second = tmp_path / "second"
    second.mkdir()
    (second / MANIFEST_NAME).symlink_to(first / MANIFEST_NAME)
    for name in ("Kitchen.jpg", "Living Room.jpg"):
        shutil.copyfile(first / name, second / name)

    with pytest.raises(AutoenhanceValidationError, match="not written by this provider"):
        download_op(str(second)).execute(task_context())


def test_refusal_keeps_proven_files_and_lists_every_file_in_the_way(downloads, tmp_path, requests_mock):
    download_op(str(tmp_path)).execute(task_context())
    more = [
        *IMAGES[:2],
        *(
            {
                **IMAGES[0],
                "image_id": f"7777777{i}-aaaa-4aaa-8aaa-00000000000{i}",
                "image_name": f"extra{i}.jpg",
            }
            for i in range(3)
        ),
    ]
    requests_mock.get(api(f"/v3/orders/{ORDER_ID}"), json=order(ORDER_ID, more, status="processed"))
    for i in range(3):
        (tmp_path / f"extra{i}.jpg").write_bytes(b"mine")
    before = len(downloads.api_downloads())

    with pytest.raises(AutoenhanceValidationError) as err:
        download_op(str(tmp_path)).execute(task_context())

    assert all(f"extra{i}.jpg (not written by this provider)" in str(err.value) for i in range(3))
    assert "Kitchen.jpg" not in str(err.value)  # proven: not in the way, and kept
    assert len(downloads.api_downloads()) == before
    assert (tmp_path / "Kitchen.jpg").read_bytes() == content_of(IMAGES[0]["image_id"])


def test_result_lists_only_files_written_or_proven(downloads, tmp_path):
    (tmp_path / "unrelated.jpg").write_bytes(b"not an order image")

    uris = download_op(str(tmp_path)).execute(task_context())

    assert [u.rsplit("/", 1)[-1] for u in uris] == ["Kitchen.jpg", "Living Room.jpg"]
    assert (tmp_path / "unrelated.jpg").read_bytes() == b"not an order image"


def test_a_rename_that_never_happened_leaves_this_orders_earlier_file_replaceable(
    downloads, tmp_path, monkeypatch, requests_mock
):
    """Previews, then full size: the full-size Kitchen.jpg is recorded, then its rename fails (as a
    kill there would leave it). The entry keeps the preview's bytes as its ``prior``, so the file
    is still provably this order's and the retry replaces it instead of refusing it."""
    import autoenhance_provider.files.targets as files_module

    serve = downloads._asset

    def preview_asset(request, context):  # a preview's bytes differ from the full-size image's
        return serve(request, context)[:-2] + b"preview\xff\xd9"

    requests_mock.get(downloads.asset_url_pattern, content=preview_asset)
    download_op(str(tmp_path), preview=True).execute(task_context())
    preview_bytes = (tmp_path / "Kitchen.jpg").read_bytes()
    requests_mock.get(downloads.asset_url_pattern, content=serve)
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("Kitchen.jpg"):
            raise OSError("killed before the rename")
        return real_replace(src, dst)

    monkeypatch.setattr(files_module.os, "replace", replace)
    with pytest.raises(AutoenhanceError, match="1 of 2 download"):
        download_op(str(tmp_path), preview=False).execute(task_context())
    assert manifest_files(tmp_path)["Kitchen.jpg"]["identity"]["query"] == {"preview": "false"}
    assert (tmp_path / "Kitchen.jpg").read_bytes() == preview_bytes  # the rename never happened
    monkeypatch.setattr(files_module.os, "replace", real_replace)

    uris = download_op(str(tmp_path), preview=False).execute(task_context(FakeTI(try_number=2)))

    assert len(uris) == 2
    assert manifest_files(tmp_path)["Kitchen.jpg"]["identity"]["query"] == {"preview": "false"}
    assert (tmp_path / "Kitchen.jpg").read_bytes() == content_of(IMAGES[0]["image_id"])
