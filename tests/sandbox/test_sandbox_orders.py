"""Orders: shapes, auth, errors, trailing slashes, pagination, duplicates."""

from __future__ import annotations

import base64
import re

import pytest
import requests
from autoenhance_sandbox_helpers import create_image, create_order, keyed, processed_image

from autoenhance_sandbox.testing import SandboxServer

pytestmark = pytest.mark.integration

ISO_NO_TZ = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$")
ORDER_FIELDS = {
    "order_id", "name", "status", "is_processing", "is_merging", "is_deleted", "total_images", "images",
    "created_at", "last_updated_at",
}  # fmt: skip


def test_create_order_shape(http: requests.Session, sandbox: SandboxServer) -> None:
    response = http.post(sandbox.url("/v3/orders"), json={"name": "Listing 1"}, headers=keyed(sandbox))
    assert response.status_code == 200
    order = response.json()
    assert order.keys() >= ORDER_FIELDS
    assert order["name"] == "Listing 1"
    assert order["status"] == "waiting"
    assert (order["is_processing"], order["is_merging"], order["is_deleted"]) == (False, False, False)
    assert order["total_images"] == 0
    assert order["images"] == []
    assert ISO_NO_TZ.match(order["created_at"])
    assert ISO_NO_TZ.match(order["last_updated_at"])
    assert sandbox.stats()["orders_created"] == 1


@pytest.mark.parametrize("path", ["/v3/orders", "/v3/orders/"])
def test_create_order_without_body_and_both_slash_spellings(
    http: requests.Session, sandbox: SandboxServer, path: str
) -> None:
    response = http.post(sandbox.url(path), headers=keyed(sandbox), allow_redirects=False)
    assert response.status_code == 200
    order_id = response.json()["order_id"]
    for item_path in (f"/v3/orders/{order_id}", f"/v3/orders/{order_id}/"):
        got = http.get(sandbox.url(item_path), allow_redirects=False)
        assert got.status_code == 200
        assert got.json()["order_id"] == order_id
    listed = http.get(sandbox.url("/v3/orders/?per_page=5"), headers=keyed(sandbox), allow_redirects=False)
    assert listed.status_code == 200
    assert sandbox.stats()["requests"]["GET /v3/orders/{order_id}"] == {"200": 2}


def test_client_chosen_order_id_and_duplicate_conflict(
    http: requests.Session, sandbox: SandboxServer
) -> None:
    order = create_order(http, sandbox, order_id="my-order-42", name="Mine")
    assert order["order_id"] == "my-order-42"
    again = http.post(sandbox.url("/v3/orders"), json={"order_id": "my-order-42"}, headers=keyed(sandbox))
    assert again.status_code == 409
    assert again.json() == {"message": "Order with order_id my-order-42 already exists", "detail": {}}
    assert http.delete(sandbox.url("/v3/orders/my-order-42"), headers=keyed(sandbox)).status_code == 204
    assert create_order(http, sandbox, order_id="my-order-42")["order_id"] == "my-order-42"


KEYED_ENDPOINTS = [
    ("POST", "/v3/orders"),
    ("GET", "/v3/orders"),
    ("PATCH", "/v3/orders/{order}"),
    ("DELETE", "/v3/orders/{order}"),
    ("POST", "/v3/orders/{order}/process"),
    ("POST", "/v3/orders/{order}/merge"),
    ("POST", "/v3/images"),
    ("POST", "/v3/images/{image}/process"),
    ("PATCH", "/v3/images/{image}/process"),
    ("DELETE", "/v3/images/{image}"),
    ("POST", "/v3/images/{image}/report"),
    ("GET", "/v3/images/{image}/enhanced"),
    ("POST", "/v3/brackets"),
]


@pytest.mark.parametrize(("method", "template"), KEYED_ENDPOINTS)
@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_keyed_endpoints_reject_missing_or_wrong_key(
    http: requests.Session, sandbox: SandboxServer, method: str, template: str, key: str | None
) -> None:
    image = create_image(http, sandbox)
    path = template.format(order=image["order_id"], image=image["image_id"])
    headers = {"x-api-key": key} if key else {}
    response = http.request(method, sandbox.url(path), json={}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized", "detail": {}}
    assert sandbox.stats()["live_images"] == 1  # nothing was deleted or created


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong-key"}])
def test_open_endpoints_need_no_key(http: requests.Session, sandbox: SandboxServer, headers: dict) -> None:
    image = processed_image(http, sandbox)
    image_id, order_id = image["image_id"], image["order_id"]
    for path in (
        f"/v3/orders/{order_id}",
        f"/v3/images/{image_id}",
        f"/v3/orders/{order_id}/brackets",
    ):
        assert http.get(sandbox.url(path), headers=headers).status_code == 200, path
    for kind in ("original", "preview", "watermark"):
        response = http.get(
            sandbox.url(f"/v3/images/{image_id}/{kind}"), headers=headers, allow_redirects=False
        )
        assert response.status_code == 302, kind


def test_not_found_shapes(http: requests.Session, sandbox: SandboxServer) -> None:
    for method, path in [
        ("GET", "/v3/orders/nope"),
        ("GET", "/v3/images/nope"),
        ("GET", "/v3/orders/nope/brackets"),
        ("PATCH", "/v3/orders/nope"),
        ("DELETE", "/v3/orders/nope"),
        ("DELETE", "/v3/images/nope"),
        ("POST", "/v3/orders/nope/process"),
        ("GET", "/v3/images/nope/enhanced"),
        ("GET", "/v3/images/nope/original"),
    ]:
        response = http.request(method, sandbox.url(path), json={}, headers=keyed(sandbox))
        assert response.status_code == 404, (method, path)
        body = response.json()
        assert body["detail"] == {}
        assert "not found" in body["message"].lower()
    unknown = http.get(sandbox.url("/v3/nothing-here"))
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "Not Found", "detail": {}}


def test_method_not_allowed_has_json_error(http: requests.Session, sandbox: SandboxServer) -> None:
    response = http.put(sandbox.url("/v3/orders"), headers=keyed(sandbox))
    assert response.status_code == 405
    assert response.json() == {"message": "Method Not Allowed", "detail": {}}


def test_patch_order_renames_and_validates(http: requests.Session, sandbox: SandboxServer) -> None:
    order = create_order(http, sandbox, name="old")
    url = sandbox.url(f"/v3/orders/{order['order_id']}")
    renamed = http.patch(url, json={"name": "new", "order_id": "ignored"}, headers=keyed(sandbox))
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "new"
    assert renamed.json()["order_id"] == order["order_id"]
    bad = http.patch(url, json={"name": 5}, headers=keyed(sandbox))
    assert bad.status_code == 422
    assert bad.json() == {
        "message": "Validation error",
        "detail": {"json": {"name": ["Not a valid string."]}},
    }
    unknown = http.patch(url, json={"name": "newer", "extra": 1}, headers=keyed(sandbox))
    assert unknown.json() == {
        "message": "Validation error",
        "detail": {"json": {"extra": ["Unknown field."]}},
    }
    assert http.get(url).json()["name"] == "new"


def test_delete_order_hides_it_and_its_images(http: requests.Session, sandbox: SandboxServer) -> None:
    image = create_image(http, sandbox)
    order_id = image["order_id"]
    response = http.delete(sandbox.url(f"/v3/orders/{order_id}/"), headers=keyed(sandbox))
    assert response.status_code == 204
    assert response.content == b""
    assert http.get(sandbox.url(f"/v3/orders/{order_id}")).status_code == 404
    assert http.get(sandbox.url(f"/v3/images/{image['image_id']}")).status_code == 404
    stats = sandbox.stats()
    assert (stats["live_orders"], stats["live_images"]) == (0, 0)


def test_malformed_json_and_unknown_fields(http: requests.Session, sandbox: SandboxServer) -> None:
    bad = http.post(
        sandbox.url("/v3/orders"),
        data=b"{not json",
        headers=keyed(sandbox, **{"Content-Type": "application/json"}),
    )
    assert bad.status_code == 422
    assert "_schema" in bad.json()["detail"]["json"]
    not_object = http.post(sandbox.url("/v3/orders"), json=[1, 2], headers=keyed(sandbox))
    assert not_object.status_code == 422
    unknown = http.post(
        sandbox.url("/v3/orders"), json={"name": "x", "whatever": {"a": 1}}, headers=keyed(sandbox)
    )
    assert unknown.status_code == 422  # OrderIn has no additional properties (SDK 1.1.0)
    assert unknown.json()["detail"]["json"] == {"whatever": ["Unknown field."]}
    assert sandbox.stats()["live_orders"] == 0


def test_pagination_opaque_tokens_newest_first(http: requests.Session, sandbox: SandboxServer) -> None:
    created = [create_order(http, sandbox, name=f"order {i}")["order_id"] for i in range(35)]
    seen: list[str] = []
    offset = None
    pages = []
    while True:
        params = {"per_page": 15, **({"offset": offset} if offset else {})}
        response = http.get(sandbox.url("/v3/orders"), params=params, headers=keyed(sandbox))
        assert response.status_code == 200
        body = response.json()
        assert body["pagination"]["per_page"] == 15
        pages.append(len(body["orders"]))
        seen += [order["order_id"] for order in body["orders"]]
        offset = body["pagination"]["next_offset"]
        if offset is None:
            break
        assert isinstance(offset, str)
        assert not offset.isdigit()
    assert pages == [15, 15, 5]
    assert seen == list(reversed(created))


def test_pagination_clamping_default_and_errors(http: requests.Session, sandbox: SandboxServer) -> None:
    for i in range(17):
        create_order(http, sandbox, name=str(i))

    def page(**params: object) -> requests.Response:
        return http.get(sandbox.url("/v3/orders"), params=params, headers=keyed(sandbox))

    default = page().json()
    assert default["pagination"]["per_page"] == 5  # SDK Pagination default
    assert len(default["orders"]) == 5
    assert page(per_page=15).json()["pagination"]["per_page"] == 15
    for out_of_range in (0, 16, 100):  # default per_page_over_max="reject": Range(1, 15)
        refused = page(per_page=out_of_range)
        assert refused.status_code == 422
        assert list(refused.json()["detail"]["query"]) == ["per_page"]
    sandbox.set_options(per_page_over_max="clamp")
    clamped = page(per_page=100).json()
    assert (clamped["pagination"]["per_page"], len(clamped["orders"])) == (15, 15)
    tiny = page(per_page=0).json()
    assert (tiny["pagination"]["per_page"], len(tiny["orders"])) == (1, 1)
    bad_token = page(offset="definitely-not-a-token!")
    assert bad_token.status_code == 422
    assert "offset" in bad_token.json()["detail"]["query"]
    forged = base64.urlsafe_b64encode(b'{"after": "x"}').decode()
    assert page(offset=forged).status_code == 422
    bad_per_page = page(per_page="many")
    assert bad_per_page.status_code == 422
    assert bad_per_page.json()["detail"]["query"]["per_page"] == ["Not a valid integer."]


def test_pagination_skips_deleted_orders(http: requests.Session, sandbox: SandboxServer) -> None:
    ids = [create_order(http, sandbox)["order_id"] for _ in range(4)]
    http.delete(sandbox.url(f"/v3/orders/{ids[2]}"), headers=keyed(sandbox))
    first = http.get(sandbox.url("/v3/orders"), params={"per_page": 2}, headers=keyed(sandbox)).json()
    assert [o["order_id"] for o in first["orders"]] == [ids[3], ids[1]]
    rest = http.get(
        sandbox.url("/v3/orders"),
        params={"per_page": 2, "offset": first["pagination"]["next_offset"]},
        headers=keyed(sandbox),
    ).json()
    assert [o["order_id"] for o in rest["orders"]] == [ids[0]]
    assert rest["pagination"]["next_offset"] is None


def test_order_status_follows_images(http: requests.Session, sandbox: SandboxServer) -> None:
    image = processed_image(http, sandbox)
    order = http.get(sandbox.url(f"/v3/orders/{image['order_id']}")).json()
    assert order["status"] == "processed"
    assert order["total_images"] == 1
    create_image(http, sandbox, "second.jpg", order_id=image["order_id"])
    order = http.get(sandbox.url(f"/v3/orders/{image['order_id']}")).json()
    assert order["status"] == "waiting"
    assert order["total_images"] == 2
