"""``/_sandbox/*`` admin routes: health, stats, reset, faults, contract options, account limits,
bulk seeding, webhook log, rejection log.

Never faulted, never counted, no API key: they exist for tests and benchmarks, not clients.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from autoenhance_sandbox.errors import json_response
from autoenhance_sandbox.schemas import fault_error, parse_json_body, parse_seed
from autoenhance_sandbox.state import SandboxState

FAULT_FIELDS = ("rate", "kinds", "endpoints", "seed", "phase", "slow_seconds")


def configure_faults(state: SandboxState, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply a partial fault configuration (omitted keys keep their value); shared by the HTTP
    admin endpoint and :meth:`autoenhance_sandbox.testing.SandboxServer.set_faults`."""
    kwargs = {name: changes[name] for name in FAULT_FIELDS if name in changes}
    settings = state.faults.configure(**kwargs, replace_seed="seed" in changes)
    return settings.as_dict()


def build_admin_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/_sandbox")

    @router.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @router.get("/stats")
    async def stats() -> Response:
        return json_response(state.stats())

    @router.post("/reset")
    async def reset() -> Response:
        state.reset()
        return json_response({"status": "reset"})

    @router.get("/faults")
    async def get_faults() -> Response:
        return json_response(state.faults.settings.as_dict())

    @router.post("/faults")
    async def set_faults(request: Request) -> Response:
        body = parse_json_body(await request.body())
        try:
            return json_response(configure_faults(state, body))
        except (TypeError, ValueError, AttributeError) as exc:
            raise fault_error(exc) from None

    @router.get("/options")
    async def get_options() -> Response:
        return json_response(state.config.options())

    @router.post("/options")
    async def set_options(request: Request) -> Response:
        """Pick contract readings for the following requests (all-or-nothing; 422 on a typo)."""
        body = parse_json_body(await request.body())
        try:
            return json_response(state.config.set_options(**body))
        except (TypeError, ValueError) as exc:
            raise fault_error(exc) from None

    @router.get("/limits")
    async def get_limits() -> Response:
        return json_response(state.limits_status())

    @router.post("/limits")
    async def set_limits(request: Request) -> Response:
        """Set the account limits (all-or-nothing; ``null`` switches one off; 422 on a typo)."""
        body = parse_json_body(await request.body())
        try:
            state.config.set_limits(**body)
        except (TypeError, ValueError) as exc:
            raise fault_error(exc) from None
        return json_response(state.limits_status())

    @router.post("/limits/reset")
    async def reset_limits() -> Response:
        """ "Capacity upgraded": every limit window (rate, names per hour, enhancements today) restarts."""
        state.reset_limits()
        return json_response(state.limits_status())

    @router.post("/clock")
    async def clock(request: Request) -> Response:
        """Move the sandbox clock forward: ``{"advance_seconds": 60}`` finishes what is due by then."""
        body = parse_json_body(await request.body())
        seconds = body.get("advance_seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise fault_error(ValueError("advance_seconds must be a number >= 0"))
        return json_response({"offset_seconds": state.advance_clock(float(seconds))})

    @router.get("/rejections")
    async def rejections() -> Response:
        with state.lock:
            records = [dict(record) for record in state.rejections]
        return json_response({"rejections": records})

    @router.post("/seed")
    async def seed(request: Request) -> Response:
        req = parse_seed(parse_json_body(await request.body()))
        ids = state.seed(
            req.orders, req.images_per_order, req.finish_after_seconds, req.error_fraction, state.now()
        )
        return json_response({"order_ids": ids})

    @router.get("/webhooks")
    async def webhooks() -> Response:
        with state.lock:
            events = [dict(record) for record in state.webhook_log]
        return json_response({"events": events})

    return router
