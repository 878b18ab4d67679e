"""What every task of the provider shares (``operators/base.py``): the order link, dynamic task mapping
and its labels, the enhancement settings as keyword parameters."""

from __future__ import annotations

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.definitions.mappedoperator import MappedOperator

from autoenhance_provider.links.autoenhance import AutoenhanceOrderLink
from autoenhance_provider.operators.base import DEFAULT_MAP_INDEX_TEMPLATE, LABEL_KEY
from autoenhance_provider.operators.download import DownloadImagesOperator
from autoenhance_provider.operators.order import (
    CreateOrderOperator,
    DeleteOrderOperator,
    ProcessOrderOperator,
)
from autoenhance_provider.operators.upload import UploadBracketsOperator, UploadImagesOperator
from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor
from support.api import ORDER_ID, api
from support.task import FakeTI, task_context

FAST = {"retry_limit": 0, "retry_delay": 0, "retry_max_delay": 0}
ALL_TASK_CLASSES = [
    CreateOrderOperator,
    UploadImagesOperator,
    UploadBracketsOperator,
    ProcessOrderOperator,
    DownloadImagesOperator,
    DeleteOrderOperator,
    OrderProcessedSensor,
]


@pytest.mark.parametrize("cls", ALL_TASK_CLASSES, ids=lambda c: c.__name__)
def test_every_task_class_that_keeps_an_order_offers_the_link(cls):
    has_link = any(isinstance(link, AutoenhanceOrderLink) for link in cls.operator_extra_links)
    assert has_link is (cls is not DeleteOrderOperator)  # a deleted order has no page


# ------------------------------------------------------------------------------ dynamic mapping
def _mapped(cls):
    partial = {
        CreateOrderOperator: ({}, {"name": ["Listing 1", "Listing 2"]}),
        # every enhancement setting is a real parameter, so .partial() accepts it
        UploadImagesOperator: (
            {"order_id": ORDER_ID, "enhance_type": "warm", "settings": {"privacy": True}},
            {"source": ["/a", "/b"]},
        ),
        UploadBracketsOperator: ({"order_id": ORDER_ID}, {"source": ["/a", "/b"]}),
        ProcessOrderOperator: (
            {"number_of_brackets_per_image": 3, "sky_replacement": True},
            {"order_id": ["o-1", "o-2"]},
        ),
        DownloadImagesOperator: ({"destination": "/tmp/out", "format": "png"}, {"order_id": ["o-1", "o-2"]}),
        DeleteOrderOperator: ({}, {"order_id": ["o-1", "o-2"]}),
        OrderProcessedSensor: ({"poke_interval": 60, "mode": "reschedule"}, {"order_id": ["o-1", "o-2"]}),
    }[cls]
    return partial


@pytest.mark.parametrize("cls", ALL_TASK_CLASSES, ids=lambda c: c.__name__)
def test_partial_expand_builds_a_mapped_task_with_a_label_template(cls):
    fixed, expanded = _mapped(cls)
    with DAG("wf_mapping", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        task = cls.partial(task_id="mapped", **fixed).expand(**expanded)

    assert isinstance(task, MappedOperator)
    assert task.dag is dag
    assert task.map_index_template == DEFAULT_MAP_INDEX_TEMPLATE


@pytest.mark.parametrize("cls", ALL_TASK_CLASSES, ids=lambda c: c.__name__)
def test_plain_tasks_get_the_label_template_and_can_override_it(cls):
    fixed, expanded = _mapped(cls)
    kwargs = {**fixed, **{k: v[0] for k, v in expanded.items()}}

    assert cls(task_id="plain", **kwargs).map_index_template == DEFAULT_MAP_INDEX_TEMPLATE
    custom = cls(task_id="custom", map_index_template="{{ task.task_id }}", **kwargs)
    assert custom.map_index_template == "{{ task.task_id }}"


def test_a_mapped_instance_is_labelled_with_what_it_worked_on(conn, requests_mock):
    """What the task runner does: render the MappedOperator's template with the executed context."""
    import jinja2

    requests_mock.delete(api("/v3/orders/o-2"), status_code=204)
    with DAG("wf_label", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        mapped = DeleteOrderOperator.partial(task_id="delete", hook_params=FAST).expand(
            order_id=["o-1", "o-2"]
        )
    task = mapped.unmap({"order_id": "o-2"})
    context = task_context(FakeTI(map_index=1))

    task.execute(context)

    assert context[LABEL_KEY] == "o-2"
    assert jinja2.Environment(autoescape=True).from_string(mapped.map_index_template).render(context) == "o-2"
    assert jinja2.Environment(autoescape=True).from_string(mapped.map_index_template).render({}) == ""


def test_mapped_upload_over_shoots_instantiates_each_operator(tmp_path):
    with DAG("wf_unmap", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        mapped = UploadImagesOperator.partial(
            task_id="upload", order_id=ORDER_ID, settings={"enhance_type": "warm"}
        ).expand(source=[str(tmp_path / "a"), str(tmp_path / "b")])
    task = mapped.unmap({"source": str(tmp_path / "b")})

    assert isinstance(task, UploadImagesOperator)
    assert task.source == str(tmp_path / "b")
    assert task.settings == {"enhance_type": "warm"}
    assert task.map_index_template == DEFAULT_MAP_INDEX_TEMPLATE


def test_settings_can_be_expanded_per_mapped_instance():
    with DAG("wf_mapping_settings", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        task = UploadImagesOperator.partial(task_id="mapped", order_id=ORDER_ID, source="/a").expand(
            enhance_type=["warm", "neutral"]
        )
    assert isinstance(task, MappedOperator)


def test_every_known_setting_is_a_keyword_parameter():
    import inspect

    from autoenhance_provider.operators.base import AutoenhanceSettingsOperator
    from autoenhance_provider.settings import KNOWN_SETTINGS

    params = set(inspect.signature(AutoenhanceSettingsOperator.__init__).parameters) - {
        "self",
        "settings",
        "kwargs",
    }
    assert params == set(KNOWN_SETTINGS)


def test_keyword_settings_merge_over_the_settings_dict():
    op = UploadImagesOperator(
        task_id="u",
        order_id=ORDER_ID,
        source="/a",
        settings={"enhance_type": "warm", "privacy": True},
        enhance_type="neutral",
        sky_replacement=False,
    )
    assert op.settings == {"enhance_type": "neutral", "privacy": True, "sky_replacement": False}


def test_a_plain_task_gets_no_label(conn, requests_mock):
    """Unmapped tasks render an empty label, so the UI shows no map index for them."""
    requests_mock.delete(api("/v3/orders/o-1"), status_code=204)
    context = task_context(FakeTI(map_index=-1))

    DeleteOrderOperator(task_id="delete", order_id="o-1", hook_params=FAST).execute(context)

    assert LABEL_KEY not in context


def test_parse_time_settings_check_leaves_version_specific_values_to_the_pinned_version():
    """At parse time the connection's api_version is unknown: only what no version accepts fails."""
    from autoenhance_provider.exceptions import AutoenhanceValidationError
    from autoenhance_provider.operators.upload import UploadImagesOperator

    # accepted by some API versions only: the hook decides with the pinned version at run time
    UploadImagesOperator(task_id="old", order_id="o", source="/x", enhance_type="authentic")
    UploadImagesOperator(task_id="new", order_id="o", source="/x", ai_version="latest")
    with pytest.raises(AutoenhanceValidationError, match="enhance_type"):
        UploadImagesOperator(task_id="typo", order_id="o", source="/x", enhance_type="sunny")
