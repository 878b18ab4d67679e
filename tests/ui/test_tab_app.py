"""The tab's pages and photo proxy against the sandbox: what is shown, what is fetched, what is refused."""

from __future__ import annotations

import re
import time

import pytest
from ui_helpers import DAG_ID, RUN_ID, FakeAirflow, as_user

from autoenhance_provider.ui.data import OrderRef
from autoenhance_provider.ui.photos import PhotoSource
from autoenhance_provider.ui.render import NEW_TAB_SCRIPT, SCRIPT_HASH
from autoenhance_sandbox.testing import SandboxServer

RUN = {"dag_id": DAG_ID, "run_id": RUN_ID}


def seeded(sandbox: SandboxServer, images: int, error_fraction: float = 0.0) -> str:
    (order_id,) = sandbox.seed(1, images, finish_after_seconds=0, error_fraction=error_fraction)
    return order_id


def image_ids(sandbox: SandboxServer, order_id: str) -> dict[str, str]:
    """image_id -> status, as the API answers."""
    order = sandbox.state.get_order(order_id, sandbox.state.now())
    return {i["image_id"]: i["status"] for i in order["images"]}


def test_run_tab_shows_every_order_of_the_run_errors_first(
    sandbox: SandboxServer, fake_airflow: FakeAirflow, client
):
    first = seeded(sandbox, 5, error_fraction=0.3)
    second = seeded(sandbox, 2)
    fake_airflow.refs = [
        OrderRef(first, "autoenhance_default", ("create_order", "upload", "wait")),
        OrderRef(second, "autoenhance_default", ("per_shoot.upload [shoot-b]",)),
    ]
    response = client.get("/run", params=RUN, headers=as_user("viewer-jwt"))
    assert response.status_code == 200, response.text
    html = response.text
    assert re.findall(r'data-order-id="([^"]+)"', html) == [first, second]
    statuses = re.findall(r'<tr class="image[^"]*" data-image-id="[^"]+" data-status="([^"]+)"', html)
    expected = sorted(image_ids(sandbox, first).values(), key=lambda s: s != "error")
    assert statuses[:5] == expected
    assert "error" in statuses[:5]
    assert html.count("Seeded failure (error_fraction).") == statuses.count("error")  # the reason
    assert "per_shoot.upload [shoot-b]" in html  # mapped instances named by their label
    assert f"{sandbox.base_url}/orders/{first}" in html  # the order's page (the web app's, for real keys)
    # Thumbnails: the app's own relative route, sized, lazy; never the API, its key or a signed URL.
    sources = re.findall(r'<img class="thumb" src="([^"]+)"', html)
    assert sources
    assert all(s.startswith("photo?") for s in sources)
    assert html.count('loading="lazy"') == len(sources)
    assert sandbox.api_key not in html
    assert "/_assets/" not in html
    assert "/v3/" not in html
    assert response.headers["cache-control"] == "no-store"
    # One script, the page's own (opens the order's links in a new tab), allowed by its hash only.
    assert f"script-src '{SCRIPT_HASH}';" in response.headers["content-security-policy"]
    assert re.findall(r"<script>(.*?)</script>", html) == [NEW_TAB_SCRIPT]


def test_photos_are_free_previews_proxied_and_cached(
    sandbox: SandboxServer, fake_airflow: FakeAirflow, photos: PhotoSource, client
):
    order_id = seeded(sandbox, 2)
    fake_airflow.refs = [OrderRef(order_id, "autoenhance_default", ("upload",))]
    image_id = next(iter(image_ids(sandbox, order_id)))
    assert client.get("/run", params=RUN, headers=as_user("admin-jwt")).status_code == 200
    for kind in ("original", "enhanced"):
        params = {**RUN, "image_id": image_id, "kind": kind, "size": "thumb"}
        response = client.get("/photo", params=params, headers=as_user("admin-jwt"))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content.startswith(b"\xff\xd8\xff")
        assert "private" in response.headers["cache-control"]
    calls = photos.api_calls
    for _ in range(3):  # cached: no more calls to the API
        params = {**RUN, "image_id": image_id, "kind": "enhanced", "size": "thumb"}
        assert client.get("/photo", params=params, headers=as_user("admin-jwt")).status_code == 200
    assert photos.api_calls == calls
    stats = sandbox.stats()
    assert stats["purchases"] == 0  # previews only: nothing bought
    downloads = stats["downloads"]
    assert downloads["original"] == 1
    assert downloads["enhanced"] + downloads["preview"] == 1
    assert stats["leaked_api_key"] == {"storage": 0, "assets": 0}


def test_a_photo_of_an_image_outside_the_runs_orders_is_never_fetched(
    sandbox: SandboxServer, fake_airflow: FakeAirflow, photos: PhotoSource, client
):
    ours = seeded(sandbox, 1)
    theirs = seeded(sandbox, 1)  # same account, another run's (or nobody's) order
    fake_airflow.refs = [OrderRef(ours, "autoenhance_default", ("upload",))]
    foreign = next(iter(image_ids(sandbox, theirs)))
    for image_id in (foreign, "../../v3/orders", "", "x" * 500):
        params = {**RUN, "image_id": image_id, "kind": "original"}
        response = client.get("/photo", params=params, headers=as_user("admin-jwt"))
        assert response.status_code == 404, image_id
        assert not response.headers["content-type"].startswith("image/")
    assert sandbox.stats()["downloads"]["original"] == 0


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/run", {}),
        ("/task", {"task_id": "upload", "map_index": "-1"}),
        ("/photo", {"image_id": "IMAGE", "kind": "original"}),
    ],
)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),  # anonymous
        ({"Cookie": "_token="}, 401),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, 401),  # not a bearer token
        (as_user("forged-jwt"), 403),  # invalid token, as Airflow answers
        (as_user("outsider-jwt"), 403),  # signed in, no right to this DAG
        ({"Cookie": "_token=outsider-jwt"}, 403),
    ],
)
def test_refused_before_anything_is_read(
    sandbox: SandboxServer,
    fake_airflow: FakeAirflow,
    photos: PhotoSource,
    client,
    path,
    extra,
    headers,
    status,
):
    order_id = seeded(sandbox, 1)
    image_id = next(iter(image_ids(sandbox, order_id)))
    fake_airflow.refs = [OrderRef(order_id, "autoenhance_default", ("upload",))]
    fake_airflow.tasks = {"upload": True}
    params = {**RUN, **{k: (image_id if v == "IMAGE" else v) for k, v in extra.items()}}
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == status
    assert fake_airflow.read_calls() == []  # no run, task, XCom read
    assert photos.api_calls == 0
    assert sandbox.stats()["requests"] == {}
    assert not response.headers["content-type"].startswith("image/")
    assert order_id not in response.text
    assert image_id not in response.text


def test_signed_in_users_with_the_right_see_it_through_the_cookie_too(
    sandbox: SandboxServer, fake_airflow: FakeAirflow, client
):
    order_id = seeded(sandbox, 1)
    fake_airflow.refs = [OrderRef(order_id, "autoenhance_default", ("upload",))]
    response = client.get("/run", params=RUN, headers={"Cookie": "_token=viewer-jwt"})
    assert response.status_code == 200
    assert order_id in response.text
    assert f"authorize viewer {DAG_ID} RUN+XCOM" in fake_airflow.calls


def test_unknown_run_is_404_after_authorisation(fake_airflow: FakeAirflow, client):
    response = client.get("/run", params={"dag_id": DAG_ID, "run_id": "nope"}, headers=as_user("admin-jwt"))
    assert response.status_code == 404
    assert fake_airflow.calls[:2] == ["authenticate", f"authorize admin {DAG_ID} RUN+XCOM"]


def test_task_tab_shows_its_order_or_says_it_has_none(
    sandbox: SandboxServer, fake_airflow: FakeAirflow, client
):
    order_id = seeded(sandbox, 2)
    fake_airflow.refs = [OrderRef(order_id, "autoenhance_default", ("upload",))]
    fake_airflow.tasks = {"upload": True, "download": True, "notify": False}

    def tab(task_id: str, map_index: str = "-1") -> str:
        params = {**RUN, "task_id": task_id, "map_index": map_index}
        response = client.get("/task", params=params, headers=as_user("viewer-jwt"))
        assert response.status_code == 200, response.text
        return response.text

    html = tab("upload")
    assert f'data-order-id="{order_id}"' in html
    assert html.count('class="thumb"') == 4
    assert f"authorize viewer {DAG_ID} TASK_INSTANCE+XCOM" in fake_airflow.calls
    assert "has not created or used an Autoenhance order" in tab("download")
    assert "is not an Autoenhance task: it has no order" in tab("notify")
    # The UI leaves {MAP_INDEX} as it is on an unmapped task's page: every instance of the task.
    assert f'data-order-id="{order_id}"' in tab("upload", "{MAP_INDEX}")
    params = {**RUN, "task_id": "gone", "map_index": "-1"}
    assert client.get("/task", params=params, headers=as_user("viewer-jwt")).status_code == 404


def test_mapped_instances_each_show_their_own_order(
    sandbox: SandboxServer, fake_airflow: FakeAirflow, client
):
    a, b = seeded(sandbox, 1), seeded(sandbox, 1)
    fake_airflow.refs = [
        OrderRef(a, "autoenhance_default", ("g.upload [0]",)),
        OrderRef(b, "autoenhance_default", ("g.upload [1]",)),
    ]
    fake_airflow.tasks = {"g.upload": True}
    for index, order_id in ((0, a), (1, b)):
        params = {**RUN, "task_id": "g.upload", "map_index": str(index)}
        html = client.get("/task", params=params, headers=as_user("viewer-jwt")).text
        assert re.findall(r'data-order-id="([^"]+)"', html) == [order_id]


def test_an_order_that_cannot_be_read_says_why_without_secrets(
    sandbox: SandboxServer, fake_airflow: FakeAirflow, client
):
    fake_airflow.refs = [OrderRef("0b5e7a4c-no-such-order", "autoenhance_default", ("create_order",))]
    response = client.get("/run", params=RUN, headers=as_user("admin-jwt"))
    assert response.status_code == 200
    assert "Could not read this order" in response.text
    assert sandbox.api_key not in response.text


def test_a_waiting_image_and_a_hostile_name_render_safely(
    sandbox: SandboxServer, fake_airflow: FakeAirflow, client
):
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    hook = AutoenhanceHook()
    order = hook.create_order(name="<script>alert(1)</script>")
    hook.create_image('"><img src=x onerror=alert(1)>.jpg', order_id=order["order_id"])
    fake_airflow.refs = [OrderRef(order["order_id"], "autoenhance_default", ("create_order",))]
    html = client.get("/run", params=RUN, headers=as_user("admin-jwt")).text
    assert "<script>alert" not in html
    assert html.count("<script>") == 1
    assert "<img src=x" not in html
    assert "&lt;script&gt;" in html
    assert "not uploaded yet" in html
    assert html.count('class="thumb"') == 0  # nothing to show yet: no request for it


def test_empty_run(fake_airflow: FakeAirflow, client):
    html = client.get("/run", params=RUN, headers=as_user("admin-jwt")).text
    assert "No Autoenhance order in run" in html


def test_photo_cache_is_bounded_by_bytes_and_age():
    from autoenhance_provider.ui.photos import BoundedCache

    cache: BoundedCache[str, bytes] = BoundedCache(ttl=0.2, max_entries=100, max_size=10, size_of=len)
    for key in "abcd":
        cache.put(key, b"xxxx")
    assert cache.size <= 10
    assert cache.get("a") is None
    assert cache.get("d") == b"xxxx"
    cache.put("huge", b"x" * 11)  # larger than the whole cache: not kept
    assert cache.get("huge") is None
    time.sleep(0.25)
    assert cache.get("d") is None


def test_an_evicted_hook_is_closed():
    from autoenhance_provider.ui.photos import BoundedCache

    closed: list[str] = []
    cache: BoundedCache[str, str] = BoundedCache(ttl=60, max_entries=1, on_evict=closed.append)
    cache.put("a", "hook a")
    cache.put("b", "hook b")
    assert closed == ["hook a"]
