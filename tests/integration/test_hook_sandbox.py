"""Every AutoenhanceHook method against the sandbox, over real HTTP."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from autoenhance_provider.exceptions import (
    AutoenhanceAuthError,
    AutoenhanceConflictError,
    AutoenhanceCreditsError,
    AutoenhanceNotFoundError,
    AutoenhanceStorageError,
)
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.waiting import evaluate_order

pytestmark = pytest.mark.integration


def _upload_one(hook, photo, order_id: str, name: str = "front.jpg", **settings) -> dict:
    created = hook.create_image(name, order_id=order_id, content_type="image/jpeg", **settings)
    hook.upload_file(created["upload_url"], photo(name), "image/jpeg")
    return created


def test_test_connection(hook, sandbox_conn):
    ok, message = hook.test_connection()
    assert ok, message
    sandbox_conn("bad_key", password="wrong-key-1234567")
    ok, message = AutoenhanceHook("bad_key", retry_delay=0).test_connection()
    assert not ok
    assert "401" in message
    assert "wrong-key-1234567" not in message


def test_order_lifecycle(hook, sandbox):
    order_id = str(uuid.uuid4())
    created = hook.create_order(name="Listing 1", order_id=order_id)
    assert created["order_id"] == order_id
    assert hook.get_order(order_id)["name"] == "Listing 1"
    with pytest.raises(AutoenhanceConflictError):
        hook.create_order(order_id=order_id)
    assert hook.update_order(order_id, "Renamed")["name"] == "Renamed"
    hook.delete_order(order_id)
    assert hook.get_order_or_none(order_id) is None
    with pytest.raises(AutoenhanceNotFoundError):
        hook.get_order(order_id)
    assert sandbox.stats()["orders_created"] == 1


def test_list_orders_follows_pages(hook, sandbox):
    ids = {hook.create_order(name=f"o{i}")["order_id"] for i in range(35)}
    listed = list(hook.list_orders(per_page=15))
    assert {o["order_id"] for o in listed} == ids
    assert len(listed) == 35
    assert sandbox.stats()["requests"]["GET /v3/orders"]["200"] == 3


def test_image_upload_process_and_downloads(hook, sandbox, photo, tmp_path):
    order_id = hook.create_order(name="photos")["order_id"]
    created = _upload_one(hook, photo, order_id, enhance_type="warm", sky_replacement=True)
    assert created["upload_url"]
    image = hook.get_image(created["image_id"])
    assert image["status"] in ("processing", "processed")
    assert image["enhance_type"] == "warm"

    summary = hook.wait_for_order(order_id, poll_interval=0.1, timeout=30)
    assert summary["processed"] == 1
    assert not summary["failed"]
    assert evaluate_order(hook.get_order(order_id)).done

    full = tmp_path / "out" / "front-enhanced.jpg"
    info = hook.download_image(created["image_id"], full, kind="enhanced", preview=False, quality=80)
    assert info["bytes"] == full.stat().st_size > 0
    assert Image.open(full).format == "JPEG"
    assert hook.get_image(created["image_id"])["downloaded"] is True

    small = io.BytesIO()
    hook.download_image(created["image_id"], small, kind="enhanced", format="png", max_width=50)
    img = Image.open(io.BytesIO(small.getvalue()))
    assert img.format == "PNG"
    assert img.width <= 50

    original = tmp_path / "out" / "original.jpg"
    hook.download_image(created["image_id"], original, kind="original")
    assert original.read_bytes() == (tmp_path / "photos" / "front.jpg").read_bytes()
    preview = tmp_path / "out" / "preview.webp"
    hook.download_image(created["image_id"], preview, kind="preview", format="webp")
    assert Image.open(preview).format == "WEBP"

    stats = sandbox.stats()
    assert stats["leaked_api_key"] == {"storage": 0, "assets": 0}
    assert stats["purchases"] == 1


def test_reprocess_report_and_delete_image(hook, sandbox, photo):
    order_id = hook.create_order()["order_id"]
    created = _upload_one(hook, photo, order_id)
    hook.wait_for_order(order_id, poll_interval=0.1, timeout=30)
    again = hook.reprocess_image(created["image_id"], enhance_type="neutral")
    assert again["enhance_type"] == "neutral"
    assert hook.get_image(created["image_id"])["status"] in ("processing", "processed")
    hook.wait_for_order(order_id, poll_interval=0.1, timeout=30)
    assert isinstance(
        hook.report_image(created["image_id"], ["COLOUR", "sky_replacement"], comment="ok", score=4), dict
    )
    hook.delete_image(created["image_id"])
    with pytest.raises(AutoenhanceNotFoundError):
        hook.get_image(created["image_id"])
    hook.delete_image(created["image_id"], missing_ok=True)


def test_legacy_upload_url_field(hook, sandbox_conn, photo):
    sandbox_conn("old_version", api_version="2024-06-01")
    old = AutoenhanceHook("old_version", retry_delay=0)
    created = old.create_image("front.jpg", content_type="image/jpeg")
    assert "s3PutObjectUrl" in created
    assert created["upload_url"] == created["s3PutObjectUrl"]
    old.upload_file(created["upload_url"], photo(), "image/jpeg")
    assert old.get_image(created["image_id"])["status"] in ("processing", "processed")


def test_hdr_brackets_grouped_and_merged(hook, sandbox, photo):
    order_id = hook.create_order(name="hdr")["order_id"]
    for room in ("living", "bedroom"):
        for ev in ("m2", "0", "p2"):
            name = f"{room}_{ev}EV.jpg"
            bracket = hook.create_bracket(order_id, name, metadata={"ev": ev})
            assert bracket["is_uploaded"] is False
            hook.upload_file(
                bracket["upload_url"],
                photo(name, level=60 + 40 * ("m2", "0", "p2").index(ev)),
                "application/octet-stream",
            )
    brackets = hook.list_brackets(order_id)
    assert len(brackets) == 6
    assert all(b["is_uploaded"] for b in brackets)
    hook.process_order(order_id, number_of_brackets_per_image=3, enhance_type="neutral")
    summary = hook.wait_for_order(order_id, poll_interval=0.1, timeout=30)
    assert summary["total"] == 2
    assert summary["processed"] == 2
    names = sorted(img["image_name"] for img in hook.get_order(order_id)["images"])
    assert names == ["bedroom_m2EV.jpg", "living_m2EV.jpg"]


def test_hdr_explicit_groups(hook, photo):
    order_id = hook.create_order()["order_id"]
    ids = []
    for i in range(4):
        bracket = hook.create_bracket(order_id, f"b{i}.jpg")
        hook.upload_file(bracket["upload_url"], photo(f"b{i}.jpg"), "application/octet-stream")
        ids.append(bracket["bracket_id"])
    hook.process_order(order_id, images=[ids[:2], {"bracket_ids": ids[2:]}])
    assert hook.wait_for_order(order_id, poll_interval=0.1, timeout=30)["total"] == 2


def test_permanent_errors_over_http(hook, sandbox_conn, photo):
    with pytest.raises(AutoenhanceNotFoundError):
        hook.get_image("no-such-image")
    sandbox_conn("wrong", password="not-the-key-9876")
    with pytest.raises(AutoenhanceAuthError) as err:
        AutoenhanceHook("wrong", retry_delay=0).create_order()
    assert "not-the-key-9876" not in str(err.value)
    created = hook.create_image("x.jpg", content_type="image/jpeg")
    with pytest.raises(AutoenhanceStorageError, match="SignatureDoesNotMatch") as err:
        hook.upload_file(created["upload_url"], photo("x.jpg"), "image/png")
    assert "X-Amz-Signature" not in str(err.value)


def test_credits_exhausted_and_dev_mode(hook, sandbox, sandbox_conn, photo, tmp_path):
    order_id = hook.create_order()["order_id"]
    created = _upload_one(hook, photo, order_id)
    hook.wait_for_order(order_id, poll_interval=0.1, timeout=30)
    sandbox.state.credits_remaining = 0
    with pytest.raises(AutoenhanceCreditsError):
        hook.download_image(created["image_id"], tmp_path / "a.jpg", preview=False)
    sandbox_conn("dev", dev_mode=True)
    AutoenhanceHook("dev", retry_delay=0).download_image(
        created["image_id"], tmp_path / "b.jpg", preview=False
    )
    assert (tmp_path / "b.jpg").stat().st_size > 0


def test_whole_flow_survives_faults(hook, sandbox, photo, tmp_path):
    """20 % faults on every endpoint (incl. ones that lose the response after the work is done)."""
    sandbox.set_faults(0.2, seed=7, phase="both", slow_seconds=0.05)
    order_id = str(uuid.uuid4())
    hook.create_order(name="faulty", order_id=order_id)
    for i in range(6):
        _upload_one(hook, photo, order_id, name=f"p{i}.jpg")
    hook.wait_for_order(order_id, poll_interval=0.1, timeout=60)
    order = hook.get_order(order_id)
    for image in order["images"]:
        hook.download_image(image["image_id"], tmp_path / image["image_name"], preview=False)
    sandbox.clear_faults()
    stats = sandbox.stats()
    assert sum(stats["faults_injected"].values()) > 0
    assert stats["duplicate_image_names"] == {}
    assert stats["live_orders"] == 1
    assert sorted(i["image_name"] for i in hook.get_order(order_id)["images"]) == [
        f"p{i}.jpg" for i in range(6)
    ]
    assert stats["leaked_api_key"] == {"storage": 0, "assets": 0}
    assert all(n == 1 for n in stats["purchases_per_image"].values())
