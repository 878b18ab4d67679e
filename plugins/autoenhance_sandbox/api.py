"""Routes of the fake Autoenhance v3 API plus its storage (presigned PUT) and asset hosts.

Handlers stay thin: parse with :mod:`~autoenhance_sandbox.schemas`, act on
:class:`~autoenhance_sandbox.state.SandboxState`, shape URLs here. Paths are declared without a
trailing slash; the middleware strips one from requests, so both spellings work.
"""

from __future__ import annotations

import datetime as dt
import hmac
import html

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from autoenhance_sandbox.assets import AssetService
from autoenhance_sandbox.errors import ApiError, json_response, not_found, unauthorized
from autoenhance_sandbox.render import probe
from autoenhance_sandbox.schemas import (
    encode_offset,
    parse_bracket_in,
    parse_download_query,
    parse_image_in,
    parse_json_body,
    parse_list_query,
    parse_order_in,
    parse_order_patch,
    parse_process,
    parse_report,
)
from autoenhance_sandbox.state import SandboxState
from autoenhance_sandbox.storage import BRACKET_CONTENT_TYPE, public_base_url
from autoenhance_sandbox.versions import parse_api_version, shape_image, shape_order, upload_url_field

DOWNLOAD_KINDS_OPEN = ("original", "preview", "watermark")  # no key needed (SDK-2410, DOCS)


def build_api_router(state: SandboxState, assets: AssetService) -> APIRouter:
    """All ``/v3``, ``/_storage`` and ``/_assets`` routes bound to one state."""
    router = APIRouter()

    def require_key(request: Request) -> None:
        given = request.headers.get("x-api-key")
        if given is None or not hmac.compare_digest(given.encode(), state.config.api_key.encode()):
            raise unauthorized()

    async def body_of(request: Request) -> dict:
        raw = await request.body()
        request.state.raw_body = raw  # for the rejection log (GET /_sandbox/rejections)
        return parse_json_body(raw)

    def version_of(request: Request) -> dt.date | None:
        return parse_api_version(request.headers.get("x-api-version"))

    def route_gate(option: str) -> None:
        """``process_route``/``merge_route`` = ``missing_404``/``missing_405``: play a server
        without that endpoint (APIFlask's 404/405 bodies)."""
        if option == "missing_404":
            raise not_found()
        if option == "missing_405":
            raise ApiError(405, "Method Not Allowed", headers={"Allow": "OPTIONS"})

    def asset_base(request: Request) -> str:
        return public_base_url(request.url.scheme, request.headers.get("host"), state.config.asset_base_url)

    # -- orders --------------------------------------------------------------------------------

    @router.post("/v3/orders")
    async def create_order(request: Request) -> Response:
        require_key(request)
        order_id, name = parse_order_in(await body_of(request))
        return json_response(
            shape_order(state.create_order(order_id, name, state.now()), version_of(request))
        )

    @router.get("/v3/orders")
    async def list_orders(request: Request) -> Response:
        require_key(request)
        after, per_page = parse_list_query(request.query_params, state.config.per_page_over_max)
        orders, next_seq = state.list_orders(after, per_page, state.now())
        version = version_of(request)
        orders = [shape_order(order, version) for order in orders]
        next_offset = encode_offset(next_seq) if next_seq is not None else None
        return json_response(
            {"orders": orders, "pagination": {"next_offset": next_offset, "per_page": per_page}}
        )

    @router.get("/v3/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> Response:
        return json_response(shape_order(state.get_order(order_id, state.now()), version_of(request)))

    @router.patch("/v3/orders/{order_id}")
    async def edit_order(order_id: str, request: Request) -> Response:
        require_key(request)
        name = parse_order_patch(await body_of(request))
        return json_response(
            shape_order(state.rename_order(order_id, name, state.now()), version_of(request))
        )

    @router.delete("/v3/orders/{order_id}")
    async def delete_order(order_id: str, request: Request) -> Response:
        require_key(request)
        state.delete_order(order_id, state.now())
        return Response(status_code=204)

    @router.post("/v3/orders/{order_id}/process")
    async def process_order(order_id: str, request: Request) -> Response:
        require_key(request)
        route_gate(state.config.process_route)
        version = version_of(request)
        process = parse_process(await body_of(request), allow_grouping=True, version=version)
        return json_response(shape_order(state.process_order(order_id, process, state.now()), version))

    @router.post("/v3/orders/{order_id}/merge")
    async def merge_order(order_id: str, request: Request) -> Response:
        require_key(request)
        route_gate(state.config.merge_route)
        version = version_of(request)
        process = parse_process(await body_of(request), allow_grouping=False, version=version)
        return json_response(shape_order(state.process_order(order_id, process, state.now()), version))

    @router.get("/v3/orders/{order_id}/brackets")
    async def order_brackets(order_id: str) -> Response:
        return json_response({"brackets": state.list_brackets(order_id)})

    # -- images --------------------------------------------------------------------------------

    @router.post("/v3/images")
    async def create_image(request: Request) -> Response:
        require_key(request)
        version = version_of(request)
        image = parse_image_in(
            await body_of(request), partial=False, version=version, unknown=state.config.unknown_image_fields
        )
        if state.config.upload_content_type == "octet_stream":
            image.content_type = BRACKET_CONTENT_TYPE  # URL signed for octet-stream whatever was sent
        now = state.now()
        out, object_key = state.create_image(image, now)
        url = state.blobs.presign_put(asset_base(request), object_key, image.content_type, now)
        out[upload_url_field(version)] = url
        return json_response(shape_image(out, version))

    @router.get("/v3/images/{image_id}")
    async def get_image(image_id: str, request: Request) -> Response:
        return json_response(shape_image(state.get_image(image_id, state.now()), version_of(request)))

    @router.api_route("/v3/images/{image_id}/process", methods=["POST", "PATCH"])
    async def reprocess_image(image_id: str, request: Request) -> Response:
        require_key(request)
        version = version_of(request)
        update = parse_image_in(
            await body_of(request), partial=True, version=version, unknown=state.config.unknown_image_fields
        )
        return json_response(shape_image(state.reprocess_image(image_id, update, state.now()), version))

    @router.delete("/v3/images/{image_id}")
    async def delete_image(image_id: str, request: Request) -> Response:
        require_key(request)
        state.delete_image(image_id, state.now())
        return Response(status_code=204)

    @router.post("/v3/images/{image_id}/report")
    async def report_image(image_id: str, request: Request) -> Response:
        require_key(request)
        report = parse_report(await body_of(request))
        return json_response(state.add_report(image_id, report, state.now()))

    async def download(image_id: str, kind: str, request: Request) -> Response:
        if kind not in DOWNLOAD_KINDS_OPEN:
            require_key(request)
        version = parse_api_version(request.headers.get("x-api-version"))
        params = parse_download_query(request.query_params, kind, version)
        dev_mode = request.headers.get("x-dev-mode", "").strip().lower() in ("true", "1", "yes")
        ref = state.prepare_download(image_id, kind, params, dev_mode, state.now())
        return redirect(f"{asset_base(request)}/_assets/{assets.make_token(ref)}")

    @router.get("/v3/images/{image_id}/original")
    async def download_original(image_id: str, request: Request) -> Response:
        return await download(image_id, "original", request)

    @router.get("/v3/images/{image_id}/enhanced")
    async def download_enhanced(image_id: str, request: Request) -> Response:
        return await download(image_id, "enhanced", request)

    @router.get("/v3/images/{image_id}/preview")
    async def download_preview(image_id: str, request: Request) -> Response:
        if state.config.preview_route == "enhanced_only":
            raise not_found()  # only GET /enhanced?preview=true exists on such a server
        return await download(image_id, "preview", request)

    @router.get("/v3/images/{image_id}/watermark")
    async def download_watermark(image_id: str, request: Request) -> Response:
        return await download(image_id, "watermark", request)

    # -- brackets ------------------------------------------------------------------------------

    @router.post("/v3/brackets")
    async def create_bracket(request: Request) -> Response:
        require_key(request)
        order_id, name, metadata = parse_bracket_in(await body_of(request))
        now = state.now()
        out, object_key = state.create_bracket(order_id, name, metadata, now)
        out["upload_url"] = state.blobs.presign_put(
            asset_base(request), object_key, BRACKET_CONTENT_TYPE, now
        )
        return json_response(out)

    # -- storage and asset hosts ---------------------------------------------------------------

    @router.put("/_storage/{object_key:path}")
    async def storage_put(object_key: str, request: Request) -> Response:
        slot = state.upload_slot(object_key)
        content_type = request.headers.get("content-type")
        state.blobs.verify_put(object_key, request.query_params, slot.content_type, content_type, state.now())
        try:
            tmp, size, etag = await state.blobs.receive(request.stream())
        except ClientDisconnect:
            return Response(status_code=400)
        result = await run_in_threadpool(probe, str(tmp))
        state.complete_upload(object_key, tmp, size, etag, content_type, result, state.now())
        return Response(status_code=200, headers={"ETag": f'"{etag}"'})

    @router.get("/_assets/{token}")
    async def get_asset(token: str) -> Response:
        return await assets.serve(token)

    return router


def redirect(location: str) -> Response:
    """302 with the small HTML body Flask/Werkzeug sends (some clients parse its href)."""
    href = html.escape(location, quote=True)
    body = (
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n"
        "<p>You should be redirected automatically to the target URL: "
        f'<a href="{href}">{href}</a>. If not, click the link.\n'
    )
    return Response(
        body, status_code=302, headers={"Location": location}, media_type="text/html; charset=utf-8"
    )
