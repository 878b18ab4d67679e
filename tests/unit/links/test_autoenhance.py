"""The order extra link (``links/autoenhance.py``): its name, the URL it reads from XCom, its declaration.

Which task classes offer it: tests/unit/operators/test_base.py."""

from __future__ import annotations

from unittest import mock

from autoenhance_provider.links.autoenhance import AutoenhanceOrderLink
from support.api import APP_URL, ORDER_ID


def test_link_name():
    assert AutoenhanceOrderLink.name == "Autoenhance order"
    assert AutoenhanceOrderLink().name == "Autoenhance order"


def test_get_link_reads_the_order_url_from_xcom():
    from airflow.sdk.execution_time.xcom import XCom

    ti_key = mock.Mock(name="ti_key")
    url = f"{APP_URL}/orders/{ORDER_ID}"
    with mock.patch.object(XCom, "get_value", return_value=url) as get_value:
        link = AutoenhanceOrderLink().get_link(mock.Mock(), ti_key=ti_key)

    assert link == url
    get_value.assert_called_once_with(key="order_url", ti_key=ti_key)


def test_get_link_is_empty_without_xcom():
    from airflow.sdk.execution_time.xcom import XCom

    with mock.patch.object(XCom, "get_value", return_value=None):
        assert AutoenhanceOrderLink().get_link(mock.Mock(), ti_key=mock.Mock()) == ""


def test_the_link_is_declared_in_provider_info():
    from autoenhance_provider.get_provider_info import get_provider_info

    assert "autoenhance_provider.links.autoenhance.AutoenhanceOrderLink" in get_provider_info()["extra-links"]
