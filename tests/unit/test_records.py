"""The typed answers (records.py): every malformed shape refused with what was wrong, every status
word and synonym, records that are still the plain dicts the hooks returned (JSON, a task's return
value, an XCom), and an oracle against the official SDK's models."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from autoenhance_provider import waiting
from autoenhance_provider.exceptions import AutoenhanceAPIError
from autoenhance_provider.readings import IMAGE_STATUS_SYNONYMS
from autoenhance_provider.records import Bracket, Image, ImageStatus, Order
from support.api import api

PATH = "/v3/orders/o-1"


def answer(images: Any = None, **fields: Any) -> dict[str, Any]:
    return {"order_id": "o-1", "name": "Listing 1", "status": "processing", "images": images, **fields}


def img(image_id: Any = "i-1", status: Any = "processed", **fields: Any) -> dict[str, Any]:
    return {"image_id": image_id, "image_name": f"{image_id}.jpg", "status": status, **fields}


# ------------------------------------------------------------------------------ what is read
def test_an_order_is_read_into_typed_fields():
    raw = answer(
        [
            img("i-1", "processed", downloaded=True),
            img("i-2", "error", status_reason="Duplicate file name limit", order_id="o-1"),
            {"image_id": 42, "status": "waiting"},  # an integer id, no name
        ],
        is_merging=False,
        is_processing="false",
        total_images=3,
    )

    order = Order.parse(raw, PATH)

    assert (order.order_id, order.name, order.status) == ("o-1", "Listing 1", "processing")
    assert (order.is_merging, order.is_processing, order.is_deleted) == (False, False, False)
    first, second, third = order.images
    assert (first.image_id, first.name, first.status, first.downloaded) == (
        "i-1",
        "i-1.jpg",
        ImageStatus.PROCESSED,
        True,
    )
    assert (second.status, second.status_reason, second.order_id) == (
        ImageStatus.ERROR,
        "Duplicate file name limit",
        "o-1",
    )
    assert (third.image_id, third.name, third.label, third.status) == ("42", None, "42", ImageStatus.WAITING)
    assert third.status_reason is None
    assert third.order_id is None
    assert not third.downloaded
    assert order == raw  # the answer itself, unchanged (a shallow copy of it)
    assert order["images"][0] is raw["images"][0]
    assert first == raw["images"][0]


@pytest.mark.parametrize("images", [None, []])
def test_an_order_without_images_has_none(images):
    raw = answer(images)
    if images is None:
        del raw["images"]
    assert Order.parse(raw).images == ()


def test_unknown_fields_are_kept_and_optional_ones_may_be_missing():
    order = Order.parse({"images": [{"image_id": "i-1", "new_field": {"x": 1}}], "brand_new": True})

    assert (order.order_id, order.name, order.status) == ("", None, None)
    (image,) = order.images
    assert image.name is None
    assert image.status is ImageStatus.UNKNOWN
    assert image.status_word == "None"
    assert order["brand_new"] is True
    assert image["new_field"] == {"x": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (None, False),
        ("true", True),
        ("True ", True),
        ("false", False),
        (1, True),
    ],
)
def test_flags_read_json_booleans_and_their_spellings(value, expected):
    order = Order.parse(answer([], is_merging=value, is_processing=value, is_deleted=value))
    assert order.is_merging is order.is_processing is order.is_deleted is expected
    (bracket,) = Bracket.parse_list([{"bracket_id": "b-1", "is_uploaded": value}], "/b")
    assert bracket.is_uploaded is expected


# ------------------------------------------------------------------------------ statuses
@pytest.mark.parametrize("member", [m for m in ImageStatus if m is not ImageStatus.UNKNOWN])
def test_each_word_of_the_spec_is_its_status(member):
    assert Image.parse(img(status=member.value)).status is member
    assert Image.parse(img(status=f" {member.value.upper()} ")).status is member


@pytest.mark.parametrize(("word", "meaning"), sorted(IMAGE_STATUS_SYNONYMS.items()))
def test_each_synonym_reads_as_the_spec_word(word, meaning):
    image = Image.parse(img(status=word))
    assert image.status is ImageStatus(meaning)
    assert image.status_word == word  # reported as the API wrote it


@pytest.mark.parametrize("word", ["queued", "", None, 3, "processed-ish"])
def test_unknown_words_are_unknown_and_never_terminal(word):
    status = Image.parse(img(status=word)).status
    assert status is ImageStatus.UNKNOWN
    assert not status.is_terminal


def test_the_status_vocabulary_is_one_class():
    assert waiting.ImageStatus is ImageStatus


# ------------------------------------------------------------------------------ malformed shapes
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([answer()], "the answer is a JSON array, not an order"),
        ("o-1", "the answer is a JSON string, not an order"),
        (None, "the answer is a JSON null, not an order"),
        (7, "the answer is a JSON number, not an order"),
        (answer({"i-1": "processed"}), "the order's 'images' is a JSON object, not a list of images"),
        (answer("i-1"), "the order's 'images' is a JSON string, not a list of images"),
        (answer(["i-1"]), "the order's images must be objects; image 0 is a JSON string"),
        (answer([img(), None]), "the order's images must be objects; image 1 is a JSON null"),
        (answer([img(), [1]]), "the order's images must be objects; image 1 is a JSON array"),
        (
            answer([{**img(), "image_id": None, "image_name": "kitchen.jpg"}]),
            "image 0 ('kitchen.jpg') of the order has no image_id",
        ),
        (answer([{"status": "processed"}]), "image 0 of the order has no image_id"),
        (answer([img(""), img()]), "image 0 ('.jpg') of the order has no image_id"),
        (answer([img(), img("  ")]), "image 1 ('  .jpg') of the order has no image_id"),
        (answer([img(True)]), "image 0 ('True.jpg') of the order has no image_id"),
        (answer([img({"id": 1})]), "has no image_id"),
        (answer([img(1.5)]), "has no image_id"),
    ],
)
def test_a_malformed_order_is_refused_saying_what_was_wrong(raw, reason):
    with pytest.raises(AutoenhanceAPIError) as info:
        Order.parse(raw, PATH)
    assert reason in str(info.value)
    assert info.value.status_code == 200
    assert info.value.method == "GET"
    assert info.value.path == PATH


def test_without_a_path_the_message_names_the_order():
    with pytest.raises(AutoenhanceAPIError) as info:
        Order.parse(answer(["i-1"]))
    assert info.value.path == "/v3/orders/o-1"
    with pytest.raises(AutoenhanceAPIError) as info:
        Order.parse([])
    assert info.value.path == "/v3/orders/?"


def test_waiting_reads_raw_answers_too():
    assert waiting.evaluate_order(answer([img()])).done
    with pytest.raises(AutoenhanceAPIError, match="not a list of images"):
        waiting.evaluate_order(answer({}))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([img()], "the answer is a JSON array, not an image"),
        ({"image_name": "a.jpg"}, "the image ('a.jpg') has no image_id"),
        ({"image_id": ""}, "the image has no image_id"),
    ],
)
def test_a_malformed_image_is_refused(raw, reason):
    with pytest.raises(AutoenhanceAPIError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        Image.parse(raw, "/v3/images/i-1")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"brackets": {"b-1": {}}}, "the answer's 'brackets' is a JSON object, not a list of brackets"),
        ({"brackets": ["b-1"]}, "the brackets must be objects; bracket 0 is a JSON string"),
        ([{"bracket_id": "b-1"}, {"name": "b.dng"}], "bracket 1 ('b.dng') has no bracket_id"),
        ("b-1", "the answer's 'brackets' is a JSON string, not a list of brackets"),
    ],
)
def test_malformed_brackets_are_refused(raw, reason):
    with pytest.raises(AutoenhanceAPIError) as info:
        Bracket.parse_list(raw, "/v3/orders/o-1/brackets")
    assert reason in str(info.value)


@pytest.mark.parametrize("raw", [None, {}, {"brackets": None}, []])
def test_no_brackets(raw):
    assert Bracket.parse_list(raw, "/v3/orders/o-1/brackets") == []


def test_brackets_wrapped_or_bare():
    raw = {
        "bracket_id": "b-1",
        "name": "a.dng",
        "is_uploaded": True,
        "order_id": "o-1",
        "metadata": {"ev": -2},
    }
    for wrapped in ({"brackets": [raw]}, [raw]):
        (bracket,) = Bracket.parse_list(wrapped, "/b")
        assert (bracket.bracket_id, bracket.name, bracket.is_uploaded, bracket.order_id) == (
            "b-1",
            "a.dng",
            True,
            "o-1",
        )
        assert bracket["metadata"] == {"ev": -2}


# ------------------------------------------------------------------------------ still the dict it came from
def test_a_record_reads_like_the_dict_it_came_from():
    raw = answer([img("i-1"), img("i-2", "error")])
    order = Order.parse(raw)

    assert order["images"][1]["status"] == "error"  # the raw list of dicts, as before
    assert order.get("status") == "processing"
    assert order.get("missing", "x") == "x"
    assert dict(order) == raw
    assert order == raw
    assert raw == order
    assert list(order) == list(raw)
    assert len(order) == len(raw)
    assert "name" in order
    assert {**order} == raw
    assert json.loads(json.dumps(order)) == raw
    assert type(order.raw) is dict
    assert order.raw == raw
    assert order.images[0] == raw["images"][0]
    assert [raw["images"][0]] == [order.images[0]]
    assert Order.parse(answer([])) != raw


def test_a_record_is_a_dict_wherever_the_hook_result_goes():
    """What users did with the hook's dicts keeps working: a task's return value (Airflow's serde
    makes the plain dict of it), pickling, copying, changing their own copy."""
    try:
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:  # Airflow < 3.1
        from airflow.serialization.serde import deserialize, serialize

    raw = answer([img()])
    order = Order.parse(raw)
    assert isinstance(order, dict)
    assert isinstance(order.images[0], dict)
    stored = deserialize(serialize(order))
    assert type(stored) is dict
    assert stored == raw
    again = pickle.loads(pickle.dumps(order))  # noqa: S301 - our own bytes
    assert again == raw
    assert (again.order_id, again.images[0].status) == (order.order_id, ImageStatus.PROCESSED)
    assert copy.deepcopy(order).images[0].image_id == "i-1"
    assert not hasattr(order, "__dict__")  # slots: the typed attributes only
    order["note"] = "mine"  # a caller's own copy, as with the dicts the hook returned before
    assert order["note"] == "mine"
    assert isinstance(order.images, tuple)


def test_the_progress_of_a_record_is_plain_json():
    """What crosses to XCom and trigger events is built from the records: plain JSON, ids as strings."""
    order = Order.parse(answer([img(7, "failed", status_reason={"code": "x"}), img("i-2")]))
    progress = waiting.evaluate_order(order).to_dict()
    assert json.loads(json.dumps(progress)) == progress
    assert progress["failed"] == [
        {"image_id": "7", "image_name": "7.jpg", "status": "failed", "status_reason": "{'code': 'x'}"}
    ]
    event = waiting.OrderWait("o-1", deadline=None).check(order)
    assert event is not None
    assert json.loads(json.dumps(event.to_dict())) == event.to_dict()


# ------------------------------------------------------------------------------ the hooks' boundary
def test_the_hook_returns_records(hook, requests_mock):
    requests_mock.get(api("/v3/orders/o-1"), json=answer([img()]))
    requests_mock.get(api("/v3/images/i-1"), json=img())
    requests_mock.get(
        api("/v3/orders/o-1/brackets"),
        json={"brackets": [{"bracket_id": "b-1", "name": "a", "is_uploaded": True}]},
    )

    order = hook.get_order("o-1")
    assert isinstance(order, Order)
    assert order["images"][0]["image_id"] == "i-1"
    assert isinstance(hook.get_image("i-1"), Image)
    assert [b.bracket_id for b in hook.list_brackets("o-1")] == ["b-1"]
    assert hook.uploaded_brackets("o-1")["a"].bracket_id == "b-1"


def test_the_hook_refuses_a_malformed_image_and_brackets(hook, requests_mock):
    requests_mock.get(api("/v3/images/i-1"), json={"image_name": "a.jpg"})
    requests_mock.get(api("/v3/orders/o-1/brackets"), json={"brackets": [{"name": "a"}]})

    with pytest.raises(AutoenhanceAPIError, match="has no image_id"):
        hook.get_image("i-1")
    with pytest.raises(AutoenhanceAPIError, match="has no bracket_id"):
        hook.list_brackets("o-1")


# ------------------------------------------------------------------------------ oracle: the official SDK
sdk = pytest.importorskip("autoenhance")


def _sdk_order() -> Any:
    from autoenhance.models import ImageOut, OrderOut

    images = [
        ImageOut(
            image_id="i-1",
            image_name="kitchen.jpg",
            status="processed",
            status_reason=None,
            order_id="o-1",
            downloaded=True,
            enhance_type="neutral",
            rating=4,
            metadata={"room": "kitchen"},
        ),
        ImageOut(image_id="i-2", status="error", status_reason="Daily limit reached", downloaded=False),
        ImageOut(image_id="i-3", image_name="hall.jpg", status="processing"),
    ]
    return OrderOut(
        order_id="o-1",
        name="Listing 1",
        images=images,
        is_deleted=False,
        is_merging=False,
        is_processing=True,
        status="processing",
        total_images=3,
    )


@pytest.mark.parametrize("serialise", ["to_dict", "model_dump"])
def test_records_read_what_the_sdk_models_write(serialise):
    """``to_dict()`` leaves out the fields the spec calls read-only (``status``, ``status_reason``,
    an image's ``order_id``); ``model_dump(mode="json")`` is the whole answer the API sends."""
    model = _sdk_order()
    if serialise == "to_dict":
        raw = model.to_dict()
    else:
        raw = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    order = Order.parse(json.loads(json.dumps(raw)))

    assert order.order_id == model.order_id
    assert order.name == model.name
    assert (order.is_deleted, order.is_merging, order.is_processing) == (
        model.is_deleted,
        model.is_merging,
        model.is_processing,
    )
    assert len(order.images) == len(model.images)
    for ours, theirs in zip(order.images, model.images, strict=True):
        assert ours.image_id == theirs.image_id
        assert ours.name == theirs.image_name
        assert ours.downloaded is bool(theirs.downloaded)
        assert dict(ours) == raw["images"][order.images.index(ours)]
        if "status" in raw["images"][order.images.index(ours)]:
            assert ours.status is ImageStatus.parse(theirs.status)
            assert ours.status_reason == theirs.status_reason
            assert ours.order_id == theirs.order_id
    if serialise == "model_dump":
        assert order.status == model.status
        assert [i.status for i in order.images] == [
            ImageStatus.PROCESSED,
            ImageStatus.ERROR,
            ImageStatus.PROCESSING,
        ]


def test_brackets_read_what_the_sdk_models_write():
    from autoenhance.models import BracketOut, OrderBracketsOut

    model = OrderBracketsOut(
        brackets=[
            BracketOut(bracket_id="b-1", name="a.dng", is_uploaded=True, order_id="o-1", metadata={"ev": 0}),
            BracketOut(bracket_id="b-2", is_uploaded=False),
        ]
    )
    for raw in (model.to_dict(), model.model_dump(mode="json", by_alias=True, exclude_none=True)):
        parsed = Bracket.parse_list(json.loads(json.dumps(raw)), "/v3/orders/o-1/brackets")
        for ours, theirs in zip(parsed, model.brackets, strict=True):
            assert (ours.bracket_id, ours.name, ours.is_uploaded) == (
                theirs.bracket_id,
                theirs.name,
                bool(theirs.is_uploaded),
            )
            if "order_id" in ours:
                assert ours.order_id == theirs.order_id


def test_an_sdk_image_answer_is_read():
    from autoenhance.models import ImageOut

    model = ImageOut(
        image_id="i-9", image_name="x.jpg", status="complete", status_reason="done", order_id="o-1"
    )
    image = Image.parse(model.model_dump(mode="json", by_alias=True, exclude_none=True), "/v3/images/i-9")
    assert (image.image_id, image.name, image.status, image.status_reason, image.order_id) == (
        "i-9",
        "x.jpg",
        ImageStatus.PROCESSED,
        "done",
        "o-1",
    )
