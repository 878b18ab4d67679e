"""``GET /orders/{order_id}``: a small HTML order page, like the web app's
``https://app.autoenhance.ai/orders/<id>``, so the provider's "Autoenhance order" link has a
target when a connection points at the sandbox.

No API key (it is a browser page), never faulted or counted. Thumbnails are ordinary asset URLs
(``/_assets/<token>``, 240 px wide JPEG) of the original and of the enhanced preview; they do not
purchase anything and are counted under ``downloads["page"]``.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from autoenhance_sandbox.assets import AssetService
from autoenhance_sandbox.errors import ApiError
from autoenhance_sandbox.render import RenderSpec
from autoenhance_sandbox.state import AssetRef, SandboxState

THUMB_WIDTH = 240
_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.4em;text-align:left;vertical-align:top}"
    "img{max-width:240px;display:block}.status{font-weight:bold}"
)


def thumbnail_refs(
    state: SandboxState, image_id: str, status: str
) -> tuple[AssetRef | None, AssetRef | None]:
    """(original, enhanced) thumbnails that can be rendered now; ``None`` where there is none yet."""
    with state.lock:
        image = state.images.get(image_id)
        if image is None:
            return None, None
        if image.upload is not None:
            blob = image.upload.blob
            has_original = blob is not None and blob.decodable
        else:  # merged from brackets: renderable once every bracket decodes
            blobs = [state.brackets[b].upload.blob for b in image.bracket_ids]
            has_original = bool(blobs) and all(b is not None and b.decodable for b in blobs)
        enhance = bool(image.settings.get("enhance", True))
    original = (
        AssetRef(image_id, "page", RenderSpec(False, False, False, "jpeg", 80, THUMB_WIDTH, None))
        if has_original
        else None
    )
    enhanced = (
        AssetRef(image_id, "page", RenderSpec(enhance, True, False, "jpeg", 80, THUMB_WIDTH, None))
        if has_original and status == "processed"
        else None
    )
    return original, enhanced


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = (
        f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )
    return HTMLResponse(doc, status_code=status)


def build_pages_router(state: SandboxState, assets: AssetService) -> APIRouter:
    router = APIRouter()

    @router.get("/orders/{order_id}")
    async def order_page(order_id: str, request: Request) -> HTMLResponse:
        try:
            order = state.get_order(order_id, state.now())
        except ApiError:
            return _page(
                "Order not found",
                f"<h1>Order not found</h1><p>No order <code>{html.escape(order_id)}</code> here.</p>",
                404,
            )
        base = str(request.base_url).rstrip("/")
        rows = []
        for image in order["images"]:
            original, enhanced = thumbnail_refs(state, image["image_id"], image["status"])
            cells = []
            for label, ref in (("original", original), ("enhanced", enhanced)):
                if ref is None:
                    cells.append(f'<td class="{label}">&mdash;</td>')
                else:
                    src = html.escape(f"{base}/_assets/{assets.make_token(ref)}", quote=True)
                    alt = html.escape(f"{label} {image['image_name']}", quote=True)
                    cells.append(f'<td class="{label}"><img src="{src}" alt="{alt}"></td>')
            reason = image.get("status_reason")
            status = html.escape(image["status"]) + (
                f"<br><small>{html.escape(str(reason))}</small>" if reason else ""
            )
            rows.append(
                f'<tr data-image-id="{html.escape(image["image_id"], quote=True)}">'
                f'<td class="name">{html.escape(image["image_name"])}</td>'
                f'<td class="status">{status}</td>{"".join(cells)}</tr>'
            )
        table = (
            "<table><thead><tr><th>Image</th><th>Status</th><th>Original</th><th>Enhanced</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            if rows
            else "<p>No images yet.</p>"
        )
        body = (
            f"<h1>{html.escape(order['name'])}</h1>"
            f"<p>Order <code>{html.escape(order['order_id'])}</code> &middot; status "
            f'<span class="status" id="order-status">{html.escape(order["status"])}</span> &middot; '
            f"{order['total_images']} image(s)</p>{table}"
            "<p><small>Autoenhance sandbox &mdash; a local fake of the Autoenhance.ai API.</small></p>"
        )
        return _page(f"{order['name']} - Autoenhance sandbox", body)

    return router
