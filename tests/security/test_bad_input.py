"""Bad input -> what you get: each row of the README table "Bad input → what you get", end to end
through the operators and the sensor against the sandbox over HTTP (rows already covered by
unit or integration tests name those tests in the README instead).

Each test states the exception a task sees, whether Airflow retries it (``AirflowFailException``
subclasses are permanent: no retry is burnt), and that nothing was sent when the problem is
visible before any request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autoenhance_provider.compat import AirflowFailException, AirflowSensorTimeout
from autoenhance_provider.exceptions import (
    AutoenhanceAuthError,
    AutoenhanceConfigError,
    AutoenhanceConnectionError,
    AutoenhanceCreditsError,
    AutoenhanceError,
    AutoenhanceNotFoundError,
    AutoenhanceOrderFailedError,
    AutoenhanceSourceError,
    AutoenhanceStorageError,
    AutoenhanceTimeoutError,
    AutoenhanceTransientError,
    AutoenhanceUnprocessableError,
    AutoenhanceValidationError,
)
from autoenhance_provider.files.manifest import MANIFEST_NAME
from autoenhance_provider.hooks.autoenhance import AutoenhanceHook
from autoenhance_provider.operators.download import DownloadImagesOperator
from autoenhance_provider.operators.order import CreateOrderOperator
from autoenhance_provider.operators.upload import UploadImagesOperator
from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor
from support.connections import FORM_SAVED_EXTRAS
from support.images import jpeg_bytes
from support.task import FakeTI, task_context

pytestmark = pytest.mark.integration

FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05}


def listing(folder):
    """The files a download left in ``folder``, without the manifest that records them."""
    return [p for p in folder.iterdir() if p.name != MANIFEST_NAME]


def requests_made(sandbox) -> int:
    return sum(sum(by_status.values()) for by_status in sandbox.stats()["requests"].values())


def photos(folder, *names, data: bytes | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(jpeg_bytes() if data is None else data)
    return folder


def upload(order_id: str, source, **kwargs) -> list[dict]:
    operator = UploadImagesOperator(
        task_id="upload", order_id=order_id, source=str(source), hook_params=dict(FAST), **kwargs
    )
    return operator.execute(task_context())


def poke_sensor(order_id: str, **kwargs):
    ti = FakeTI()
    kwargs.setdefault("timeout", 30)
    sensor = OrderProcessedSensor(
        task_id="wait",
        order_id=order_id,
        mode="poke",
        deferrable=False,
        poke_interval=0.1,
        hook_params=dict(FAST),
        **kwargs,
    )
    return sensor.execute(task_context(ti)), ti


# ------------------------------------------------------------------------------ the connection
def test_missing_connection(sandbox, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_AUTOENHANCE_NOWHERE", raising=False)
    operator = CreateOrderOperator(task_id="create", autoenhance_conn_id="autoenhance_nowhere")
    with pytest.raises(Exception, match="autoenhance_nowhere") as info:
        operator.execute(task_context())
    assert type(info.value).__name__ == "AirflowNotFoundException"
    assert "isn't defined" in str(info.value) or "not defined" in str(info.value)
    assert not isinstance(info.value, AirflowFailException)  # Airflow retries: the connection may appear
    assert requests_made(sandbox) == 0


def test_empty_api_key(sandbox, conn):
    conn(password="   ")
    with pytest.raises(AutoenhanceConfigError, match="has no API key") as info:
        CreateOrderOperator(task_id="create").execute(task_context())
    assert isinstance(info.value, AirflowFailException)
    assert requests_made(sandbox) == 0


def test_wrong_api_key_is_401_and_not_retried(sandbox, conn):
    wrong_key = "ae-wrong-key-7c1f0e9d"
    conn(password=wrong_key)
    with pytest.raises(AutoenhanceAuthError) as info:
        CreateOrderOperator(task_id="create", hook_params=dict(FAST)).execute(task_context())
    assert info.value.status_code == 401
    assert isinstance(info.value, AirflowFailException)
    assert sandbox.stats()["requests"]["POST /v3/orders"] == {"401": 1}  # tried once, not retried
    text = str(info.value)
    assert "rejected the API key of connection 'autoenhance_default'" in text
    assert "Fix: put a valid key (app.autoenhance.ai → API) in the password field of" in text
    assert "Admin → Connections → autoenhance_default" in text
    everything = text + repr(info.value) + "".join(traceback.format_exception(info.value))
    assert wrong_key not in everything
    assert wrong_key[3:] not in everything  # not even without its prefix


@pytest.mark.parametrize(
    "bad_key",
    ["ae-q7zk-key\nX-Injected: 1", "ae-q7zk-kéy", "ae-q7zk\tkey", "ae-q7zk-key\u200b"],
    ids=["newline", "non-ascii", "tab", "zero-width-space"],
)
def test_a_key_that_cannot_be_sent_is_a_config_error_that_does_not_quote_it(sandbox, conn, bad_key):
    conn(password=bad_key)
    with pytest.raises(AutoenhanceConfigError, match="cannot be sent in an HTTP header") as info:
        CreateOrderOperator(task_id="create", hook_params=dict(FAST)).execute(task_context())
    assert isinstance(info.value, AirflowFailException)
    assert "'autoenhance_default'" in str(info.value)
    everything = str(info.value) + repr(info.value) + "".join(traceback.format_exception(info.value))
    assert "q7zk" not in everything
    assert "X-Injected" not in everything
    assert requests_made(sandbox) == 0


# (the extras, the needle naming the extra)
BROKEN_EXTRAS = [
    pytest.param({"api_version": "latest"}, "api_version", id="api-version-latest"),
    pytest.param({"timeout": "abc"}, "timeout must be a number", id="timeout-abc"),
    pytest.param({"dev_mode": "sometimes"}, "dev_mode must be true or false", id="dev-mode-sometimes"),
    pytest.param({"connect_timeout": "soon"}, "connect_timeout", id="connect-timeout-soon"),
]


@pytest.mark.parametrize(("extra", "needle"), BROKEN_EXTRAS)
def test_broken_extras_fail_naming_the_extra_before_any_request(sandbox, conn, extra, needle):
    conn(**extra)
    with pytest.raises(AutoenhanceConfigError) as info:
        CreateOrderOperator(task_id="create", hook_params=dict(FAST)).execute(task_context())
    assert needle in str(info.value)
    assert "'autoenhance_default'" in str(info.value)
    assert isinstance(info.value, AirflowFailException)
    assert requests_made(sandbox) == 0


@pytest.mark.parametrize(
    "extra",
    [FORM_SAVED_EXTRAS, {}, None, ""],
    ids=["form-nulls-and-empties", "empty-object", "null", "empty"],
)
def test_a_form_saved_connection_with_null_or_empty_extras_works(sandbox, monkeypatch, extra):
    value = {
        "conn_type": "autoenhance",
        "host": sandbox.base_url,
        "password": sandbox.api_key,
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_AUTOENHANCE_DEFAULT", json.dumps(value))
    order_id = CreateOrderOperator(task_id="create", hook_params=dict(FAST)).execute(task_context())
    assert order_id
    assert sandbox.stats()["orders_created"] == 1
    assert AutoenhanceHook(**FAST).get_order(order_id)["order_id"] == order_id


# ------------------------------------------------------------------------------ the API says no
def test_unknown_order_is_404(sandbox, conn, tmp_path):
    with pytest.raises(AutoenhanceNotFoundError) as info:
        DownloadImagesOperator(
            task_id="download",
            order_id="no-such-order",
            destination=str(tmp_path / "out"),
            hook_params=dict(FAST),
        ).execute(task_context())
    assert info.value.status_code == 404
    assert isinstance(info.value, AirflowFailException)
    with pytest.raises(AutoenhanceNotFoundError):
        poke_sensor("no-such-order")


def test_a_value_the_api_rejects_is_422_naming_the_field(sandbox, conn):
    too_long_for_the_sandbox = "listing-" + "4" * 121  # an id by the provider's rule; the API allows 128
    with pytest.raises(AutoenhanceUnprocessableError, match="order_id") as info:
        CreateOrderOperator(
            task_id="create", order_id=too_long_for_the_sandbox, hook_params=dict(FAST)
        ).execute(task_context())
    assert info.value.status_code == 422
    assert isinstance(info.value, AirflowFailException)
    assert "json.order_id" in str(info.value)


@pytest.mark.parametrize(
    ("order_id", "says"),
    [
        ("listing 42/2026", "is not a valid id"),
        ("listing 42 2026", "is not a valid id"),
        ("{{ conn.autoenhance_default.password }}", "is not a valid id"),
        ("../orders", "is not a valid id"),
        ("..", "is not a valid id"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (["o-1", "o-2"], "order_id must be a string, got list"),
        (42, "order_id must be a string, got int"),
        (None, "order_id must be a string, got NoneType"),
    ],
)
def test_a_bad_order_id_fails_before_any_request_naming_the_parameter(sandbox, conn, order_id, says):
    from autoenhance_provider.operators.download import DownloadImagesOperator as Download
    from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

    tasks = [
        UploadImagesOperator(task_id="upload", order_id=order_id, source="/x"),
        Download(task_id="download", order_id=order_id, destination="/tmp/never-written"),
        OrderProcessedSensor(task_id="wait", order_id=order_id, poke_interval=1, timeout=5),
    ]
    for task in tasks:
        with pytest.raises(AutoenhanceValidationError, match=says) as info:
            task.execute(task_context())
        assert isinstance(info.value, AirflowFailException)
        assert str(info.value).startswith("order_id ")  # names the parameter
    assert requests_made(sandbox) == 0


def test_invalid_setting_fails_at_parse_time_naming_the_allowed_values(sandbox, conn):
    with pytest.raises(AutoenhanceValidationError, match="enhance_type") as info:
        UploadImagesOperator(task_id="upload", order_id="o", source="/x", enhance_type="sunny")
    assert "warm" in str(info.value)
    assert "neutral" in str(info.value)
    assert requests_made(sandbox) == 0


@pytest.mark.parametrize(("kwargs", "names"), [({"quality": 120}, "quality"), ({"format": "gif"}, "format")])
def test_invalid_download_parameter_fails_at_parse_time(sandbox, conn, tmp_path, kwargs, names):
    with pytest.raises(AutoenhanceValidationError, match=names) as info:
        DownloadImagesOperator(task_id="download", order_id="o", destination=str(tmp_path), **kwargs)
    assert isinstance(info.value, AirflowFailException)
    assert requests_made(sandbox) == 0


# ------------------------------------------------------------------------------ the files
@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"notes.txt": b"hello", "anim.gif": b"GIF89a"}, "unsupported file type"),
        ({"empty.jpg": b""}, "the file is empty"),
        ({"renamed.jpg": b"\x89PNG\r\n\x1a\n" + b"\0" * 64}, "not a valid image/jpeg file"),
    ],
    ids=["unsupported-type", "empty-file", "wrong-content"],
)
def test_bad_files_are_refused_before_any_request(sandbox, conn, tmp_path, files, message):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(AutoenhanceSourceError, match=message) as info:
        upload("o-1", folder)
    assert isinstance(info.value, AirflowFailException)
    assert all(name in str(info.value) for name in files)  # every bad file is listed
    assert requests_made(sandbox) == 0


def test_empty_folder(sandbox, conn, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AutoenhanceSourceError, match="contains no files"):
        upload("o-1", tmp_path / "empty")
    assert requests_made(sandbox) == 0


def test_missing_file(sandbox, conn, tmp_path):
    with pytest.raises(AutoenhanceSourceError, match="not found"):
        upload("o-1", tmp_path / "nowhere" / "front.jpg")
    with pytest.raises(AutoenhanceSourceError, match="No files match"):
        upload("o-1", tmp_path / "*.jpg")
    assert requests_made(sandbox) == 0


def test_unwritable_destination(sandbox, conn, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(AutoenhanceValidationError, match="cannot be created") as info:
        DownloadImagesOperator(task_id="download", order_id="o-1", destination=str(blocker / "out")).execute(
            task_context()
        )
    assert isinstance(info.value, AirflowFailException)
    assert f"Destination directory {blocker / 'out'} cannot be created" in str(info.value)
    assert requests_made(sandbox) == 0


#: Runs DownloadImagesOperator in a child process and prints what it raised, as JSON.
DOWNLOAD_IN_A_CHILD = """
import json, sys, traceback
from support.task import task_context
from autoenhance_provider.compat import AirflowFailException
from autoenhance_provider.operators.download import DownloadImagesOperator
try:
    operator = DownloadImagesOperator(task_id="download", order_id="o-1", destination=sys.argv[1])
    operator.execute(task_context())
except Exception as exc:
    print(json.dumps({"type": type(exc).__name__, "message": str(exc),
                      "permanent": isinstance(exc, AirflowFailException)}))
else:
    print(json.dumps({"type": None}))
"""


def without_write_permission(argv: list[str]) -> list[str]:
    """``argv`` as a process that permission bits apply to.

    root ignores them (CAP_DAC_OVERRIDE), and CI runs as root: there the child keeps uid 0 (so it
    can still read the venv under /root) but loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, for
    itself and for anything it execs. Any other user is already bound by the bits.
    """
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root: setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]


@pytest.mark.parametrize(
    ("below", "says"),
    [
        ("", "is not writable"),  # the folder exists, its bits say no
        ("out", "cannot be created: Permission denied"),  # it would have to be made inside it
    ],
    ids=["existing-folder", "folder-to-create"],
)
def test_destination_without_write_permission(sandbox, conn, tmp_path, below, says):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    destination = locked / below if below else locked
    try:
        result = subprocess.run(
            without_write_permission([sys.executable, "-c", DOWNLOAD_IN_A_CHILD, str(destination)]),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])},
        )
    finally:
        locked.chmod(0o755)
    assert result.returncode == 0, result.stderr[-3000:]
    raised = json.loads(result.stdout.strip().splitlines()[-1])
    assert raised["type"] == "AutoenhanceValidationError", raised
    assert raised["message"] == f"Destination directory {destination} {says}"  # names the folder
    assert raised["permanent"] is True
    assert not list(locked.iterdir())
    assert requests_made(sandbox) == 0


# ------------------------------------------------------------------------------ money and results
def test_out_of_credits_is_402_and_a_retry_buys_only_the_rest(sandbox, conn, tmp_path):
    hook = AutoenhanceHook(**FAST)
    order_id = hook.create_order(name="credits")["order_id"]
    upload(order_id, photos(tmp_path / "photos", "a.jpg", "b.jpg", "c.jpg"))
    hook.wait_for_order(order_id, poll_interval=0.1, timeout=30)
    sandbox.state.credits_remaining = 1  # like `autoenhance-sandbox --credits 1`
    out = tmp_path / "out"

    def download():
        return DownloadImagesOperator(
            task_id="download",
            order_id=order_id,
            destination=str(out),
            preview=False,
            max_concurrency=1,
            hook_params=dict(FAST),
        ).execute(task_context())

    with pytest.raises(AutoenhanceCreditsError) as info:
        download()
    assert info.value.status_code == 402
    assert isinstance(info.value, AirflowFailException)
    assert [p.name for p in listing(out)] == ["a.jpg"]  # the one bought; no partial files
    sandbox.state.credits_remaining = None  # credits topped up
    assert len(download()) == 3
    assert sorted(p.name for p in listing(out)) == ["a.jpg", "b.jpg", "c.jpg"]
    assert set(sandbox.stats()["purchases_per_image"].values()) == {1}


def test_image_that_fails_processing(sandbox, conn, tmp_path):
    hook = AutoenhanceHook(**FAST)
    order_id = hook.create_order(name="broken")["order_id"]
    folder = photos(tmp_path / "photos", "good.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10)  # passes the sniff
    upload(order_id, folder)

    with pytest.raises(AutoenhanceOrderFailedError, match=r"broken\.jpg") as info:
        poke_sensor(order_id)
    assert isinstance(info.value, AirflowFailException)
    assert "not a decodable image" in str(info.value) or "damaged" in str(info.value)

    summary, ti = poke_sensor(order_id, allow_partial=True)
    assert summary["processed"] == 1
    assert [f["image_name"] for f in ti.xcoms["failed_images"]] == ["broken.jpg"]
    uris = DownloadImagesOperator(
        task_id="download", order_id=order_id, destination=str(tmp_path / "out"), hook_params=dict(FAST)
    ).execute(task_context())
    assert [u.rsplit("/", 1)[-1] for u in uris] == ["good.jpg"]


def test_waiting_too_long(sandbox, conn, tmp_path):
    sandbox.config.processing_seconds = 3600
    hook = AutoenhanceHook(**FAST)
    order_id = hook.create_order(name="slow")["order_id"]
    upload(order_id, photos(tmp_path / "photos", "a.jpg"))
    with pytest.raises(AirflowSensorTimeout):
        poke_sensor(order_id, timeout=0.5)
    with pytest.raises(AutoenhanceTimeoutError) as info:
        hook.wait_for_order(order_id, poll_interval=0.1, timeout=0.3)
    assert not isinstance(info.value, AirflowFailException)  # Airflow may retry the wait


def test_download_before_the_order_is_done_is_retryable_and_writes_nothing(sandbox, conn, tmp_path):
    sandbox.config.processing_seconds = 3600
    hook = AutoenhanceHook(**FAST)
    order_id = hook.create_order(name="early")["order_id"]
    upload(order_id, photos(tmp_path / "photos", "a.jpg", "b.jpg"))
    out = tmp_path / "out"

    def download() -> list[str]:
        return DownloadImagesOperator(
            task_id="download", order_id=order_id, destination=str(out), hook_params=dict(FAST)
        ).execute(task_context())

    with pytest.raises(AutoenhanceError, match="not finished, nothing downloaded yet") as info:
        download()
    assert not isinstance(info.value, AirflowFailException)  # Airflow spends a retry on it
    assert not out.exists() or not list(out.iterdir())
    assert sandbox.stats()["downloads"]["enhanced"] == 0
    assert sandbox.stats()["purchases"] == 0
    sandbox.advance_clock(3601)  # processing finishes; Airflow's retry of the same task now works
    assert len(download()) == 2
    assert sorted(p.name for p in listing(out)) == ["a.jpg", "b.jpg"]


# ------------------------------------------------------------------------------ the upload
def test_upload_into_a_missing_order_fails_unless_asked_to_create_it(sandbox, conn, tmp_path):
    folder = photos(tmp_path / "photos", "a.jpg")
    with pytest.raises(AutoenhanceNotFoundError, match="create_missing_order=True") as info:
        upload("typo-order-1", folder)
    assert isinstance(info.value, AirflowFailException)
    assert "typo-order-1" in str(info.value)
    stats = sandbox.stats()
    assert (stats["orders_created"], stats["images_created"], stats["uploads"]) == (0, 0, 0)

    uploaded = upload("typo-order-1", folder, create_missing_order=True)
    assert [u["image_name"] for u in uploaded] == ["a.jpg"]
    order = AutoenhanceHook(**FAST).get_order("typo-order-1")
    assert [i["image_name"] for i in order["images"]] == ["a.jpg"]


def test_an_expired_upload_url_is_a_storage_error_and_a_retry_uploads(sandbox, conn, tmp_path, monkeypatch):
    import autoenhance_sandbox.storage

    hook = AutoenhanceHook(**FAST)
    order_id = hook.create_order(name="expired")["order_id"]
    folder = photos(tmp_path / "photos", "a.jpg", "b.jpg")
    monkeypatch.setattr(autoenhance_sandbox.storage, "URL_EXPIRES_SECONDS", -1)  # signed, already expired
    with pytest.raises(AutoenhanceStorageError) as info:
        upload(order_id, folder, max_concurrency=1)
    text = str(info.value)
    assert "The storage host refused the signed URL" in text
    assert "HTTP 403" in text
    assert "Request has expired" in text
    assert "Signed URLs expire" in text
    assert "X-Amz-Signature=" not in text + repr(info.value)
    assert not isinstance(info.value, AirflowFailException)  # Airflow retries the task...
    put = sandbox.stats()["requests"]["PUT /_storage/{object_key}"]
    # ...but a refused URL is not re-sent: per image one PUT, plus one to the octet-stream URL the
    # hook asks for when the declared Content-Type is refused.
    assert set(put) == {"403"}
    assert put["403"] <= 2 * 2

    monkeypatch.setattr(autoenhance_sandbox.storage, "URL_EXPIRES_SECONDS", 3600)
    assert sorted(u["image_name"] for u in upload(order_id, folder)) == ["a.jpg", "b.jpg"]  # the retry
    images = hook.get_order(order_id)["images"]
    assert sorted(i["image_name"] for i in images) == ["a.jpg", "b.jpg"]  # nothing twice


# ------------------------------------------------------------------------------ the network
def test_api_keeps_failing_is_a_transient_error_airflow_may_retry(sandbox, conn):
    sandbox.set_faults(1.0, kinds=["503"], seed=1)
    with pytest.raises(AutoenhanceTransientError) as info:
        CreateOrderOperator(task_id="create", hook_params={**FAST, "retry_limit": 2}).execute(task_context())
    assert info.value.status_code == 503
    assert not isinstance(info.value, AirflowFailException)


def test_api_unreachable_is_a_connection_error_airflow_may_retry(sandbox, conn):
    conn(host="http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(AutoenhanceConnectionError) as info:
        CreateOrderOperator(task_id="create", hook_params={**FAST, "retry_limit": 1}).execute(task_context())
    assert not isinstance(info.value, AirflowFailException)


# ------------------------------------------------------------------------------ what a download gets
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"


class FakeAPI(BaseHTTPRequestHandler):
    """One processed image; its download answers with ``body`` (promising ``length`` bytes)."""

    body: bytes = b""
    content_type = "image/jpeg"
    length: int | None = None
    downloads = 0

    def do_GET(self) -> None:
        if self.path.startswith("/v3/orders/o-1"):
            image = {
                "image_id": "img-1",
                "image_name": "room.jpg",
                "status": "processed",
                "downloaded": False,
            }
            order = {"order_id": "o-1", "images": [image], "is_merging": False, "is_processing": False}
            payload, content_type, length = json.dumps(order).encode(), "application/json", None
        else:
            type(self).downloads += 1
            payload, content_type, length = self.body, self.content_type, self.length
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload) if length is None else length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("content_type", "body", "length"),
    [
        ("text/html; charset=utf-8", HTML_PAGE, None),
        ("image/jpeg", HTML_PAGE, None),  # an error page labelled as the image
        ("image/jpeg", b"", None),
        ("image/jpeg", jpeg_bytes()[:300], len(jpeg_bytes()) + 5000),  # cut short
    ],
    ids=["html", "html-labelled-jpeg", "empty", "truncated"],
)
def test_a_download_that_is_not_a_whole_image_is_an_error_and_writes_nothing(
    conn, tmp_path, content_type, body, length
):
    handler = type("Handler", (FakeAPI,), {"body": body, "content_type": content_type, "length": length})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn(host=f"http://127.0.0.1:{server.server_address[1]}")
        out = tmp_path / "out"
        with pytest.raises(AutoenhanceError) as info:
            DownloadImagesOperator(
                task_id="download",
                order_id="o-1",
                destination=str(out),
                preview=False,
                hook_params={**FAST, "retry_limit": 1},
            ).execute(task_context())
    finally:
        server.shutdown()
        server.server_close()
    assert not isinstance(info.value, AirflowFailException)  # Airflow retries: a new download
    assert handler.downloads >= 1
    assert not out.exists() or list(out.iterdir()) == []  # no file, no temp file, no manifest
