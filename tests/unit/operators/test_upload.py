"""UploadImagesOperator and UploadBracketsOperator against requests-mock (API + presigned storage)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from unittest import mock

import pytest
from airflow.sdk import ObjectStoragePath

import autoenhance_provider.waiting as waiting_module
from autoenhance_provider import uploads
from autoenhance_provider.exceptions import (
    AutoenhanceAuthError,
    AutoenhanceError,
    AutoenhanceNotFoundError,
    AutoenhanceSourceError,
    AutoenhanceStorageError,
    AutoenhanceValidationError,
)
from autoenhance_provider.operators.upload import UploadBracketsOperator, UploadImagesOperator
from support.api import APP_URL, BASE_URL, FAKE_KEY, ORDER_ID, STORAGE_HOST, api, image, order, path_of
from support.images import write_image
from support.logs import rendered
from support.task import FakeTI, task_context
from support.timing import FakeClock

FAST = {"retry_limit": 2, "retry_delay": 0, "retry_max_delay": 0}
SIGNATURE = "X-Amz-Signature=0123456789abcdef"
S3_403 = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code>'
    "<Message>The request signature we calculated does not match the signature you provided.</Message>"
    "</Error>"
)


class FakeAPI:
    """A small in-memory Autoenhance: orders, images, brackets and a presigned storage host."""

    def __init__(self, requests_mock, *, order_exists: bool = True, confirm_after: int = 0) -> None:
        self.mock = requests_mock
        self.lock = threading.Lock()
        self.order_exists = order_exists
        self.confirm_after = confirm_after
        self.images: dict[str, dict] = {}
        self.brackets: dict[str, dict] = {}
        self.put_status: dict[str, list[int]] = {}  # file name -> statuses to answer, last one repeats
        self.create_status: list[int] = []
        self.stored: dict[str, tuple[bytes, str]] = {}  # image/bracket id -> (body, content type)
        self._n = 0
        m = requests_mock
        m.get(api(f"/v3/orders/{ORDER_ID}"), text=self._get_order)
        m.post(api("/v3/orders/"), text=self._create_order)
        m.post(api("/v3/images/"), text=self._create_image)
        m.delete(re.compile(re.escape(api("/v3/images/")) + r"[^/]+$"), text=self._delete_image)
        m.post(api("/v3/brackets/"), text=self._create_bracket)
        m.get(api(f"/v3/orders/{ORDER_ID}/brackets"), text=self._list_brackets)
        m.put(re.compile(re.escape(STORAGE_HOST) + r"/put/.*"), text=self._put)

    # -------------------------------------------------------------- state helpers
    def add_image(self, image_id: str, name: str, status: str) -> None:
        self.images[image_id] = image(image_id, status, name, order_id=ORDER_ID)

    def add_bracket(self, bracket_id: str, name: str, uploaded: bool) -> None:
        self.brackets[bracket_id] = {"bracket_id": bracket_id, "name": name, "is_uploaded": uploaded}

    def requests(self, method: str | None = None, host: str | None = None) -> list:
        return [
            r
            for r in self.mock.request_history
            if (method is None or r.method == method) and (host is None or r.url.startswith(host))
        ]

    def creates(self) -> list[dict]:
        return [r.json() for r in self.requests("POST") if path_of(r.url) == "/v3/images/"]

    def puts(self) -> list:
        return self.requests("PUT", STORAGE_HOST)

    def id_of(self, name: str) -> str:
        (image_id,) = [i for i, img in self.images.items() if img["image_name"] == name]
        return image_id

    def _next_id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:03d}"

    # -------------------------------------------------------------- callbacks
    def _get_order(self, request, context):
        with self.lock:
            if not self.order_exists:
                context.status_code = 404
                return json.dumps({"message": "Not Found", "detail": {}})
            for img in self.images.values():
                if img["status"] == "waiting" and img.get("_uploaded"):
                    if img["_polls_left"] <= 0:
                        img["status"] = "processing"
                    img["_polls_left"] -= 1
            images = [{k: v for k, v in img.items() if not k.startswith("_")} for img in self.images.values()]
            return json.dumps(order(ORDER_ID, images, is_processing=bool(images)))

    def _create_order(self, request, context):
        with self.lock:
            self.order_exists = True
            return json.dumps(order(request.json().get("order_id", ORDER_ID)))

    def _create_image(self, request, context):
        body = request.json()
        with self.lock:
            if self.create_status:
                status = self.create_status.pop(0) if len(self.create_status) > 1 else self.create_status[0]
                if status >= 400:
                    context.status_code = status
                    return json.dumps({"message": "Unauthorized", "detail": {}})
            image_id = self._next_id("img")
            img = image(image_id, "waiting", body["image_name"], order_id=body.get("order_id"))
            img["_polls_left"] = self.confirm_after
            self.images[image_id] = img
        out = {k: v for k, v in img.items() if not k.startswith("_")}
        return json.dumps({**out, "upload_url": f"{STORAGE_HOST}/put/{image_id}?{SIGNATURE}"})

    def _delete_image(self, request, context):
        image_id = path_of(request.url).rsplit("/", 1)[-1]
        with self.lock:
            if self.images.pop(image_id, None) is None:
                context.status_code = 404
                return json.dumps({"message": "Not Found", "detail": {}})
        context.status_code = 204
        return ""

    def _create_bracket(self, request, context):
        body = request.json()
        with self.lock:
            bracket_id = self._next_id("br")
            self.brackets[bracket_id] = {"bracket_id": bracket_id, "name": body["name"], "is_uploaded": False}
        return json.dumps(
            {
                **self.brackets[bracket_id],
                "order_id": body["order_id"],
                "upload_url": f"{STORAGE_HOST}/put/{bracket_id}?{SIGNATURE}",
            }
        )

    def _list_brackets(self, request, context):
        with self.lock:
            if not self.order_exists:
                context.status_code = 404
                return json.dumps({"message": "Not Found", "detail": {}})
            return json.dumps({"brackets": list(self.brackets.values())})

    def _put(self, request, context):
        target = path_of(request.url).rsplit("/", 1)[-1]
        with self.lock:
            item = self.images.get(target) or self.brackets.get(target) or {}
            name = item.get("image_name") or item.get("name")
            statuses = self.put_status.get(name)
            status = (statuses.pop(0) if len(statuses) > 1 else statuses[0]) if statuses else 200
        if status >= 400:
            context.status_code = status
            return S3_403 if status == 403 else "<Error><Code>SlowDown</Code></Error>"
        body = request.body if isinstance(request.body, bytes) else request.body.read()
        with self.lock:
            self.stored[target] = (body, request.headers.get("Content-Type"))
            if target in self.images:
                self.images[target]["_uploaded"] = True
            if target in self.brackets:
                self.brackets[target]["is_uploaded"] = True
        return ""


@pytest.fixture
def fake_api(conn, requests_mock):
    return FakeAPI(requests_mock)


@pytest.fixture
def no_sleep(monkeypatch):
    """The confirmation loop sleeps on a fake clock."""
    clock = FakeClock()
    monkeypatch.setattr(waiting_module, "time", clock)
    return clock


def upload_op(source, **kwargs) -> UploadImagesOperator:
    kwargs.setdefault("task_id", "upload")
    kwargs.setdefault("order_id", ORDER_ID)
    kwargs.setdefault("hook_params", dict(FAST))
    return UploadImagesOperator(source=source, **kwargs)


def bracket_op(source, **kwargs) -> UploadBracketsOperator:
    kwargs.setdefault("task_id", "brackets")
    kwargs.setdefault("order_id", ORDER_ID)
    kwargs.setdefault("hook_params", dict(FAST))
    return UploadBracketsOperator(source=source, **kwargs)


@pytest.fixture
def shoot(tmp_path) -> Path:
    """A folder with one photo per supported test format."""
    folder = tmp_path / "shoot"
    for name in ("a-kitchen.jpg", "b-garden.png", "c-hall.tiff", "d-bath.webp"):
        write_image(folder / name)
    return folder


EXPECTED_TYPES = {
    "a-kitchen.jpg": "image/jpeg",
    "b-garden.png": "image/png",
    "c-hall.tiff": "image/tiff",
    "d-bath.webp": "image/webp",
}


# ------------------------------------------------------------------------------ happy paths
def test_uploads_every_file_of_a_folder(fake_api, shoot, no_sleep):
    ti = FakeTI()

    result = upload_op(str(shoot)).execute(task_context(ti))

    assert [r["image_name"] for r in result] == list(EXPECTED_TYPES)
    assert all(r["image_id"].startswith("img-") for r in result)
    assert len({r["image_id"] for r in result}) == 4
    creates = fake_api.creates()
    assert {c["image_name"]: c["contentType"] for c in creates} == EXPECTED_TYPES
    assert all(c["order_id"] == ORDER_ID for c in creates)
    by_id = {r["image_id"]: r["image_name"] for r in result}
    for image_id, (body, content_type) in fake_api.stored.items():
        name = by_id[image_id]
        assert body == (shoot / name).read_bytes()
        assert content_type == EXPECTED_TYPES[name]
    assert ti.xcoms["order_id"] == ORDER_ID
    assert ti.xcoms["order_url"] == f"{APP_URL}/orders/{ORDER_ID}"


def test_the_key_goes_to_the_api_only(fake_api, shoot, no_sleep):
    upload_op(str(shoot)).execute(task_context())

    puts = fake_api.puts()
    assert len(puts) == 4
    for put in puts:
        assert "x-api-key" not in {k.lower() for k in put.headers}
    for request in fake_api.requests(host=BASE_URL):
        assert request.headers["x-api-key"] == FAKE_KEY


@pytest.mark.parametrize("kind", ["folder", "glob", "list", "single", "object_storage_path", "file_uri"])
def test_source_forms(fake_api, shoot, no_sleep, kind):
    jpg, png = shoot / "a-kitchen.jpg", shoot / "b-garden.png"
    source, expected = {
        "folder": (str(shoot), list(EXPECTED_TYPES)),
        "glob": (str(shoot / "*.jpg"), ["a-kitchen.jpg"]),
        "list": ([str(png), str(jpg)], ["b-garden.png", "a-kitchen.jpg"]),
        "single": (str(png), ["b-garden.png"]),
        "object_storage_path": (ObjectStoragePath(f"file://{shoot}"), list(EXPECTED_TYPES)),
        "file_uri": (jpg.as_uri(), ["a-kitchen.jpg"]),
    }[kind]

    result = upload_op(source).execute(task_context())

    assert [r["image_name"] for r in result] == expected
    assert sorted(c["image_name"] for c in fake_api.creates()) == sorted(expected)
    assert len(fake_api.puts()) == len(expected)


@pytest.mark.parametrize("how", ["folder", "glob", "file"])
def test_local_paths_with_spaces_and_non_ascii_characters(fake_api, tmp_path, no_sleep, how):
    folder = tmp_path / "12 Main St #4"
    write_image(folder / "Küche 1.jpg")
    write_image(folder / "100% garden.png")
    source = {"folder": str(folder), "glob": str(folder / "*"), "file": str(folder / "Küche 1.jpg")}[how]

    result = upload_op(source).execute(task_context())

    expected = ["100% garden.png", "Küche 1.jpg"] if how != "file" else ["Küche 1.jpg"]
    assert [r["image_name"] for r in result] == expected
    assert sorted(c["image_name"] for c in fake_api.creates()) == expected
    assert len(fake_api.stored) == len(expected)


def test_hidden_files_in_a_folder_are_ignored(fake_api, tmp_path, no_sleep):
    write_image(tmp_path / "photo.jpg")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")

    result = upload_op(str(tmp_path)).execute(task_context())

    assert [r["image_name"] for r in result] == ["photo.jpg"]


def test_settings_as_kwargs_are_validated_and_sent(fake_api, shoot, no_sleep):
    op = upload_op(
        str(shoot / "a-kitchen.jpg"),
        enhance_type="WARM",
        sky_replacement="true",
        cloud_type="clear",
        ai_version="5.x",
        settings={"lens_correction": False},
    )

    op.execute(task_context())

    (body,) = fake_api.creates()
    assert body["enhance_type"] == "warm"
    assert body["sky_replacement"] is True
    assert body["cloud_type"] == "CLEAR"
    assert body["ai_version"] == "5.x"
    assert body["lens_correction"] is False
    assert body["image_name"] == "a-kitchen.jpg"


def test_bad_setting_fails_at_parse_time_naming_the_allowed_values(requests_mock):
    with pytest.raises(AutoenhanceValidationError) as info:
        upload_op("/nowhere", enhance_type="vivid")

    message = str(info.value)
    assert "enhance_type" in message
    assert "vivid" in message
    for allowed in ("property", "warm", "neutral"):
        assert allowed in message
    assert requests_mock.call_count == 0


def test_templated_settings_are_checked_at_run_time(fake_api, shoot, no_sleep):
    op = upload_op(str(shoot / "a-kitchen.jpg"), enhance_type="{{ params.style }}")
    op.settings = {"enhance_type": "sepia"}  # what a bad rendering would produce

    with pytest.raises(AutoenhanceValidationError, match="sepia"):
        op.execute(task_context())
    assert fake_api.requests() == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"on_invalid": "ignore"}, "on_invalid"), ({"max_concurrency": 0}, "max_concurrency")],
)
def test_bad_arguments_fail_at_parse_time(kwargs, match):
    with pytest.raises(AutoenhanceValidationError, match=match):
        upload_op("/nowhere", **kwargs)


def test_init_touches_neither_network_nor_connection(monkeypatch, requests_mock, tmp_path):
    from autoenhance_provider.compat import BaseHook  # the provider hooks' base class

    monkeypatch.setattr(BaseHook, "get_connection", mock.Mock(side_effect=AssertionError("lookup")))
    upload_op(str(tmp_path / "missing"), autoenhance_conn_id="nope", enhance_type="warm")
    bracket_op(str(tmp_path / "missing"), autoenhance_conn_id="nope")
    assert requests_mock.call_count == 0


def test_template_fields():
    assert set(UploadImagesOperator.template_fields) >= {
        "order_id",
        "source",
        "settings",
        "autoenhance_conn_id",
    }
    assert set(UploadBracketsOperator.template_fields) >= {"order_id", "source", "autoenhance_conn_id"}


# ------------------------------------------------------------------------------ idempotent retry
def test_retry_skips_uploaded_images_and_redoes_half_done_ones(fake_api, shoot, no_sleep):
    fake_api.add_image("done-a", "a-kitchen.jpg", "processed")
    fake_api.add_image("busy-b", "b-garden.png", "processing")
    fake_api.add_image("stale-c", "c-hall.tiff", "waiting")
    fake_api.add_image("other", "not-from-this-source.jpg", "waiting")

    result = upload_op(str(shoot)).execute(task_context())

    assert sorted(c["image_name"] for c in fake_api.creates()) == ["c-hall.tiff", "d-bath.webp"]
    deletes = [path_of(r.url) for r in fake_api.requests("DELETE")]
    assert deletes == ["/v3/images/stale-c"]  # never someone else's waiting image
    assert len(fake_api.puts()) == 2
    by_name = {r["image_name"]: r["image_id"] for r in result}
    assert by_name["a-kitchen.jpg"] == "done-a"
    assert by_name["b-garden.png"] == "busy-b"
    assert by_name["c-hall.tiff"] not in ("stale-c", "done-a", "busy-b")
    assert [r["image_name"] for r in result] == list(EXPECTED_TYPES)


def test_retry_with_everything_uploaded_sends_nothing(fake_api, shoot, no_sleep):
    for i, name in enumerate(EXPECTED_TYPES):
        fake_api.add_image(f"done-{i}", name, "processed")

    result = upload_op(str(shoot)).execute(task_context())

    assert [r["image_id"] for r in result] == ["done-0", "done-1", "done-2", "done-3"]
    assert fake_api.creates() == []
    assert fake_api.puts() == []
    assert no_sleep.sleeps == []


# ------------------------------------------------------------------------------ checks before the API
@pytest.mark.parametrize("problem", ["unsupported", "empty", "not_a_jpeg", "png_named_jpg"])
def test_bad_files_are_refused_before_any_request(fake_api, tmp_path, problem):
    write_image(tmp_path / "good.jpg")
    bad = {
        "unsupported": ("notes.txt", b"hello"),
        "empty": ("empty.jpg", b""),
        "not_a_jpeg": ("fake.jpg", b"this is not an image at all, just text"),
        "png_named_jpg": ("renamed.jpg", None),
    }[problem]
    if bad[1] is None:
        write_image(tmp_path / "tmp.png").rename(tmp_path / bad[0])
    else:
        (tmp_path / bad[0]).write_bytes(bad[1])

    with pytest.raises(AutoenhanceSourceError) as info:
        upload_op(str(tmp_path)).execute(task_context())

    assert bad[0] in str(info.value)
    assert "good.jpg" not in str(info.value)
    assert fake_api.mock.call_count == 0


def test_all_problems_are_listed_at_once(fake_api, tmp_path):
    (tmp_path / "a.gif").write_bytes(b"GIF89a....")
    (tmp_path / "b.jpg").write_bytes(b"")
    (tmp_path / "c.png").write_bytes(b"\xff\xd8\xff\xe0 jpeg bytes")

    with pytest.raises(AutoenhanceSourceError) as info:
        upload_op(str(tmp_path)).execute(task_context())

    message = str(info.value)
    assert "3 file(s)" in message
    for name in ("a.gif", "b.jpg", "c.png"):
        assert name in message
    assert "unsupported" in message
    assert "empty" in message
    assert fake_api.mock.call_count == 0


@pytest.mark.parametrize("what", ["missing_path", "empty_folder", "glob_without_match"])
def test_missing_sources_are_refused_before_any_request(fake_api, tmp_path, what):
    (tmp_path / "empty").mkdir()
    source = {
        "missing_path": str(tmp_path / "no-such-file.jpg"),
        "empty_folder": str(tmp_path / "empty"),
        "glob_without_match": str(tmp_path / "*.jpg"),
    }[what]

    with pytest.raises(AutoenhanceSourceError) as info:
        upload_op(source).execute(task_context())

    assert str(Path(source).name) in str(info.value) or str(tmp_path) in str(info.value)
    assert fake_api.mock.call_count == 0


def test_on_invalid_skip_uploads_the_rest_with_a_warning(fake_api, tmp_path, no_sleep, logs):
    write_image(tmp_path / "good.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    (tmp_path / "notes.txt").write_text("x")

    result = upload_op(str(tmp_path), on_invalid="skip").execute(task_context())

    assert [r["image_name"] for r in result] == ["good.jpg"]
    warnings = "\n".join(rendered(logs, "warning"))
    assert "broken.jpg" in warnings
    assert "notes.txt" in warnings


def test_on_invalid_skip_with_nothing_left_still_fails(fake_api, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"nope")

    with pytest.raises(AutoenhanceSourceError, match="Nothing to upload"):
        upload_op(str(tmp_path), on_invalid="skip").execute(task_context())
    assert fake_api.mock.call_count == 0


def test_duplicate_names_from_two_folders_are_refused(fake_api, tmp_path):
    write_image(tmp_path / "day1" / "front.jpg")
    write_image(tmp_path / "day2" / "front.jpg", color=(1, 2, 3))
    write_image(tmp_path / "day2" / "back.jpg")

    with pytest.raises(AutoenhanceSourceError) as info:
        upload_op([str(tmp_path / "day1"), str(tmp_path / "day2")]).execute(task_context())

    assert "front.jpg" in str(info.value)
    assert "same image name" in str(info.value)
    assert fake_api.mock.call_count == 0


# ------------------------------------------------------------------------------ concurrency & failures
def test_twenty_files_four_at_a_time_each_uploaded_once(fake_api, tmp_path, no_sleep, logs, monkeypatch):
    for i in range(20):
        write_image(tmp_path / f"photo-{i:02d}.jpg")
    # requests-mock serialises requests behind a lock, so concurrency is measured one level up.
    lock, state = threading.Lock(), {"now": 0, "max": 0}
    real_upload = uploads.upload_file

    def counting_upload(self, *args, **kwargs):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            threading.Event().wait(0.02)
            return real_upload(self, *args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(uploads, "upload_file", counting_upload)

    result = upload_op(str(tmp_path), max_concurrency=4).execute(task_context())

    names = [f"photo-{i:02d}.jpg" for i in range(20)]
    assert [r["image_name"] for r in result] == names
    assert sorted(c["image_name"] for c in fake_api.creates()) == names
    assert len(fake_api.puts()) == 20
    assert sorted(fake_api.stored) == sorted(r["image_id"] for r in result)
    assert 1 < state["max"] <= 4
    progress = [line for line in rendered(logs) if "uploaded," in line]
    assert progress, "no progress line"
    assert re.fullmatch(r"20/20 uploaded, \d+\.\d MB, \d+\.\d MB/s", progress[-1])


def test_permanent_storage_rejection_fails_with_a_storage_error(fake_api, shoot, no_sleep):
    fake_api.put_status["b-garden.png"] = [403]

    with pytest.raises(AutoenhanceStorageError) as info:
        upload_op(str(shoot)).execute(task_context())

    message = str(info.value)
    assert "b-garden.png" in message
    assert "SignatureDoesNotMatch" in message
    assert "0123456789abcdef" not in message  # the presigned signature never reaches the task log
    rejected = [p for p in fake_api.puts() if path_of(p.url).endswith(fake_api.id_of("b-garden.png"))]
    # a 403 is not retried; the octet-stream signing (some sources) is tried once
    assert [p.headers["Content-Type"] for p in rejected] == ["image/png", "application/octet-stream"]
    assert len(fake_api.stored) == 3  # the other uploads still completed


def test_transient_failure_of_one_image_lets_the_others_finish(fake_api, tmp_path, no_sleep):
    for i in range(5):
        write_image(tmp_path / f"p{i}.jpg")
    fake_api.put_status["p2.jpg"] = [503]

    with pytest.raises(AutoenhanceError) as info:
        upload_op(str(tmp_path), max_concurrency=2).execute(task_context())

    message = str(info.value)
    assert "1 of 5 upload(s) failed" in message
    assert "p2.jpg" in message
    assert "4 succeeded" in message
    assert len(fake_api.stored) == 4
    assert len(fake_api.puts()) == 4 + 3  # p2 was tried 1 + retry_limit times


def test_a_transient_blip_is_retried_and_succeeds(fake_api, shoot, no_sleep):
    fake_api.put_status["a-kitchen.jpg"] = [503, 200]

    result = upload_op(str(shoot)).execute(task_context())

    assert len(result) == 4
    assert len(fake_api.stored) == 4
    assert len(fake_api.puts()) == 5


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_rejected_key_stops_the_remaining_uploads(fake_api, tmp_path, no_sleep, concurrency):
    for i in range(20):
        write_image(tmp_path / f"p{i:02d}.jpg")
    fake_api.create_status = [401]

    with pytest.raises(AutoenhanceAuthError):
        upload_op(str(tmp_path), max_concurrency=concurrency).execute(task_context())

    # only what was already in flight when the first 401 came back
    assert 1 <= len(fake_api.requests("POST")) <= concurrency
    assert fake_api.puts() == []


# ------------------------------------------------------------------------------ wait_for_upload
def test_wait_for_upload_polls_until_nothing_is_waiting(conn, requests_mock, shoot, no_sleep):
    fake = FakeAPI(requests_mock, confirm_after=3)

    upload_op(str(shoot)).execute(task_context())

    gets = [r for r in fake.requests("GET") if path_of(r.url) == f"/v3/orders/{ORDER_ID}"]
    assert len(gets) == 1 + 4  # the idempotency check, then polls until registered
    assert len(no_sleep.sleeps) == 3
    assert all(img["status"] == "processing" for img in fake.images.values())


def test_wait_for_upload_false_does_not_poll(conn, requests_mock, shoot, no_sleep):
    fake = FakeAPI(requests_mock, confirm_after=3)

    upload_op(str(shoot), wait_for_upload=False).execute(task_context())

    gets = [r for r in fake.requests("GET") if path_of(r.url) == f"/v3/orders/{ORDER_ID}"]
    assert len(gets) == 1
    assert no_sleep.sleeps == []


def test_wait_for_upload_gives_up_after_its_timeout(conn, requests_mock, shoot, no_sleep):
    FakeAPI(requests_mock, confirm_after=10_000)

    with pytest.raises(AutoenhanceError, match="not registered"):
        upload_op(str(shoot / "a-kitchen.jpg")).execute(task_context())

    assert sum(no_sleep.sleeps) >= waiting_module.UPLOAD_CONFIRM_TIMEOUT - 10


# ------------------------------------------------------------------------------ brackets
@pytest.fixture
def brackets(tmp_path) -> Path:
    folder = tmp_path / "hdr"
    for ev in ("b1-minus2.jpg", "b2-zero.jpg", "b3-plus2.jpg"):
        write_image(folder / ev)
    return folder


def test_brackets_are_created_and_uploaded_as_octet_stream(fake_api, brackets, no_sleep):
    ti = FakeTI()

    result = bracket_op(str(brackets)).execute(task_context(ti))

    assert [r["name"] for r in result] == ["b1-minus2.jpg", "b2-zero.jpg", "b3-plus2.jpg"]
    posts = [r.json() for r in fake_api.requests("POST") if path_of(r.url) == "/v3/brackets/"]
    assert posts == [
        {"order_id": ORDER_ID, "name": n} for n in ("b1-minus2.jpg", "b2-zero.jpg", "b3-plus2.jpg")
    ]
    assert fake_api.creates() == []  # no POST /v3/images/
    for put in fake_api.puts():
        assert put.headers["Content-Type"] == "application/octet-stream"
        assert "x-api-key" not in {k.lower() for k in put.headers}
    assert {r["bracket_id"] for r in result} == set(fake_api.stored)
    assert ti.xcoms["order_url"] == f"{APP_URL}/orders/{ORDER_ID}"


def test_brackets_default_to_one_at_a_time_in_source_order(fake_api, brackets, no_sleep):
    op = bracket_op(str(brackets))
    assert op.max_concurrency == 1

    op.execute(task_context())

    posts = [r.json()["name"] for r in fake_api.requests("POST") if path_of(r.url) == "/v3/brackets/"]
    assert posts == ["b1-minus2.jpg", "b2-zero.jpg", "b3-plus2.jpg"]


def test_already_uploaded_brackets_are_skipped(fake_api, brackets, no_sleep):
    fake_api.add_bracket("br-old1", "b1-minus2.jpg", uploaded=True)
    fake_api.add_bracket("br-half", "b2-zero.jpg", uploaded=False)

    result = bracket_op(str(brackets)).execute(task_context())

    posts = [r.json()["name"] for r in fake_api.requests("POST") if path_of(r.url) == "/v3/brackets/"]
    assert posts == ["b2-zero.jpg", "b3-plus2.jpg"]
    assert result[0] == {"bracket_id": "br-old1", "name": "b1-minus2.jpg"}
    assert result[1]["bracket_id"] != "br-half"


def test_brackets_into_a_missing_order_fail_without_creating_anything(
    conn, requests_mock, brackets, no_sleep
):
    fake = FakeAPI(requests_mock, order_exists=False)

    with pytest.raises(AutoenhanceNotFoundError):
        bracket_op(str(brackets)).execute(task_context())

    assert fake.requests("POST") == []
    assert fake.stored == {}


def test_bracket_upload_stops_at_the_first_failure_so_a_retry_keeps_the_order(
    conn, requests_mock, brackets, no_sleep
):
    """One at a time means in order: after b2 fails, b3 must not be uploaded before it."""
    fake = FakeAPI(requests_mock)
    original = fake._put
    calls = []

    def put(request, context):
        calls.append(request.url)
        if len(calls) == 2:
            context.status_code = 500
            return ""
        return original(request, context)

    requests_mock.put(re.compile(re.escape(STORAGE_HOST) + r"/put/.*"), text=put)
    with pytest.raises(AutoenhanceError):
        bracket_op(str(brackets), hook_params={"retry_limit": 0}).execute(task_context())
    assert len(calls) == 2
    assert len(fake.stored) == 1


def test_bad_bracket_files_are_refused_before_any_request(fake_api, brackets):
    (brackets / "b4.jpg").write_bytes(b"garbage")

    with pytest.raises(AutoenhanceSourceError, match=r"b4\.jpg"):
        bracket_op(str(brackets)).execute(task_context())
    assert fake_api.mock.call_count == 0
