"""The official SDK 1.1.0 drives the whole cycle against the sandbox over real HTTP.

Every call goes through the SDK's own client, so its request models build the bodies and its
response models (pydantic, with enum validators) parse every answer: a field the sandbox shapes
wrongly fails here exactly as it would fail an SDK user.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from autoenhance_sandbox.testing import SandboxServer
from support.images import decode, jpeg_bytes
from support.timing import wait_until

#: the photos uploaded (the downloads are checked against this size)
SIZE = (200, 150)


def put(url: str, data: bytes, content_type: str) -> int:
    """The SDK leaves the presigned PUT to the caller (README: ``requests.put``)."""
    with requests.Session() as session:
        session.trust_env = False
        return session.put(url, data=data, headers={"Content-Type": content_type}).status_code


def processed(sdk: Any, image_id: str) -> Any:
    return wait_until(lambda: (img := sdk.retrieve_image(id=image_id)).status == "processed" and img)


def test_orders_create_list_retrieve_update_delete(sdk: Any, sandbox: SandboxServer) -> None:
    from autoenhance import OrderOut, OrdersOut

    chosen = str(uuid.uuid4())
    created = sdk.create_order(name="Contract order", order_id=chosen)  # typed `object` by the SDK
    assert OrderOut.from_dict(created).order_id == chosen
    for index in range(6):
        sdk.create_order(name=f"Filler {index}")
    first = sdk.list_orders()
    assert isinstance(first, OrdersOut)
    assert first.pagination.per_page == 5
    assert len(first.orders) == 5
    rest = sdk.list_orders(offset=first.pagination.next_offset, per_page=15)
    assert rest.pagination.next_offset is None
    ids = [o.order_id for o in first.orders + rest.orders]
    assert len(ids) == len(set(ids)) == 7
    assert chosen in ids
    order = sdk.retrieve_order(id=chosen)
    assert isinstance(order, OrderOut)
    assert (order.name, order.status, order.is_processing, order.images) == (
        "Contract order", "waiting", False, []
    )  # fmt: skip
    renamed = sdk.update_order(id=chosen, name="Renamed")
    assert isinstance(renamed, OrderOut)
    assert renamed.name == "Renamed"
    assert sdk.delete_order(id=chosen) is None
    import autoenhance

    with pytest.raises(autoenhance.exceptions.NotFoundException):
        sdk.retrieve_order(id=chosen)


def test_image_upload_process_report_download_delete(sdk: Any, sandbox: SandboxServer) -> None:
    from autoenhance import ImageCreatedOut, ImageOut, OrderOut

    order_id = str(uuid.uuid4())  # unknown order id: image creation creates it (official examples)
    created = sdk.create_image(
        image_name="kitchen.jpg",
        order_id=order_id,
        enhance_type="warm",
        ai_version="5.x",
        cloud_type="LOW_CLOUD",
        sky_replacement=True,
        vertical_correction=True,
        lens_correction=False,
        window_pull=True,
        privacy=True,
        upscale=False,
        threesixty=False,
        rating=4,
        metadata={"listing": "L-1"},
        enhance=True,
    )
    assert isinstance(created, ImageCreatedOut)
    assert created.upload_url
    assert created.order_id == order_id
    assert created.status == "waiting"
    assert (created.enhance_type, created.ai_version, created.cloud_type) == ("warm", "5.x", "LOW_CLOUD")
    assert put(created.upload_url, jpeg_bytes(*SIZE), "image/jpeg") == 200
    image = processed(sdk, created.image_id)
    assert isinstance(image, ImageOut)
    assert image.metadata == {"listing": "L-1"}
    order = sdk.retrieve_order(id=order_id)
    assert isinstance(order, OrderOut)
    assert order.status == "processed"
    assert order.total_images == 1

    again = sdk.v3_images_id_process_post(id=created.image_id, enhance_type="neutral", ai_version="4.x")
    assert isinstance(again, ImageOut)
    assert again.status == "processing"
    assert (again.enhance_type, again.ai_version, again.lens_correction) == ("neutral", "4.x", True)
    processed(sdk, created.image_id)

    report = sdk.report_image(
        id=created.image_id,
        categories=["SKY_REPLACEMENT", "NO_COMPLAINTS"],
        comment="ok",
        score=5,
        source="API",
    )
    assert report["categories"] == ["SKY_REPLACEMENT", "NO_COMPLAINTS"]

    original = decode(bytes(sdk.download_original_image(id=created.image_id)))
    assert original.size == SIZE
    for fmt, pil_name in (("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")):
        data = sdk.download_enhanced_image(
            id=created.image_id, format=fmt, quality=80, preview=True, watermark=False, max_width=100
        )
        img = decode(bytes(data))
        assert (img.format, img.size[0]) == (pil_name, 100)
    scaled = decode(bytes(sdk.download_enhanced_image(id=created.image_id, scale=0.5, preview=False)))
    assert scaled.size == (100, 75)
    assert sdk.retrieve_image(id=created.image_id).downloaded is True  # preview=false = purchase
    marked = decode(bytes(sdk.download_enhanced_image(id=created.image_id, watermark=True, preview=True)))
    plain = decode(bytes(sdk.download_enhanced_image(id=created.image_id, watermark=False, preview=True)))
    assert marked.size == plain.size
    assert marked.tobytes() != plain.tobytes()
    small_original = decode(
        bytes(sdk.download_original_image(id=created.image_id, max_width=50, format="png", quality=60))
    )
    assert (small_original.format, small_original.size) == ("PNG", (50, 38))
    rendered = decode(
        bytes(sdk.download_original_image(id=created.image_id, scale=0.5, preview=True, watermark=True))
    )
    assert rendered.size[0] <= 100

    assert sdk.delete_image(id=created.image_id) is None
    import autoenhance

    with pytest.raises(autoenhance.exceptions.NotFoundException):
        sdk.retrieve_image(id=created.image_id)


def test_brackets_create_list_upload_process(sdk: Any, sandbox: SandboxServer) -> None:
    from autoenhance import BrackeCreatedtOut, OrderBracketsOut, OrderHDRProcessOut, OrderOut

    order_id = sdk.create_order(name="HDR")["order_id"]
    created = []
    for name in ("hall_1.jpg", "hall_2.jpg", "hall_3.jpg", "bath_1.jpg", "bath_2.jpg", "bath_3.jpg"):
        bracket = sdk.v3_brackets_post(order_id=order_id, name=name, metadata={"ev": name[-5]})
        assert isinstance(bracket, BrackeCreatedtOut)
        assert bracket.is_uploaded is False
        assert (
            put(
                bracket.upload_url,
                jpeg_bytes(*SIZE, level=60 + 10 * len(created)),
                "application/octet-stream",
            )
            == 200
        )
        created.append(bracket)
    listed = sdk.v3_orders_order_id_brackets_get(order_id=order_id)
    assert isinstance(listed, OrderBracketsOut)
    assert [b.bracket_id for b in listed.brackets] == [b.bracket_id for b in created]
    assert all(b.is_uploaded for b in listed.brackets)

    result = sdk.process_order(
        id=order_id,
        images=[
            {"bracket_ids": [b.bracket_id for b in created[:3]]},
            {"bracket_ids": [created[3].bracket_id]},
        ],
        enhance_type="neutral",
        ai_version="5.0",
        sky_replacement=True,
        cloud_type="CLEAR",
        window_pull=False,
        privacy=False,
        upscale=True,
    )
    assert isinstance(result, OrderHDRProcessOut)
    assert result.is_merging is True
    order = wait_until(
        lambda: (o := sdk.retrieve_order(id=order_id)).status == "processed" and len(o.images) == 2 and o
    )
    assert isinstance(order, OrderOut)
    assert sorted(i.image_name for i in order.images) == ["bath_1.jpg", "hall_1.jpg"]
    assert all(i.ai_version == "5.0" and i.upscale is True for i in order.images)
    merged = decode(bytes(sdk.download_enhanced_image(id=order.images[0].image_id, preview=True)))
    assert merged.size == (200, 150)

    second = sdk.create_order(name="HDR fixed")["order_id"]
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        bracket = sdk.v3_brackets_post(order_id=second, name=name)
        assert put(bracket.upload_url, jpeg_bytes(*SIZE), "application/octet-stream") == 200
    sdk.process_order(id=second, number_of_brackets_per_image=2)
    done = wait_until(lambda: (o := sdk.retrieve_order(id=second)).status == "processed" and o)
    assert [i.image_name for i in done.images] == ["a.jpg", "c.jpg"]


def test_sdk_errors_parse_as_its_error_models(sdk: Any, sandbox: SandboxServer) -> None:
    """422 and 404 bodies deserialize into the SDK's ValidationError/HTTPError shapes."""
    import autoenhance
    from autoenhance import HTTPError, ValidationError

    with pytest.raises(autoenhance.exceptions.NotFoundException) as missing:
        sdk.retrieve_image(id="no-such-image")
    assert HTTPError.from_json(missing.value.body).message == "Image no-such-image not found"
    order_id = sdk.create_order(name="x")["order_id"]
    with pytest.raises(autoenhance.exceptions.ApiException) as invalid:
        sdk.process_order(id=order_id)  # nothing uploaded
    assert invalid.value.status == 422
    assert ValidationError.from_json(invalid.value.body).message == "Validation error"
    unauthorised = autoenhance.Autoenhance(apiKey="wrong", baseURL=sandbox.base_url)
    with pytest.raises(autoenhance.exceptions.UnauthorizedException):
        unauthorised.list_orders()
