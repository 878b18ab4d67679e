"""The provider under every reading of the contract that the public sources leave open.

Each behaviour below is undocumented or contradicted between sources (docs/contract.md); the
sandbox plays each plausible reading (docs/sandbox.md, ``set_options``), and the provider must
work under all of them — including an operator retry after a lost response, end to end.
"""

from __future__ import annotations

import pytest

from autoenhance_provider.exceptions import AutoenhanceCreditsError
from autoenhance_provider.operators.order import CreateOrderOperator, ProcessOrderOperator
from autoenhance_provider.operators.upload import UploadBracketsOperator, UploadImagesOperator
from autoenhance_provider.waiting import evaluate_order
from support.task import task_context

FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05}


def _orders(sandbox) -> int:
    return int(sandbox.stats()["orders_created"])


@pytest.mark.parametrize("reading", ["conflict", "validation", "bad_request", "existing"])
def test_create_order_retry_finds_its_own_order_under_every_duplicate_reading(sandbox, sandbox_conn, reading):
    sandbox.set_options(duplicate_order_id=reading)
    context = task_context()

    first = CreateOrderOperator(task_id="create", name="Listing", hook_params=FAST).execute(context)
    # the task retried (a new try of the same task instance): same id, no second order
    second = CreateOrderOperator(task_id="create", name="Listing", hook_params=FAST).execute(context)

    assert first == second
    assert _orders(sandbox) == 1


@pytest.mark.parametrize("reading", ["conflict", "validation", "bad_request", "existing"])
def test_create_order_after_a_lost_response_under_every_duplicate_reading(sandbox, sandbox_conn, reading):
    """The order is created but the answer never arrives; the hook's retry must not make a second."""
    sandbox.set_options(duplicate_order_id=reading)
    sandbox.set_faults(0.0, endpoints={"POST /v3/orders": 1.0}, kinds=["drop"], phase="after", seed=7)
    try:
        order_id = CreateOrderOperator(task_id="create", name="Listing", hook_params=FAST).execute(
            task_context()
        )
    finally:
        sandbox.clear_faults()

    assert _orders(sandbox) == 1
    assert sandbox.stats()["requests"]["POST /v3/orders"].get("drop", 0) == 1  # the answer was lost
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    assert AutoenhanceHook(**FAST).get_order(order_id)["order_id"] == order_id


@pytest.mark.parametrize("signing", ["for_sent_type", "octet_stream"])
def test_uploads_work_whichever_content_type_the_url_is_signed_for(sandbox, sandbox_conn, photo, signing):
    sandbox.set_options(upload_content_type=signing)
    order_id = CreateOrderOperator(task_id="create", hook_params=FAST).execute(task_context())
    source = [photo("front.jpg"), photo("back.jpg", level=90)]

    results = UploadImagesOperator(
        task_id="upload", order_id=order_id, source=source, hook_params=FAST
    ).execute(task_context())

    assert [r["image_name"] for r in results] == ["front.jpg", "back.jpg"]
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    order = AutoenhanceHook(**FAST).get_order(order_id)
    assert {i["status"] for i in order["images"]} <= {"processing", "processed"}
    assert sandbox.stats()["images_created"] == 2  # an octet-stream retry re-uses the same URL


@pytest.mark.parametrize("route", ["both", "enhanced_only"])
def test_preview_downloads_work_whichever_route_the_api_serves(sandbox, hook, photo, tmp_path, route):
    sandbox.set_options(preview_route=route)
    order = hook.create_order(name="preview")
    created = hook.create_image("front.jpg", order_id=order["order_id"], content_type="image/jpeg")
    hook.upload_file(created["upload_url"], photo(), "image/jpeg")
    sandbox.advance_clock(60)
    assert evaluate_order(hook.get_order(order["order_id"])).done

    result = hook.download_image(created["image_id"], tmp_path / "preview.jpg", kind="preview")

    assert result["kind"] == "preview"
    assert (tmp_path / "preview.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert sandbox.stats()["purchases"] == 0  # a preview never spends a credit


@pytest.mark.parametrize("route", ["available", "missing_404", "missing_405"])
def test_hdr_processing_works_whether_or_not_process_exists(sandbox, sandbox_conn, photo, route):
    sandbox.set_options(process_route=route)
    order_id = CreateOrderOperator(task_id="create", hook_params=FAST).execute(task_context())
    brackets = [photo(f"room_{ev}.jpg", level=level) for ev, level in (("m2", 60), ("0", 110), ("p2", 160))]
    UploadBracketsOperator(task_id="brackets", order_id=order_id, source=brackets, hook_params=FAST).execute(
        task_context()
    )

    ProcessOrderOperator(task_id="process", order_id=order_id, hook_params=FAST).execute(task_context())
    sandbox.advance_clock(600)

    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    assert AutoenhanceHook(**FAST).get_order(order_id)["images"], "the brackets were never grouped"
    merged = sandbox.stats()["requests"].get("POST /v3/orders/{order_id}/merge", {})
    assert (merged.get("200", 0) == 1) is (route != "available")


@pytest.mark.parametrize("status", [402, 400, 403, 409, 422, 429])
def test_out_of_credits_is_a_credits_error_whatever_the_status(sandbox, hook, photo, tmp_path, status):
    sandbox.set_options(out_of_credits_status=status)
    order = hook.create_order(name="credits")
    created = hook.create_image("front.jpg", order_id=order["order_id"], content_type="image/jpeg")
    hook.upload_file(created["upload_url"], photo(), "image/jpeg")
    sandbox.advance_clock(60)
    sandbox.state.credits_remaining = 0

    with pytest.raises(AutoenhanceCreditsError, match="credit"):
        hook.download_image(created["image_id"], tmp_path / "full.jpg", preview=False)
    assert not (tmp_path / "full.jpg").exists()
