"""Upload from and download to S3 (moto) through the operators, against the sandbox.

The same guarantees as local files: verified writes (a bad body never lands under its final key,
no temporary key is left behind), retries without duplicates, and the manifest that proves which
file holds which image.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias
from PIL import Image
from s3_helpers import S3

from autoenhance_provider.exceptions import AutoenhanceError, AutoenhanceValidationError
from autoenhance_provider.files.manifest import MANIFEST_NAME
from autoenhance_provider.files.storage import TempToken
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.operators.download import DownloadImagesOperator
from autoenhance_provider.operators.upload import UploadImagesOperator
from support.images import jpeg_bytes
from support.task import task_context

PHOTOS = ["front.jpg", "kitchen.jpg", "garden.jpg"]
FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05}
#: The sandbox's file route, where /v3/images/{id}/{kind} redirects to.
ASSETS_ROUTE = "GET /_assets/{token}"


def put_shoot(s3: S3) -> None:
    for seed, name in enumerate(PHOTOS):
        s3.put(f"shoot-42/{name}", jpeg_bytes(level=seed))
    s3.put("shoot-42/notes.txt", b"not a photo")  # not matched by the glob


def new_order() -> str:
    hook = AutoenhanceHook(**FAST)
    try:
        return str(hook.create_order(name="s3 shoot")["order_id"])
    finally:
        hook.close()


def wait_processed(order_id: str) -> None:
    hook = AutoenhanceHook(**FAST)
    try:
        hook.wait_for_order(order_id, poll_interval=0.1, timeout=60)
    finally:
        hook.close()


def upload(s3: S3, order_id: str) -> tuple[UploadImagesOperator, list[dict[str, str]]]:
    op = UploadImagesOperator(
        task_id="upload",
        order_id=order_id,
        source=s3.uri("shoot-42/*.jpg"),
        source_conn_id="aws_default",
        hook_params=dict(FAST),
    )
    return op, op.execute(task_context())


def download_op(s3: S3, order_id: str, **kwargs: Any) -> DownloadImagesOperator:
    """Download ``order_id`` to ``enhanced/`` (the full-size images) unless ``kwargs`` say otherwise."""
    kwargs.setdefault("destination", s3.uri("enhanced/"))
    kwargs.setdefault("preview", False)
    kwargs.setdefault("hook_params", dict(FAST))
    return DownloadImagesOperator(
        task_id="download", order_id=order_id, destination_conn_id="aws_default", **kwargs
    )


def processed_order(s3: S3) -> str:
    """A new order holding the shoot's photos, uploaded from S3 and processed: its id."""
    put_shoot(s3)
    order_id = new_order()
    upload(s3, order_id)
    wait_processed(order_id)
    return order_id


def downloaded_order(s3: S3) -> str:
    """A :func:`processed_order` downloaded once to ``enhanced/``: its id."""
    order_id = processed_order(s3)
    download_op(s3, order_id).execute(task_context())
    return order_id


def image_keys(s3: S3) -> list[str]:
    return sorted(k for k in s3.objects("enhanced/") if not k.endswith(MANIFEST_NAME))


def assert_no_leftovers(s3: S3) -> None:
    """No temporary key and no half-done multipart upload anywhere in the bucket."""
    assert [k for k in s3.objects() if k.endswith(".part")] == []
    assert s3.pending_multipart_uploads() == []


def test_upload_from_an_s3_glob_and_download_to_an_s3_prefix(s3, sandbox):
    put_shoot(s3)
    order_id = new_order()

    op, uploaded = upload(s3, order_id)

    assert sorted(u["image_name"] for u in uploaded) == sorted(PHOTOS)
    assert sandbox.stats()["images_created"] == len(PHOTOS)
    lineage = op.get_openlineage_facets_on_complete(None)
    assert sorted((d.namespace, d.name) for d in lineage.inputs) == sorted(
        (f"s3://{s3.bucket}", f"shoot-42/{name}") for name in PHOTOS
    )
    wait_processed(order_id)

    download = download_op(s3, order_id)
    assert download.outlets == [Asset(f"s3://{s3.bucket}/enhanced")]
    context = task_context()
    uris = download.execute(context)

    assert image_keys(s3) == sorted(f"enhanced/{name}" for name in PHOTOS)
    assert sorted(u.rsplit("/", 1)[-1] for u in uris) == sorted(PHOTOS)
    assert all(u.startswith("s3://") and s3.bucket in u for u in uris)
    for key in image_keys(s3):
        with Image.open(io.BytesIO(s3.get(key))) as img:
            img.verify()  # complete, valid images
    assert f"enhanced/{MANIFEST_NAME}" in s3.objects("enhanced/")
    assert_no_leftovers(s3)
    event = context["outlet_events"][Asset(f"s3://{s3.bucket}/enhanced")]
    assert event.extra["order_id"] == order_id
    assert event.extra["count"] == len(PHOTOS)
    lineage = download.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(f"s3://{s3.bucket}", "enhanced")]
    assert lineage.run_facets["autoenhance"].fileCount == len(PHOTOS)


def test_upload_from_an_s3_prefix_skips_what_is_not_a_photo(s3, sandbox):
    put_shoot(s3)
    op = UploadImagesOperator(
        task_id="upload",
        order_id=new_order(),
        source=s3.uri("shoot-42/"),  # the prefix: every object under it
        source_conn_id="aws_default",
        on_invalid="skip",
        hook_params=dict(FAST),
    )

    uploaded = op.execute(task_context())

    assert sorted(u["image_name"] for u in uploaded) == sorted(PHOTOS)
    facet = op.get_openlineage_facets_on_complete(None).run_facets["autoenhance"]
    assert (facet.fileCount, facet.skippedCount) == (len(PHOTOS), 1)  # notes.txt


def test_a_second_run_uploads_and_downloads_nothing_again(s3, sandbox):
    order_id = downloaded_order(s3)
    before = s3.objects("enhanced/")
    stats = sandbox.stats()

    _, uploaded = upload(s3, order_id)
    uris = download_op(s3, order_id).execute(task_context())

    after = sandbox.stats()
    assert after["images_created"] == stats["images_created"] == len(PHOTOS)
    assert after["downloads"] == stats["downloads"]  # every file proven by the manifest
    assert after["purchases"] == stats["purchases"]
    assert len(uploaded) == len(uris) == len(PHOTOS)
    assert s3.objects("enhanced/") == before  # not even rewritten
    assert_no_leftovers(s3)


def test_a_retry_keeps_verified_files_and_downloads_only_the_lost_one(s3, sandbox):
    order_id = downloaded_order(s3)
    before = s3.objects("enhanced/")
    downloads = sandbox.stats()["downloads"]["enhanced"]
    s3.client.delete_object(Bucket=s3.bucket, Key="enhanced/front.jpg")  # lost

    download_op(s3, order_id).execute(task_context())

    assert sandbox.stats()["downloads"]["enhanced"] == downloads + 1
    after = s3.objects("enhanced/")
    for name in ("garden.jpg", "kitchen.jpg"):
        assert after[f"enhanced/{name}"] == before[f"enhanced/{name}"]  # kept, not rewritten
    assert after["enhanced/front.jpg"]["size"] == before["enhanced/front.jpg"]["size"]
    assert_no_leftovers(s3)


def test_someone_elses_object_is_refused_by_default_and_replaced_with_overwrite(s3, sandbox):
    order_id = downloaded_order(s3)
    downloads = sandbox.stats()["downloads"]["enhanced"]
    s3.put("enhanced/kitchen.jpg", jpeg_bytes(level=99))  # someone else's file under the same name

    with pytest.raises(AutoenhanceValidationError, match=r"kitchen\.jpg \(changed since it was downloaded\)"):
        download_op(s3, order_id).execute(task_context())
    assert s3.get("enhanced/kitchen.jpg") == jpeg_bytes(level=99)
    assert sandbox.stats()["downloads"]["enhanced"] == downloads  # nothing fetched

    download_op(s3, order_id, if_exists="overwrite").execute(task_context())

    assert s3.get("enhanced/kitchen.jpg") != jpeg_bytes(level=99)
    assert_no_leftovers(s3)


def test_a_later_try_sweeps_the_temporary_keys_of_an_earlier_one(s3, sandbox):
    """A worker killed mid-download leaves its temporary key; the next try of the task removes it
    (and no other task's), and the manifest, saved per file, spares the files that had landed."""
    order_id = processed_order(s3)
    ti = {"dag_id": "d", "task_id": "download", "run_id": "r", "map_index": -1}
    earlier = TempToken.for_task(*ti.values(), 1)
    other_task = TempToken.for_task("d", "another", "r", -1, 1)
    s3.put(f"enhanced/{earlier.temp_name('front.jpg')}", b"\xff\xd8\xffhalf")
    s3.put(f"enhanced/{other_task.temp_name('x.jpg')}", b"\xff\xd8\xffits own")
    context = task_context()
    for name, value in {**ti, "try_number": 2}.items():
        setattr(context["ti"], name, value)

    uris = download_op(s3, order_id).execute(context)

    assert len(uris) == len(PHOTOS)
    parts = sorted(k for k in s3.objects() if k.endswith(".part"))
    assert parts == [f"enhanced/{other_task.temp_name('x.jpg')}"]
    manifest = json.loads(s3.get(f"enhanced/{MANIFEST_NAME}"))
    assert sorted(manifest["files"]) == sorted(PHOTOS)


def test_a_body_that_breaks_off_never_lands_under_its_final_key(s3, sandbox):
    order_id = processed_order(s3)
    # Every file body breaks off part-way, on every attempt.
    sandbox.set_faults(0.0, endpoints={ASSETS_ROUTE: 1.0}, kinds=["drop"])

    with pytest.raises(AutoenhanceError):
        download_op(s3, order_id).execute(task_context())

    assert image_keys(s3) == []
    assert_no_leftovers(s3)
    assert sum(sandbox.stats()["faults_injected"].values()) >= len(PHOTOS)  # every body broke off

    sandbox.clear_faults()
    download_op(s3, order_id).execute(task_context())
    assert image_keys(s3) == sorted(f"enhanced/{name}" for name in PHOTOS)
    assert_no_leftovers(s3)


def test_a_broken_body_is_retried_within_the_task_into_a_fresh_temporary_key(s3, sandbox):
    order_id = processed_order(s3)
    seed = int(os.environ.get("S3_FAULT_SEED", "5"))
    sandbox.set_faults(0.0, endpoints={ASSETS_ROUTE: 0.5}, kinds=["drop"], seed=seed)

    # One at a time: which attempt the seeded plan breaks is then the same on every run.
    uris = download_op(s3, order_id, max_concurrency=1).execute(task_context())

    faults = sandbox.stats()
    assert len(uris) == len(PHOTOS)
    assert image_keys(s3) == sorted(f"enhanced/{name}" for name in PHOTOS)
    for key in image_keys(s3):
        with Image.open(io.BytesIO(s3.get(key))) as img:
            img.verify()
    assert_no_leftovers(s3)
    assert sum(faults["faults_injected"].values()) >= 1, faults  # the retries really happened


def test_a_templated_s3_destination_emits_its_asset_through_the_alias(s3, sandbox):
    order_id = processed_order(s3)
    op = download_op(s3, order_id, destination=s3.uri("enhanced/{{ ds }}"), preview=None)
    assert op.outlets == [AssetAlias("autoenhance-downloads")]
    op.destination = s3.uri(f"enhanced/{order_id}")  # what rendering the template gives
    context = task_context()

    uris = op.execute(context)

    (event,) = context["outlet_events"][AssetAlias("autoenhance-downloads")].asset_alias_events
    assert event.dest_asset_key.uri == f"s3://{s3.bucket}/enhanced/{order_id}"
    assert (event.extra["order_id"], event.extra["count"]) == (order_id, len(PHOTOS))
    listed = event.extra["uris"]  # one string, a URI per line, before Airflow 3.2
    assert (listed.splitlines() if isinstance(listed, str) else listed) == uris
