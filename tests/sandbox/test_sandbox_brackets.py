"""HDR brackets: registration, uploads, the three grouping modes, legacy /merge and hdr images."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from autoenhance_sandbox_helpers import create_image, create_order, keyed, open_image, put_bytes, solid_bytes

from autoenhance_sandbox.state import auto_group
from autoenhance_sandbox.testing import SandboxServer
from support.timing import wait_until

pytestmark = pytest.mark.integration
OCTET = "application/octet-stream"


def add_bracket(
    http: requests.Session, sandbox: SandboxServer, order_id: str, name: str, data: bytes | None = None
) -> dict:
    response = http.post(
        sandbox.url("/v3/brackets/"), json={"order_id": order_id, "name": name}, headers=keyed(sandbox)
    )
    assert response.status_code == 200, response.text
    bracket = response.json()
    if data is not None:
        assert put_bytes(http, bracket["upload_url"], data, OCTET).status_code == 200
    return bracket


def process(
    http: requests.Session,
    sandbox: SandboxServer,
    order_id: str,
    body: dict | None = None,
    action: str = "process",
) -> requests.Response:
    return http.post(sandbox.url(f"/v3/orders/{order_id}/{action}"), json=body, headers=keyed(sandbox))


def wait_images(
    http: requests.Session, sandbox: SandboxServer, order_id: str, status: str = "processed"
) -> dict:
    def ready() -> dict | None:
        order = http.get(sandbox.url(f"/v3/orders/{order_id}")).json()
        done = order["images"] and all(i["status"] == status for i in order["images"])
        return order if done and not order["is_merging"] else None

    return wait_until(ready)


def test_bracket_create_upload_and_list(http: requests.Session, sandbox: SandboxServer) -> None:
    order = create_order(http, sandbox)
    bracket = add_bracket(http, sandbox, order["order_id"], "room_1.jpg")
    assert bracket.keys() >= {"bracket_id", "name", "order_id", "is_uploaded", "metadata", "upload_url"}
    assert bracket["is_uploaded"] is False
    assert parse_qs(urlsplit(bracket["upload_url"]).query)["X-Amz-SignedHeaders"] == ["content-type;host"]
    wrong = put_bytes(http, bracket["upload_url"], solid_bytes((10, 10, 10)), "image/jpeg")
    assert wrong.status_code == 403
    assert "SignatureDoesNotMatch" in wrong.text
    listed = http.get(sandbox.url(f"/v3/orders/{order['order_id']}/brackets")).json()["brackets"]
    assert [b["is_uploaded"] for b in listed] == [False]
    assert put_bytes(http, bracket["upload_url"], solid_bytes((10, 10, 10)), OCTET).status_code == 200
    listed = http.get(sandbox.url(f"/v3/orders/{order['order_id']}/brackets/")).json()["brackets"]
    assert [(b["bracket_id"], b["is_uploaded"]) for b in listed] == [(bracket["bracket_id"], True)]
    assert "upload_url" not in listed[0]
    assert sandbox.stats()["brackets_created"] == 1


def test_bracket_validation_and_unknown_order(http: requests.Session, sandbox: SandboxServer) -> None:
    url = sandbox.url("/v3/brackets")
    missing = http.post(url, json={}, headers=keyed(sandbox))
    assert missing.status_code == 422
    assert set(missing.json()["detail"]["json"]) == {"order_id", "name"}
    unknown = http.post(url, json={"order_id": "nope", "name": "a.jpg"}, headers=keyed(sandbox))
    assert unknown.status_code == 404


def test_automatic_grouping_by_name_stem(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    shades = {
        "kitchen_1.jpg": 30,
        "kitchen_2.jpg": 90,
        "kitchen_3.jpg": 150,
        "bath-1.png": 200,
        "bath-2.png": 100,
    }
    for name, shade in shades.items():
        add_bracket(http, sandbox, order_id, name, solid_bytes((shade, shade, shade)))
    sandbox.config.merge_seconds = 3600  # merging until the test advances the sandbox clock
    response = process(http, sandbox, order_id, {"enhance_type": "warm"})
    assert response.status_code == 200
    assert (response.json()["is_merging"], response.json()["images"]) == (True, [])
    assert response.json()["status"] == "processing"
    merging = http.get(sandbox.url(f"/v3/orders/{order_id}")).json()
    assert merging["is_merging"] is True
    assert merging["images"] == []
    sandbox.advance_clock(3600)
    order = wait_images(http, sandbox, order_id)
    assert [i["image_name"] for i in order["images"]] == ["kitchen_1.jpg", "bath-1.png"]
    assert all(i["enhance_type"] == "warm" for i in order["images"])
    assert order["status"] == "processed"
    kitchen = order["images"][0]["image_id"]
    merged = http.get(sandbox.url(f"/v3/images/{kitchen}/original"))
    assert merged.status_code == 200
    pixel = open_image(merged.content).getpixel((10, 10))
    assert all(abs(channel - 90) <= 3 for channel in pixel)  # average of 30, 90, 150
    brackets = http.get(sandbox.url(f"/v3/orders/{order_id}/brackets")).json()["brackets"]
    assert [b["image_id"] for b in brackets][:3] == [kitchen] * 3
    assert sandbox.stats()["merged_images"] == 2


def test_fixed_number_of_brackets_per_image(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    for i in range(5):
        add_bracket(http, sandbox, order_id, f"IMG_{i:04d}.jpg", solid_bytes((i * 40, 0, 0)))
    assert process(http, sandbox, order_id, {"number_of_brackets_per_image": 2}).status_code == 200
    order = wait_images(http, sandbox, order_id)
    assert [i["image_name"] for i in order["images"]] == ["IMG_0000.jpg", "IMG_0002.jpg", "IMG_0004.jpg"]


def test_manual_groups_and_upload_order(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    a = add_bracket(http, sandbox, order_id, "a.jpg")
    b = add_bracket(http, sandbox, order_id, "b.jpg", solid_bytes((1, 2, 3)))
    c = add_bracket(http, sandbox, order_id, "c.jpg", solid_bytes((4, 5, 6)))
    not_uploaded = process(http, sandbox, order_id, {"images": [{"bracket_ids": [a["bracket_id"]]}]})
    assert not_uploaded.status_code == 422
    assert "images" in not_uploaded.json()["detail"]["json"]
    unknown = process(http, sandbox, order_id, {"images": [{"bracket_ids": ["nope"]}]})
    assert unknown.status_code == 422
    put_bytes(http, a["upload_url"], solid_bytes((7, 8, 9)), OCTET)  # uploaded last
    groups = {
        "images": [{"bracket_ids": [c["bracket_id"], a["bracket_id"]]}, {"bracket_ids": [b["bracket_id"]]}]
    }
    assert process(http, sandbox, order_id, groups).status_code == 200
    order = wait_images(http, sandbox, order_id)
    assert [i["image_name"] for i in order["images"]] == ["c.jpg", "b.jpg"]


def test_grouping_modes_are_exclusive(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    bracket = add_bracket(http, sandbox, order_id, "a.jpg", solid_bytes((1, 1, 1)))
    both = {"number_of_brackets_per_image": 3, "images": [{"bracket_ids": [bracket["bracket_id"]]}]}
    response = process(http, sandbox, order_id, both)
    assert response.status_code == 422
    assert "_schema" in response.json()["detail"]["json"]
    bad = process(http, sandbox, order_id, {"number_of_brackets_per_image": "three"})
    assert bad.json()["detail"]["json"] == {"number_of_brackets_per_image": ["Not a valid integer."]}


def test_only_uploaded_brackets_take_part_and_conflicts(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    add_bracket(http, sandbox, order_id, "pending.jpg")
    nothing = process(http, sandbox, order_id)
    assert nothing.status_code == 422
    for i in range(3):
        add_bracket(http, sandbox, order_id, f"hall_{i + 1}.jpg", solid_bytes((50, 50, 50)))
    sandbox.config.merge_seconds = 3600
    assert process(http, sandbox, order_id).status_code == 200
    busy = process(http, sandbox, order_id)
    assert busy.status_code == 409
    assert "merging" in busy.json()["message"]
    sandbox.advance_clock(3600)
    order = wait_images(http, sandbox, order_id)
    assert [i["image_name"] for i in order["images"]] == ["hall_1.jpg"]
    done = process(http, sandbox, order_id)
    assert done.status_code == 409
    assert "already" in done.json()["message"]


def test_legacy_merge_without_body_groups_in_threes(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    for i in range(6):
        add_bracket(http, sandbox, order_id, f"DSC{1000 + i}.jpg", solid_bytes((i * 30, 60, 90)))
    response = http.post(sandbox.url(f"/v3/orders/{order_id}/merge"), headers=keyed(sandbox))
    assert response.status_code == 200
    assert response.json()["is_merging"] is True
    order = wait_images(http, sandbox, order_id)
    assert [i["image_name"] for i in order["images"]] == ["DSC1000.jpg", "DSC1003.jpg"]
    assert sandbox.stats()["requests"]["POST /v3/orders/{order_id}/merge"] == {"200": 1}


def test_undecodable_bracket_fails_its_group(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    add_bracket(http, sandbox, order_id, "ok_1.jpg", solid_bytes((1, 1, 1)))
    add_bracket(http, sandbox, order_id, "ok_2.jpg", b"\x00not an image")
    add_bracket(http, sandbox, order_id, "fine_1.jpg", solid_bytes((9, 9, 9)))
    add_bracket(http, sandbox, order_id, "fine_2.jpg", solid_bytes((9, 9, 9)))
    process(http, sandbox, order_id)
    order = wait_until(
        lambda: (
            (o := http.get(sandbox.url(f"/v3/orders/{order_id}")).json())["images"]
            and not o["is_processing"]
            and o
        )
    )
    by_name = {i["image_name"]: i for i in order["images"]}
    assert by_name["ok_1.jpg"]["status"] == "error"
    assert "ok_2.jpg" in by_name["ok_1.jpg"]["status_reason"]
    assert by_name["fine_1.jpg"]["status"] == "processed"
    assert order["status"] == "error"


def test_legacy_hdr_images_are_brackets(http: requests.Session, sandbox: SandboxServer) -> None:
    order_id = create_order(http, sandbox)["order_id"]
    missing_order = http.post(
        sandbox.url("/v3/images"), json={"image_name": "x.jpg", "hdr": True}, headers=keyed(sandbox)
    )
    assert missing_order.status_code == 422
    for i in range(3):
        image = create_image(
            http, sandbox, f"living_{i}.jpg", order_id=order_id, hdr=True, contentType="image/png"
        )
        assert (
            put_bytes(http, image["upload_url"], solid_bytes((i * 50, 0, 0)), "image/png").status_code == 200
        )
    brackets = http.get(sandbox.url(f"/v3/orders/{order_id}/brackets")).json()["brackets"]
    assert [b["is_uploaded"] for b in brackets] == [True, True, True]
    assert http.get(sandbox.url(f"/v3/orders/{order_id}")).json()["images"] == []
    http.post(
        sandbox.url(f"/v3/orders/{order_id}/merge"), json={"sky_replacement": True}, headers=keyed(sandbox)
    )
    order = wait_images(http, sandbox, order_id)
    assert [(i["image_name"], i["sky_replacement"], i["hdr"]) for i in order["images"]] == [
        ("living_0.jpg", True, True)
    ]


@pytest.mark.parametrize(
    ("names", "groups"),
    [
        (["kitchen_1.jpg", "kitchen_2.jpg", "kitchen_3.jpg", "bed-1.jpg", "bed-2.jpg"], [[0, 1, 2], [3, 4]]),
        (["a (1).jpg", "a (2).jpg", "b_ev-2.jpg", "b_ev0.jpg", "b_ev+2.jpg"], [[0, 1], [2, 3, 4]]),
        (["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg", "IMG_0004.jpg"], [[0, 1, 2], [3]]),
        (["x.jpg"], [[0]]),
        (["room_1.jpg", "room_2.jpg", "single.jpg"], [[0, 1], [2]]),
    ],
)
def test_auto_group_rule(names: list[str], groups: list[list[int]]) -> None:
    assert auto_group(names) == groups
