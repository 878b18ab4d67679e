"""3. Responses are checked before use: a 2xx/3xx that is not what the endpoint promises is an
AutoenhanceAPIError naming the endpoint, never an AttributeError, KeyError or TypeError later."""

from __future__ import annotations

import pytest
from servers import (
    FAST,
    Request,
    async_get_order,
    describe,
    done_order,
    execute_bounded,
    fast_hook,
    fast_operator,
    first_trigger_event,
    head,
    json_reply,
    reply,
    run_bounded,
)

from autoenhance_provider.exceptions import AutoenhanceAPIError, AutoenhanceError
from support.images import jpeg_bytes
from support.task import task_context

GUARD = 15
#: Bodies a JSON object endpoint must not accept as an answer.
NOT_AN_OBJECT = {
    "empty": b"",
    "list": b'[{"order_id": "o-1"}]',
    "empty-list": b"[]",
    "string": b'"o-1"',
    "null": b"null",
    "number": b"42",
}


def _assert_api_error_naming(outcome, endpoint: str) -> None:
    assert outcome.finished, describe(outcome)
    assert isinstance(outcome.error, AutoenhanceAPIError), describe(outcome)
    assert endpoint in str(outcome.error), f"the error does not name {endpoint}: {outcome.error}"


@pytest.fixture(params=sorted(NOT_AN_OBJECT), ids=sorted(NOT_AN_OBJECT))
def odd_order_server(request, serve):
    body = NOT_AN_OBJECT[request.param]
    return serve(lambda r: reply(200, body, "application/json"))


class TestResponsesCheckedBeforeUse:
    def test_get_order_sync(self, odd_order_server, connect) -> None:
        conn = connect(odd_order_server)
        _assert_api_error_naming(
            run_bounded(lambda: fast_hook(conn).get_order("o-1"), GUARD), "/v3/orders/o-1"
        )

    def test_get_order_or_none_sync(self, odd_order_server, connect) -> None:
        conn = connect(odd_order_server)
        outcome = run_bounded(lambda: fast_hook(conn).get_order_or_none("o-1"), GUARD)
        _assert_api_error_naming(outcome, "/v3/orders/o-1")

    def test_get_order_async(self, odd_order_server, connect) -> None:
        conn = connect(odd_order_server)
        _assert_api_error_naming(run_bounded(lambda: async_get_order(conn), GUARD), "/v3/orders/o-1")

    def test_trigger_event_is_an_api_error(self, odd_order_server, connect) -> None:
        """The trigger's event says what was wrong with the answer, not a Python exception name."""
        import time

        conn = connect(odd_order_server)
        outcome = run_bounded(
            lambda: first_trigger_event(conn, poll_interval=0.1, end_time=time.time() + 30, error_budget=1),
            GUARD,
        )
        assert outcome.finished, describe(outcome)
        assert outcome.error is None, describe(outcome)
        payload = outcome.value.payload
        assert payload["status"] == "error", payload
        for name in ("AttributeError", "KeyError", "TypeError"):
            assert name not in str(payload.get("message")), payload
        assert payload.get("path") == "/v3/orders/o-1", payload

    def test_sensor_poke(self, odd_order_server, connect) -> None:
        from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

        conn = connect(odd_order_server)
        sensor = OrderProcessedSensor(
            task_id="wait", order_id="o-1", autoenhance_conn_id=conn, hook_params=dict(FAST), error_budget=1
        )
        outcome = run_bounded(lambda: sensor.poke(task_context()), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)

    def test_download_images_operator(self, odd_order_server, connect, tmp_path) -> None:
        from autoenhance_provider.operators.download import DownloadImagesOperator

        conn = connect(odd_order_server)
        operator = fast_operator(
            DownloadImagesOperator, conn, task_id="download", destination=str(tmp_path / "out")
        )
        outcome = execute_bounded(operator, GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceAPIError), describe(outcome)

    def test_create_image_without_image_id_fails_before_any_put(self, serve, connect, tmp_path) -> None:
        """The upload never starts when the created image has no id to report."""
        from autoenhance_provider.operators.upload import UploadImagesOperator

        def app(request: Request):
            if request.method == "POST" and request.path == "/v3/images/":
                return json_reply(201, {"upload_url": server.url("/storage/put"), "order_id": "o-1"})
            if request.method == "PUT":
                return reply(200, b"", None, [("ETag", '"abc"')])
            return json_reply(200, {"order_id": "o-1", "images": []})

        server = serve(app)
        conn = connect(server)
        outcome = run_bounded(lambda: fast_hook(conn).create_image("room.jpg", order_id="o-1"), GUARD)
        _assert_api_error_naming(outcome, "/v3/images/")

        source = tmp_path / "room.jpg"
        source.write_bytes(jpeg_bytes())
        operator = fast_operator(
            UploadImagesOperator, conn, task_id="upload", source=str(source), wait_for_upload=False
        )
        outcome = execute_bounded(operator, GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
        assert server.seen("PUT") == [], "bytes were uploaded for an image the API never identified"

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    def test_redirect_without_location_is_an_error(self, serve, connect, status) -> None:
        body = b'{"order_id": "o-1", "images": []}'
        server = serve(
            lambda r: [head(status, [("Content-Type", "application/json")], length=len(body)) + body]
        )
        conn = connect(server)
        _assert_api_error_naming(
            run_bounded(lambda: fast_hook(conn).get_order("o-1"), GUARD), "/v3/orders/o-1"
        )

    @pytest.mark.parametrize("status", [301, 302, 303])
    def test_redirect_answering_a_post_is_not_a_created_order(self, serve, connect, status) -> None:
        def app(request: Request):
            if request.method == "POST":
                body = b'{"order_id": "o-1"}'
                return [
                    head(
                        status,
                        [("Location", "/v3/orders/o-1"), ("Content-Type", "application/json")],
                        length=len(body),
                    )
                    + body
                ]
            return json_reply(404, {"message": "Order not found"})

        server = serve(app)
        conn = connect(server)
        outcome = run_bounded(lambda: fast_hook(conn).create_order(name="n", order_id="o-1"), GUARD)
        _assert_api_error_naming(outcome, "/v3/orders/")

    def test_create_order_operator_does_not_report_an_order_never_created(self, serve, connect) -> None:
        from autoenhance_provider.operators.order import CreateOrderOperator

        def app(request: Request):
            if request.method == "POST":
                return [head(302, [("Location", "/v3/orders/o-1")], length=0)]
            return json_reply(404, {"message": "Order not found"})

        server = serve(app)
        conn = connect(server)
        outcome = execute_bounded(fast_operator(CreateOrderOperator, conn, task_id="create"), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), (
            f"CreateOrderOperator reported success for an order the API never created: {describe(outcome)}"
        )

    def test_well_formed_answers_still_work(self, serve, connect) -> None:
        """Control: the checks do not reject a normal order."""
        server = serve(lambda r: json_reply(200, done_order()))
        conn = connect(server)
        outcome = run_bounded(lambda: fast_hook(conn).get_order("o-1"), GUARD)
        assert outcome.finished, describe(outcome)
        assert outcome.error is None, describe(outcome)
        assert outcome.value["order_id"] == "o-1"
