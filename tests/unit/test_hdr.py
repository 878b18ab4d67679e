"""HDR processing (hdr.py) through the hook's process_order: the grouping asked for, checked before
any request; /process, else the legacy /merge; a lost answer recovered by reading the order."""

from __future__ import annotations

import pytest
import requests

from autoenhance_provider.exceptions import (
    AutoenhanceNotFoundError,
    AutoenhanceValidationError,
)
from support.api import api, body_of, order, path_of

# ------------------------------------------------------------------------------ process_order
PROCESS = api("/v3/orders/o-1/process")
MERGE = api("/v3/orders/o-1/merge")


def test_process_order_automatic_grouping_sends_settings_only(hook, requests_mock):
    requests_mock.post(PROCESS, json=order("o-1", is_merging=True))

    result = hook.process_order("o-1", enhance_type="WARM", sky_replacement="true")

    assert result["is_merging"] is True
    req = requests_mock.last_request
    assert path_of(req) == "/v3/orders/o-1/process"
    assert body_of(req) == {"enhance_type": "warm", "sky_replacement": True}


def test_process_order_number_of_brackets_per_image(hook, requests_mock):
    requests_mock.post(PROCESS, json=order("o-1", is_merging=True))

    hook.process_order("o-1", number_of_brackets_per_image="3")

    assert body_of(requests_mock.last_request) == {"number_of_brackets_per_image": 3}


def test_process_order_explicit_groups_accept_lists_and_dicts(hook, requests_mock):
    requests_mock.post(PROCESS, json=order("o-1", is_merging=True))

    hook.process_order("o-1", images=[["b1", "b2", "b3"], {"bracket_ids": ["b4", "b5"]}], enhance=False)

    assert body_of(requests_mock.last_request) == {
        "enhance": False,
        "images": [{"bracket_ids": ["b1", "b2", "b3"]}, {"bracket_ids": ["b4", "b5"]}],
    }


def test_process_order_none_grouping_values_mean_automatic(hook, requests_mock):
    requests_mock.post(PROCESS, json=order("o-1", is_merging=True))

    hook.process_order("o-1", number_of_brackets_per_image=None, images=None)

    assert body_of(requests_mock.last_request) == {}


def test_process_order_both_grouping_modes_is_an_error_before_any_request(hook, requests_mock):
    with pytest.raises(AutoenhanceValidationError, match=r"number_of_brackets_per_image or images"):
        hook.process_order("o-1", number_of_brackets_per_image=3, images=[["b1"]])
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"number_of_brackets_per_image": 0}, "number_of_brackets_per_image"),
        ({"number_of_brackets_per_image": 10}, "number_of_brackets_per_image"),
        ({"images": []}, "bracket groups"),
        ({"images": [[]]}, "bracket group"),
        ({"enhance_type": "sepia"}, "allowed values"),
    ],
)
def test_process_order_bad_arguments_fail_before_any_request(hook, requests_mock, kwargs, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        hook.process_order("o-1", **kwargs)
    assert requests_mock.call_count == 0


def test_process_order_405_falls_back_to_merge(hook, requests_mock):
    requests_mock.post(PROCESS, status_code=405, json={"message": "Method Not Allowed", "detail": {}})
    requests_mock.post(MERGE, json={"order_id": "o-1"})

    result = hook.process_order("o-1", enhance_type="neutral")

    assert result == {"order_id": "o-1"}
    assert [path_of(r) for r in requests_mock.request_history] == [
        "/v3/orders/o-1/process",
        "/v3/orders/o-1/merge",
    ]
    assert body_of(requests_mock.last_request) == {"enhance_type": "neutral"}


def test_process_order_404_with_existing_order_falls_back_to_merge(hook, requests_mock):
    requests_mock.post(PROCESS, status_code=404, json={"message": "Not Found", "detail": {}})
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1"))
    requests_mock.post(MERGE, json={"order_id": "o-1"})

    hook.process_order("o-1")

    assert [(r.method, path_of(r)) for r in requests_mock.request_history] == [
        ("POST", "/v3/orders/o-1/process"),
        ("GET", "/v3/orders/o-1"),
        ("POST", "/v3/orders/o-1/merge"),
    ]


def test_process_order_404_for_unknown_order_is_not_found(hook, requests_mock):
    requests_mock.post(PROCESS, status_code=404, json={"message": "Not Found", "detail": {}})
    requests_mock.get(api("/v3/orders/o-1"), status_code=404, json={"message": "Not Found", "detail": {}})
    merge = requests_mock.post(MERGE, json={})

    with pytest.raises(AutoenhanceNotFoundError):
        hook.process_order("o-1")
    assert merge.call_count == 0


@pytest.mark.parametrize("grouping", [{"number_of_brackets_per_image": 3}, {"images": [["b1", "b2"]]}])
def test_process_order_explicit_grouping_on_legacy_api_is_a_clear_error(hook, requests_mock, grouping):
    requests_mock.post(PROCESS, status_code=405, json={"message": "Method Not Allowed", "detail": {}})
    merge = requests_mock.post(MERGE, json={})

    with pytest.raises(AutoenhanceValidationError, match=r"legacy /merge"):
        hook.process_order("o-1", **grouping)
    assert merge.call_count == 0


def test_process_order_lost_response_recovers_when_grouping_started(hook, requests_mock, sleeps):
    requests_mock.post(PROCESS, exc=requests.exceptions.ReadTimeout("read timed out"))
    requests_mock.get(api("/v3/orders/o-1"), json=order("o-1", is_merging=True))

    result = hook.process_order("o-1")

    assert result["is_merging"] is True
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET"]
