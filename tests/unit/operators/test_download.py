"""DownloadImagesOperator: local folders (path, file:// URI, ObjectStoragePath), safe names, no re-buying."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
from airflow.sdk import Asset, ObjectStoragePath

from autoenhance_provider.exceptions import AutoenhanceError, AutoenhanceValidationError
from autoenhance_provider.files.manifest import MANIFEST_NAME
from autoenhance_provider.operators.download import DownloadImagesOperator
from support.api import (
    APP_URL,
    FAKE_KEY,
    ORDER_ID,
    api,
    image,
    order,
    path_of,
    query_of,
)
from support.downloads import IMAGES, FakeDownloads, content_of, download_op, listing
from support.logs import rendered
from support.task import FakeTI, task_context


# ------------------------------------------------------------------------------ writing files
def test_writes_one_file_per_processed_image(downloads, tmp_path, logs):
    out = tmp_path / "out"
    ti = FakeTI()

    uris = download_op(str(out)).execute(task_context(ti))

    assert sorted(p.name for p in listing(out)) == ["Kitchen.jpg", "Living Room.jpg"]
    assert (out / "Kitchen.jpg").read_bytes() == content_of(IMAGES[0]["image_id"])
    assert (out / "Living Room.jpg").read_bytes() == content_of(IMAGES[1]["image_id"])
    assert uris == [f"file://{out}/Kitchen.jpg", f"file://{out}/Living Room.jpg"]
    assert sorted(downloads.downloaded_ids()) == [IMAGES[0]["image_id"], IMAGES[1]["image_id"]]
    warnings = "\n".join(rendered(logs, "warning"))
    assert "broken.jpg" in warnings
    assert "later.jpg" in warnings
    assert ti.xcoms["order_id"] == ORDER_ID
    assert ti.xcoms["order_url"] == f"{APP_URL}/orders/{ORDER_ID}"


@pytest.mark.parametrize(
    ("fmt", "ext"), [("jpeg", ".jpg"), ("jpg", ".jpg"), ("png", ".png"), ("webp", ".webp")]
)
def test_extension_follows_the_format(downloads, tmp_path, fmt, ext):
    download_op(str(tmp_path), format=fmt).execute(task_context())

    assert sorted(p.name for p in listing(tmp_path)) == [f"Kitchen{ext}", f"Living Room{ext}"]
    for request in downloads.api_downloads():
        assert query_of(request.url)["format"] == ["jpeg" if fmt == "jpg" else fmt]


@pytest.mark.parametrize("form", ["path", "file_uri", "object_storage_path", "pathlib"])
def test_destination_forms(downloads, tmp_path, form):
    out = tmp_path / "dest"
    destination = {
        "path": str(out),
        "file_uri": f"file://{out}",
        "object_storage_path": ObjectStoragePath(f"file://{out}"),
        "pathlib": out,
    }[form]

    uris = download_op(destination).execute(task_context())

    assert sorted(p.name for p in listing(out)) == ["Kitchen.jpg", "Living Room.jpg"]
    assert uris == [f"file://{out}/Kitchen.jpg", f"file://{out}/Living Room.jpg"]


def test_destination_with_spaces_and_non_ascii_is_used_literally(downloads, tmp_path):
    out = tmp_path / "12 Main St #4" / "Küche"

    uris = download_op(str(out)).execute(task_context())

    assert sorted(p.name for p in listing(out)) == ["Kitchen.jpg", "Living Room.jpg"]
    assert not any("%" in p.name for p in listing(tmp_path))
    assert uris[0] == f"file://{out}/Kitchen.jpg"


def test_full_size_purchase_and_rendering_params(downloads, tmp_path):
    download_op(str(tmp_path), preview=False, quality=85, max_width=2048, watermark=False).execute(
        task_context()
    )

    for request in downloads.api_downloads():
        assert path_of(request.url).endswith("/enhanced")
        query = query_of(request.url)
        assert query["preview"] == ["false"]
        assert query["quality"] == ["85"]
        assert query["max_width"] == ["2048"]
        assert query["watermark"] == ["false"]


def test_follows_the_redirect_without_the_api_key(downloads, tmp_path):
    download_op(str(tmp_path)).execute(task_context())

    assert len(downloads.api_downloads()) == 2
    for request in downloads.api_downloads():
        assert request.headers["x-api-key"] == FAKE_KEY
    assert len(downloads.asset_requests()) == 2
    for request in downloads.asset_requests():
        assert "x-api-key" not in {k.lower() for k in request.headers}


def test_original_kind_downloads_originals(downloads, tmp_path):
    download_op(str(tmp_path), kind="original").execute(task_context())

    assert {path_of(r.url).rsplit("/", 1)[-1] for r in downloads.api_downloads()} == {"original"}
    # originals exist for images whatever their enhancement status
    assert sorted(p.name for p in listing(tmp_path)) == ["Kitchen.jpg", "Living Room.png", "broken.jpg"]


def test_unfinished_order_fails_before_downloading_anything(conn, requests_mock, tmp_path):
    fake = FakeDownloads(
        requests_mock, [*IMAGES[:2], image("55555555-eeee-4eee-8eee-000000000005", "processing", "x.jpg")]
    )

    with pytest.raises(AutoenhanceError, match="not finished") as err:
        download_op(str(tmp_path)).execute(task_context())

    assert "OrderProcessedSensor" in str(err.value)
    assert fake.api_downloads() == []
    assert list(listing(tmp_path)) == []


def test_returned_uris_do_not_depend_on_the_api_listing_order(conn, requests_mock, tmp_path):
    FakeDownloads(requests_mock, IMAGES)
    first = download_op(str(tmp_path / "a")).execute(task_context())
    requests_mock.reset_mock()
    FakeDownloads(requests_mock, list(reversed(IMAGES)))
    second = download_op(str(tmp_path / "b")).execute(task_context())
    assert [u.rsplit("/", 1)[-1] for u in first] == [u.rsplit("/", 1)[-1] for u in second]


# ------------------------------------------------------------------------------ never twice
def test_a_file_with_the_right_name_but_not_proven_is_refused_before_writing(downloads, tmp_path):
    (tmp_path / "Kitchen.jpg").write_bytes(b"somebody else's photo")

    with pytest.raises(AutoenhanceValidationError) as err:
        download_op(str(tmp_path), preview=False).execute(task_context())

    message = str(err.value)
    assert "Kitchen.jpg (not written by this provider)" in message
    assert "its own folder" in message
    assert "if_exists='overwrite'" in message
    assert "Nothing was written" in message
    assert downloads.api_downloads() == []  # failed before writing (or buying) anything
    assert (tmp_path / "Kitchen.jpg").read_bytes() == b"somebody else's photo"
    assert sorted(p.name for p in listing(tmp_path)) == ["Kitchen.jpg"]


def test_a_file_not_proven_is_replaced_with_overwrite(downloads, tmp_path):
    (tmp_path / "Kitchen.jpg").write_bytes(b"somebody else's photo")

    uris = download_op(str(tmp_path), preview=False, if_exists="overwrite").execute(task_context())

    assert sorted(downloads.downloaded_ids()) == [IMAGES[0]["image_id"], IMAGES[1]["image_id"]]
    assert (tmp_path / "Kitchen.jpg").read_bytes() == content_of(IMAGES[0]["image_id"])
    assert uris == [f"file://{tmp_path}/Kitchen.jpg", f"file://{tmp_path}/Living Room.jpg"]


def test_second_order_into_the_same_folder_never_replaces_the_first_orders_files(
    downloads, tmp_path, requests_mock
):
    download_op(str(tmp_path), preview=False).execute(task_context())
    first = {p.name: p.read_bytes() for p in listing(tmp_path)}
    # a new order whose images have the same names
    other = "9b0c6f0e-0d1e-4d0c-9a4f-2f1e8b9c0a99"
    second = [
        image("55555555-eeee-4eee-8eee-000000000005", "processed", "Kitchen.jpg"),
        image("66666666-ffff-4fff-8fff-000000000006", "processed", "Living Room.png"),
    ]
    requests_mock.get(api(f"/v3/orders/{other}"), json=order(other, second, status="processed"))

    with pytest.raises(AutoenhanceValidationError) as err:
        download_op(str(tmp_path), order_id=other, preview=False).execute(task_context())

    assert f"Kitchen.jpg (order {ORDER_ID}'s image)" in str(err.value)
    assert f"Living Room.jpg (order {ORDER_ID}'s image)" in str(err.value)
    assert len(downloads.downloaded_ids()) == 2  # only the first order's
    assert {p.name: p.read_bytes() for p in listing(tmp_path)} == first
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["files"]["Kitchen.jpg"]["identity"]["order_id"] == ORDER_ID


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda data: b"", id="emptied"),
        # Same size, other bytes: only the SHA-256 tells them apart.
        pytest.param(lambda data: data[:-3] + bytes(b ^ 0xFF for b in data[-3:]), id="same-size"),
    ],
)
def test_a_verified_file_that_was_changed_afterwards_is_not_replaced_by_default(downloads, tmp_path, change):
    download_op(str(tmp_path), preview=False).execute(task_context())
    kitchen = tmp_path / "Kitchen.jpg"
    kitchen.write_bytes(change(kitchen.read_bytes()))
    changed = kitchen.read_bytes()

    with pytest.raises(AutoenhanceValidationError, match=r"Kitchen\.jpg \(changed since it was downloaded\)"):
        download_op(str(tmp_path), preview=False).execute(task_context())
    assert kitchen.read_bytes() == changed
    assert len(downloads.downloaded_ids()) == 2

    uris = download_op(str(tmp_path), preview=False, if_exists="overwrite").execute(task_context())

    assert kitchen.read_bytes() == content_of(IMAGES[0]["image_id"])
    assert len(uris) == 2


def test_other_rendering_is_not_a_verified_copy(downloads, tmp_path):
    download_op(str(tmp_path), preview=True).execute(task_context())
    download_op(str(tmp_path), preview=False).execute(task_context())

    assert len(downloads.api_downloads()) == 4  # the previews are not the bought full-size images


def test_if_exists_fail_refuses_unproven_files_before_downloading(downloads, tmp_path):
    (tmp_path / "Kitchen.jpg").write_bytes(b"somebody else's photo")

    with pytest.raises(AutoenhanceValidationError, match=r"Kitchen\.jpg \(not written by this provider\)"):
        download_op(str(tmp_path), if_exists="fail").execute(task_context())

    assert downloads.api_downloads() == []
    assert (tmp_path / "Kitchen.jpg").read_bytes() == b"somebody else's photo"


def test_if_exists_fail_keeps_verified_files(downloads, tmp_path):
    download_op(str(tmp_path)).execute(task_context())

    uris = download_op(str(tmp_path), if_exists="fail").execute(task_context())

    assert len(downloads.api_downloads()) == 2
    assert len(uris) == 2


def test_if_exists_is_checked_at_parse_time():
    with pytest.raises(AutoenhanceValidationError, match="if_exists must be one of skip, overwrite, fail"):
        download_op("/tmp/x", if_exists="replace")


def test_retry_after_success_sends_no_download_request(downloads, tmp_path):
    download_op(str(tmp_path), preview=False).execute(task_context())
    first = len(downloads.api_downloads())

    download_op(str(tmp_path), preview=False).execute(task_context())

    assert first == 2
    assert len(downloads.api_downloads()) == 2


def test_overwrite_downloads_again(downloads, tmp_path):
    (tmp_path / "Kitchen.jpg").write_bytes(b"old")

    download_op(str(tmp_path), overwrite=True).execute(task_context())

    assert sorted(downloads.downloaded_ids()) == [IMAGES[0]["image_id"], IMAGES[1]["image_id"]]
    assert (tmp_path / "Kitchen.jpg").read_bytes() == content_of(IMAGES[0]["image_id"])


def test_a_failed_download_leaves_no_file_behind(downloads, tmp_path):
    downloads.asset_status = 503

    with pytest.raises(AutoenhanceError):
        download_op(str(tmp_path)).execute(task_context())

    assert list(listing(tmp_path)) == []  # no partial file that a retry would skip


# ------------------------------------------------------------------------------ safe names
def test_hostile_and_duplicate_names_stay_inside_the_folder(conn, requests_mock, tmp_path):
    long_name = "x" * 300 + ".jpg"
    images = [
        image("a0000000-0000-4000-8000-000000000001", "processed", "../../etc/passwd"),
        image("a0000000-0000-4000-8000-000000000002", "processed", "/abs/name.jpg"),
        image("a0000000-0000-4000-8000-000000000003", "processed", "a\x00b.jpg"),
        image("a0000000-0000-4000-8000-000000000004", "processed", long_name),
        image("b0000000-0000-4000-8000-000000000005", "processed", "same.jpg"),
        image("c0000000-0000-4000-8000-000000000006", "processed", "same.jpg"),
        image("d0000000-0000-4000-8000-000000000007", "processed", "SAME.JPG"),
        image("e0000000-0000-4000-8000-000000000008", "processed", "..\\..\\windows\\win.ini"),
        image("f0000000-0000-4000-8000-000000000009", "processed", ".."),
        image("f0000000-0000-4000-8000-000000000010", "processed", ""),
    ]
    fake = FakeDownloads(requests_mock, images)
    out = tmp_path / "out"

    uris = download_op(str(out)).execute(task_context())

    files = sorted(listing(out))
    assert len(files) == len(images) == len(set(uris))
    assert all(f.parent == out for f in files)
    assert sorted(f.name for f in files) == sorted(uri.rsplit("/", 1)[-1] for uri in uris)
    names = {f.name for f in files}
    assert "passwd.jpg" in names
    assert "name.jpg" in names
    assert "ab.jpg" in names
    assert all(len(n) <= 160 for n in names)
    assert all("\x00" not in n and "/" not in n and "\\" not in n for n in names)
    assert len({n.lower() for n in names}) == len(names)  # distinct on case-insensitive disks too
    assert not (tmp_path / "etc").exists()
    assert sorted(fake.downloaded_ids()) == sorted(img["image_id"] for img in images)
    written = sorted(Path(uri.removeprefix("file://")).read_bytes() for uri in uris)
    assert written == sorted(content_of(image_data["image_id"]) for image_data in images)


def test_deduplicated_name_never_overwrites_another_image(conn, requests_mock, tmp_path):
    """An image literally named like the de-duplicated name of another must get its own file."""
    images = [
        image("abcdef12-0000-4000-8000-000000000001", "processed", "room-abcdef12.jpg"),
        image("99999999-0000-4000-8000-000000000002", "processed", "room.jpg"),
        image("abcdef12-0000-4000-8000-000000000003", "processed", "room.jpg"),
    ]
    FakeDownloads(requests_mock, images)

    uris = download_op(str(tmp_path)).execute(task_context())

    assert len(set(uris)) == 3
    assert len(list(listing(tmp_path))) == 3
    written = sorted(Path(uri.removeprefix("file://")).read_bytes() for uri in uris)
    assert written == sorted(content_of(image_data["image_id"]) for image_data in images)


# ------------------------------------------------------------------------------ assets & validation
def test_a_fixed_destination_is_an_outlet_asset(downloads, tmp_path):
    op = download_op(str(tmp_path / "out"))
    context = task_context()

    uris = op.execute(context)

    assert op.outlets == [Asset(f"file://{tmp_path}/out")]
    extra = context["outlet_events"][op.outlets[0]].extra
    assert extra == {"order_id": ORDER_ID, "count": 2, "uris": uris}


def test_an_object_storage_destination_is_an_outlet_asset(tmp_path):
    op = download_op(ObjectStoragePath(f"file://{tmp_path}/out"))
    assert op.outlets == [Asset(f"file://{tmp_path}/out")]


@pytest.mark.parametrize("as_path", [False, True])
def test_the_outlet_uri_is_encoded_for_special_characters(tmp_path, as_path):
    out = tmp_path / "12 Main St #4" / "Küche"
    op = download_op(ObjectStoragePath(f"file://{out}") if as_path else str(out))
    assert op.outlets == [Asset(out.as_uri())]
    assert op.outlets[0].uri == out.as_uri()


def test_a_templated_destination_is_declared_through_an_asset_alias(tmp_path):
    from airflow.sdk import AssetAlias

    op = download_op(str(tmp_path / "{{ ds }}"))
    assert op.outlets == [AssetAlias("autoenhance-downloads")]  # resolved to the folder at run time
    assert download_op(str(tmp_path / "{{ ds }}"), asset_alias=None).outlets == []


def test_explicit_outlets_are_kept(tmp_path):
    mine = Asset("s3://bucket/listings")
    op = download_op(str(tmp_path), outlets=[mine])
    assert op.outlets == [mine]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quality": 0}, "quality"),
        ({"quality": 91}, "quality"),
        ({"format": "gif"}, "format"),
        ({"scale": 0}, "scale"),
        ({"kind": "thumbnail"}, "kind"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_bad_rendering_parameters_fail_at_parse_time(requests_mock, tmp_path, kwargs, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        download_op(str(tmp_path), **kwargs)
    assert requests_mock.call_count == 0


def test_templated_parameters_are_checked_at_run_time(downloads, tmp_path):
    op = download_op(str(tmp_path), quality="{{ params.q }}")
    op.quality = "0"  # what the rendering produced

    with pytest.raises(AutoenhanceValidationError, match="quality"):
        op.execute(task_context())
    assert downloads.mock.call_count == 0


def test_unwritable_destination_fails_before_any_request(downloads, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("I am a regular file")

    with pytest.raises(AutoenhanceValidationError) as info:
        download_op(str(blocker / "out")).execute(task_context())

    assert str(blocker) in str(info.value)
    assert downloads.mock.call_count == 0


def test_destination_that_is_a_file_fails_before_any_request(downloads, tmp_path):
    target = tmp_path / "photo.jpg"
    target.write_bytes(b"x")

    with pytest.raises(AutoenhanceValidationError, match="cannot be created: a file has that name"):
        download_op(str(target)).execute(task_context())
    assert downloads.mock.call_count == 0


def test_init_touches_neither_network_nor_connection(monkeypatch, requests_mock, tmp_path):
    from autoenhance_provider.compat import BaseHook  # the provider hooks' base class

    monkeypatch.setattr(BaseHook, "get_connection", mock.Mock(side_effect=AssertionError("lookup")))
    download_op(str(tmp_path / "never-created"), autoenhance_conn_id="nope", format="png")
    assert requests_mock.call_count == 0
    assert not (tmp_path / "never-created").exists()


def test_template_fields():
    assert set(DownloadImagesOperator.template_fields) >= {
        "order_id",
        "destination",
        "format",
        "quality",
        "preview",
        "autoenhance_conn_id",
    }


def test_kind_is_case_insensitive_and_originals_keep_their_type(conn, requests_mock, tmp_path):
    images = [
        image("11111111-aaaa-4aaa-8aaa-000000000001", "processed", "front.TIFF"),
        image("22222222-bbbb-4bbb-8bbb-000000000002", "processing", "raw.cr2"),
    ]
    fake = FakeDownloads(requests_mock, images)

    download_op(str(tmp_path), kind=" ORIGINAL ").execute(task_context())

    assert sorted(p.name for p in listing(tmp_path)) == ["front.tiff", "raw.cr2"]
    assert {path_of(r.url).rsplit("/", 1)[-1] for r in fake.api_downloads()} == {"original"}
