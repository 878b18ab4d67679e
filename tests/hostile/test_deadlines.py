"""1. Total deadline: a server that trickles bytes must not hold a call past its deadline.

Timeouts per socket read do not help against a server that sends one byte per second: every
byte resets them. The connection extra ``request_deadline`` (seconds, per API request, connect +
headers + body) and ``min_transfer_rate`` (bytes/s, so a transfer's deadline scales with its
size) bound the whole exchange; ``wait_for_order(timeout=T)`` and the trigger's ``end_time`` bound
the wait even when a request is in flight.

The limits given to ``run_bounded`` are hang guards (several times what the deadline allows),
not performance assertions.
"""

from __future__ import annotations

import time

import pytest
from servers import (
    FAST,
    Request,
    describe,
    fast_hook,
    first_trigger_event,
    run_bounded,
    slow_body,
    slow_headers,
)

from autoenhance_provider.exceptions import AutoenhanceError, AutoenhanceTimeoutError
from support.task import task_context

DEADLINE = 1.0
#: Attempts of FAST (retry_limit=1) times the deadline, plus slack for a busy 2-core machine.
GUARD = DEADLINE * 2 + 6


def _assert_ended_with_autoenhance_error(outcome) -> None:
    assert outcome.finished, f"the call did not respect its deadline: {describe(outcome)}"
    assert isinstance(outcome.error, AutoenhanceError), describe(outcome)


#: A server that trickles its headers, or prompt headers and then a trickled body.
TRICKLES = [pytest.param(slow_headers, id="headers"), pytest.param(slow_body, id="body")]


class TestTotalDeadline:
    @pytest.mark.parametrize("trickle", TRICKLES)
    def test_sync_hook(self, serve, connect, trickle) -> None:
        server = serve(lambda r: trickle())
        conn = connect(server, request_deadline=DEADLINE)
        outcome = run_bounded(lambda: fast_hook(conn).get_order("o-1"), GUARD)
        _assert_ended_with_autoenhance_error(outcome)

    def test_sensor_poke_slow_headers(self, serve, connect) -> None:
        from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

        server = serve(lambda r: slow_headers())
        conn = connect(server, request_deadline=DEADLINE)
        sensor = OrderProcessedSensor(
            task_id="wait",
            order_id="o-1",
            autoenhance_conn_id=conn,
            hook_params=dict(FAST),
            poke_interval=1,
            timeout=60,
            error_budget=1,
        )
        outcome = run_bounded(lambda: sensor.poke(task_context()), GUARD)
        assert outcome.finished, f"poke did not respect the request deadline: {describe(outcome)}"
        # A transient failure may be tolerated (False) or reported (an AutoenhanceError); nothing else.
        assert outcome.value is False or isinstance(outcome.error, AutoenhanceError), describe(outcome)

    def test_download_slow_body(self, serve, connect, tmp_path) -> None:
        """A 20 kB image at >= 10 kB/s may take 2 s more than the request deadline, not minutes."""
        size = 20_000

        def app(request: Request):
            return slow_body(length=size, content_type="image/jpeg")

        server = serve(app)
        conn = connect(server, request_deadline=DEADLINE, min_transfer_rate=10_000)
        target = tmp_path / "out.jpg"
        # retry_limit=0: one attempt per GET; the download's own body retries (3) remain.
        hook = fast_hook(conn, retry_limit=0)
        outcome = run_bounded(lambda: hook.download_image("img-1", target), 3 * (DEADLINE + 2) + 6)
        _assert_ended_with_autoenhance_error(outcome)
        assert list(tmp_path.iterdir()) == [], "a partial download was left at the destination"

    def test_trigger_never_runs_past_end_time(self, serve, connect) -> None:
        server = serve(lambda r: slow_headers())
        conn = connect(server)  # no request_deadline: end_time alone must bound the trigger
        end_time = time.time() + 2
        outcome = run_bounded(
            lambda: first_trigger_event(conn, poll_interval=0.2, end_time=end_time, hook_params=dict(FAST)),
            2 + 6,
        )
        assert outcome.finished, f"the trigger ran past its end_time: {describe(outcome)}"
        assert outcome.error is None, describe(outcome)
        assert outcome.value is not None
        assert outcome.value.payload["status"] in ("timeout", "error")

    def test_trigger_slow_body_with_request_deadline(self, serve, connect) -> None:
        server = serve(lambda r: slow_body())
        conn = connect(server, request_deadline=DEADLINE)
        outcome = run_bounded(
            lambda: first_trigger_event(
                conn, poll_interval=0.1, end_time=time.time() + 120, error_budget=1, hook_params=dict(FAST)
            ),
            GUARD,
        )
        assert outcome.finished, f"the async request ignored request_deadline: {describe(outcome)}"
        assert outcome.value is not None, describe(outcome)
        assert outcome.value.payload["status"] == "error", describe(outcome)

    @pytest.mark.parametrize("trickle", TRICKLES)
    def test_wait_for_order_timeout_holds_mid_request(self, serve, connect, trickle) -> None:
        server = serve(lambda r: trickle())
        conn = connect(server)  # no request_deadline: the wait's own timeout must bound it
        outcome = run_bounded(
            lambda: fast_hook(conn).wait_for_order("o-1", poll_interval=0.1, timeout=2), 2 + 6
        )
        assert outcome.finished, f"wait_for_order(timeout=2) overran: {describe(outcome)}"
        assert isinstance(outcome.error, AutoenhanceTimeoutError | AutoenhanceError), describe(outcome)

    def test_bounded_call_on_a_prompt_server_is_fast(self, serve, connect) -> None:
        """Control: the deadline extras do not break a well-behaved exchange."""
        from servers import done_order, json_reply

        server = serve(lambda r: json_reply(200, done_order()))
        conn = connect(server, request_deadline=DEADLINE, min_transfer_rate=10_000)
        outcome = run_bounded(lambda: fast_hook(conn).get_order("o-1"), GUARD)
        assert outcome.finished, describe(outcome)
        assert outcome.error is None, describe(outcome)
        assert outcome.value["order_id"] == "o-1"
