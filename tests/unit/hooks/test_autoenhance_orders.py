"""AutoenhanceHook: request shape and response handling of the order endpoints."""

from __future__ import annotations

import pytest

from autoenhance_provider.compat import AirflowFailException
from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceNotFoundError,
    AutoenhanceValidationError,
)
from support.api import FAKE_KEY, api, body_of, image, order, path_of, query_of


def test_helper_constants_match_conftest(api_key, base_url):
    from support.api import BASE_URL

    assert api_key == FAKE_KEY
    assert base_url == BASE_URL


# ------------------------------------------------------------------------------ common headers
def test_api_requests_carry_key_and_user_agent_but_no_optional_headers(hook, requests_mock):
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1"))

    hook.get_order("o-1")

    headers = requests_mock.last_request.headers
    assert headers["x-api-key"] == FAKE_KEY
    assert headers["Accept"] == "application/json"
    assert "x-api-version" not in headers
    assert "x-dev-mode" not in headers
    ua = headers["User-Agent"]
    assert "airflow-provider-autoenhance/" in ua
    assert "apache-airflow/" in ua


def test_api_version_and_dev_mode_headers_from_extras(set_connection, make_hook, requests_mock):
    set_connection(extra={"api_version": "2025-05-08", "dev_mode": True})
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1"))

    make_hook().get_order("o-1")

    headers = requests_mock.last_request.headers
    assert headers["x-api-version"] == "2025-05-08"
    assert headers["x-dev-mode"] == "true"
    assert headers["x-api-key"] == FAKE_KEY


def test_dev_mode_false_string_sends_no_header(set_connection, make_hook, requests_mock):
    set_connection(extra={"dev_mode": "false"})
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1"))

    make_hook().get_order("o-1")

    assert "x-dev-mode" not in requests_mock.last_request.headers


# ------------------------------------------------------------------------------ create_order
@pytest.mark.parametrize(
    ("kwargs", "expected_body"),
    [
        ({}, {}),
        ({"name": "Listing 1"}, {"name": "Listing 1"}),
        ({"order_id": "my-order"}, {"order_id": "my-order"}),
        ({"name": "Listing 1", "order_id": "my-order"}, {"name": "Listing 1", "order_id": "my-order"}),
    ],
)
def test_create_order_request_shape(hook, requests_mock, kwargs, expected_body):
    created = order(kwargs.get("order_id", "srv-1"), status="waiting")
    requests_mock.post(api("/v3/orders/"), json=created)

    result = hook.create_order(**kwargs)

    assert result == created
    req = requests_mock.last_request
    assert req.method == "POST"
    assert path_of(req) == "/v3/orders/"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["x-api-key"] == FAKE_KEY
    assert body_of(req) == expected_body
    assert requests_mock.call_count == 1


def test_create_order_rejects_blank_order_id_without_request(hook, requests_mock):
    with pytest.raises(AutoenhanceValidationError, match="order_id"):
        hook.create_order(order_id="  ")
    assert requests_mock.call_count == 0


# ------------------------------------------------------------------------------ get_order
def test_get_order_path_has_no_trailing_slash(hook, requests_mock):
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1", [image("i-1")]))

    result = hook.get_order("o-1")

    assert result["images"][0]["image_id"] == "i-1"
    req = requests_mock.last_request
    assert req.method == "GET"
    assert path_of(req) == "/v3/orders/o-1"
    assert req.body is None


def test_get_order_quotes_the_id_as_one_path_segment(hook, requests_mock):
    requests_mock.get(api("/v3/orders/crm%3A4711%40x%2By~z"), json=order("crm:4711@x+y~z"))

    hook.get_order("crm:4711@x+y~z")

    assert requests_mock.last_request.url == api("/v3/orders/crm%3A4711%40x%2By~z")


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("", "order_id must not be empty"),
        ("   ", "order_id must not be empty"),
        (".", "is not a valid id"),
        ("..", "is not a valid id"),
        ("a/../b", "is not a valid id"),
        ("a?b#c d", "is not a valid id"),
        ("{{ conn.autoenhance_default.password }}", "is not a valid id"),
        ("50%2F", "is not a valid id"),
        ("a\\b", "is not a valid id"),
        ("a\nb", "is not a valid id"),
        (["o-1"], "order_id must be a string, got list"),
        ({"order_id": "o-1"}, "order_id must be a string, got dict"),
        (None, "order_id must be a string, got NoneType"),
        (42, "order_id must be a string, got int"),
    ],
)
@pytest.mark.parametrize("call", ["get_order", "delete_order", "list_brackets", "download_order"])
def test_bad_identifiers_fail_before_any_request(hook, requests_mock, bad, says, call):
    from autoenhance_provider.exceptions import AutoenhanceValidationError

    args = (bad, None) if call == "download_order" else (bad,)
    with pytest.raises(AutoenhanceValidationError, match=says):
        getattr(hook, call)(*args)
    assert requests_mock.call_count == 0


def test_get_order_404_raises_not_found_fail_exception(hook, requests_mock):
    requests_mock.get(api("/v3/orders/nope"), status_code=404, json={"message": "Not Found", "detail": {}})

    with pytest.raises(AutoenhanceNotFoundError) as info:
        hook.get_order("nope")

    assert isinstance(info.value, AirflowFailException)
    assert info.value.status_code == 404
    assert "/v3/orders/nope" in str(info.value)
    assert requests_mock.call_count == 1


def test_get_order_or_none(hook, requests_mock):
    requests_mock.get(api("/v3/orders/gone"), status_code=404, json={"message": "Not Found", "detail": {}})
    requests_mock.get(api("/v3/orders/deleted"), json=order("deleted", is_deleted=True))
    requests_mock.get(api("/v3/orders/live"), json=order("live"))

    assert hook.get_order_or_none("gone") is None
    assert hook.get_order_or_none("deleted") is None
    assert hook.get_order_or_none("live")["order_id"] == "live"


def test_non_json_success_body_is_an_api_error(hook, requests_mock):
    requests_mock.get(
        api("/v3/orders/o-1"), text="<html>gateway</html>", headers={"Content-Type": "text/html"}
    )

    with pytest.raises(AutoenhanceAPIError, match="not JSON"):
        hook.get_order("o-1")


# ------------------------------------------------------------------------------ list_orders
def test_list_orders_follows_opaque_offsets_across_three_pages(hook, requests_mock):
    # Opaque, case-sensitive tokens with characters that need URL encoding.
    tok1, tok2 = "eyJQYWdlIjogMn0=+/Ab", "eyJQYWdlIjogM30=&Zz"
    pages = {
        None: {"orders": [order("o1"), order("o2")], "pagination": {"next_offset": tok1, "per_page": 2}},
        tok1: {"orders": [order("o3"), order("o4")], "pagination": {"next_offset": tok2, "per_page": 2}},
        tok2: {"orders": [order("o5")], "pagination": {"next_offset": None, "per_page": 2}},
    }

    def respond(request, context):
        offset = query_of(request).get("offset", [None])[0]
        return pages[offset]

    requests_mock.get(api("/v3/orders/"), json=respond)

    ids = [o["order_id"] for o in hook.list_orders(per_page=2)]

    assert ids == ["o1", "o2", "o3", "o4", "o5"]
    history = requests_mock.request_history
    assert len(history) == 3
    assert all(path_of(r) == "/v3/orders/" and r.method == "GET" for r in history)
    assert [query_of(r).get("offset") for r in history] == [None, [tok1], [tok2]]
    assert all(query_of(r)["per_page"] == ["2"] for r in history)


def test_list_orders_is_lazy(hook, requests_mock):
    requests_mock.get(
        api("/v3/orders/"),
        json={"orders": [order("o1")], "pagination": {"next_offset": "t", "per_page": 1}},
    )

    pages = hook.list_orders()
    assert requests_mock.call_count == 0
    assert next(pages)["order_id"] == "o1"
    assert requests_mock.call_count == 1
    assert "per_page" not in query_of(requests_mock.last_request)


def test_list_orders_stops_on_empty_page_even_with_a_token(hook, requests_mock):
    requests_mock.get(
        api("/v3/orders/"),
        [
            {"json": {"orders": [order("o1")], "pagination": {"next_offset": "t1"}}},
            {"json": {"orders": [], "pagination": {"next_offset": "t2"}}},
        ],
    )

    assert [o["order_id"] for o in hook.list_orders()] == ["o1"]
    assert requests_mock.call_count == 2


def test_list_orders_repeated_token_is_an_error_not_an_endless_loop(hook, requests_mock):
    requests_mock.get(
        api("/v3/orders/"), json={"orders": [order("o1")], "pagination": {"next_offset": "same"}}
    )

    with pytest.raises(AutoenhanceAPIError, match="repeated"):
        list(hook.list_orders())
    assert requests_mock.call_count == 2


@pytest.mark.parametrize("per_page", [0, -1, "x", 2.5])
def test_list_orders_rejects_bad_per_page_before_any_request(hook, requests_mock, per_page):
    with pytest.raises(AutoenhanceValidationError, match="per_page"):
        next(hook.list_orders(per_page=per_page))
    assert requests_mock.call_count == 0


# ------------------------------------------------------------------------------ update / delete
def test_update_order_patches_the_name(hook, requests_mock):
    requests_mock.patch(api("/v3/orders/o-1"), json=order("o-1", name="New"))

    result = hook.update_order("o-1", "New")

    assert result["name"] == "New"
    req = requests_mock.last_request
    assert req.method == "PATCH"
    assert path_of(req) == "/v3/orders/o-1"
    assert body_of(req) == {"name": "New"}


def test_delete_order_sends_delete_and_accepts_204(hook, requests_mock):
    requests_mock.delete(api("/v3/orders/o-1"), status_code=204)

    assert hook.delete_order("o-1") is None

    req = requests_mock.last_request
    assert req.method == "DELETE"
    assert path_of(req) == "/v3/orders/o-1"
    assert req.headers["x-api-key"] == FAKE_KEY
    assert requests_mock.call_count == 1


def test_delete_order_of_unknown_order_raises_not_found(hook, requests_mock):
    requests_mock.delete(api("/v3/orders/o-1"), status_code=404, json={"message": "Not Found", "detail": {}})

    with pytest.raises(AutoenhanceNotFoundError):
        hook.delete_order("o-1")
    assert requests_mock.call_count == 1
