"""The tab's FastAPI app, mounted by the API server at ``/autoenhance-ui``.

``GET /run?dag_id=&run_id=``                          the DAG run's tab (every order of the run)
``GET /task?dag_id=&run_id=&task_id=&map_index=``     a task instance's tab (its order)
``GET /photo?dag_id=&run_id=&image_id=&kind=&size=``  one photo of one of the run's orders

Every request, in this order: the Airflow user is authenticated (401/403), read access to the
DAG's runs or task instances and to its XComs is authorised (403), the run must exist (404);
only then is anything read. A photo is served only if its image belongs to an order the run's
own XComs name (404 otherwise): an image id in the URL never reaches the API unchecked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from autoenhance_provider.ui import access, data
from autoenhance_provider.ui.data import OrderRef, TaskInfo
from autoenhance_provider.ui.photos import KINDS, SIZES, BoundedCache, PhotoSource, order_view
from autoenhance_provider.ui.render import SCRIPT_HASH, OrderView, message_page, run_page, task_page
from autoenhance_provider.validation import require_id

log = logging.getLogger(__name__)

#: Seconds the orders of a run (read from its XComs) are reused by its photo requests.
REFS_TTL = 10.0
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # No script but the page's own (by its hash); photos only from this origin; shown only inside
    # Airflow's own pages.
    "Content-Security-Policy": (
        f"default-src 'none'; script-src '{SCRIPT_HASH}'; img-src 'self'; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    ),
}
PHOTO_HEADERS = {
    "Cache-Control": "private, max-age=300",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
MAX_ERROR_TEXT = 300
NO_PREVIEW_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
    '<rect width="320" height="240" fill="#f6f8fa"/><text x="160" y="126" font-family="sans-serif" '
    'font-size="20" fill="#8c959f" text-anchor="middle">no preview</text></svg>'
)


@dataclass
class Backend:
    """Everything the app asks Airflow; tests replace parts of it."""

    authenticate: Callable[[Request], Awaitable[Any]] = access.authenticate
    authorize: Callable[[Any, str, tuple[str, ...]], None] = access.authorize_dag
    run_exists: Callable[[str, str], bool] = data.run_exists
    task_info: Callable[[str, str], TaskInfo] = data.task_info
    order_refs: Callable[..., list[OrderRef]] = data.order_refs
    photos: PhotoSource = field(default_factory=PhotoSource)


def _error_text(exc: BaseException) -> str:
    """What a page may say about a failed read: the provider's messages are already scrubbed of keys."""
    from autoenhance_provider.exceptions import AutoenhanceError

    text = str(exc) if isinstance(exc, AutoenhanceError) else f"{type(exc).__name__} (see the API server log)"
    return text[:MAX_ERROR_TEXT]


def _map_index(value: str) -> int | None:
    """The tab's ``{MAP_INDEX}``: an integer, or (left unreplaced by the UI) every instance."""
    try:
        return int(value)
    except ValueError:
        return None


def create_app(backend: Backend | None = None) -> FastAPI:
    backend = backend or Backend()
    app = FastAPI(title="Autoenhance tab", docs_url=None, redoc_url=None, openapi_url=None)
    refs_cache: BoundedCache[tuple[str, str], list[OrderRef]] = BoundedCache(REFS_TTL, 4096)

    @app.exception_handler(HTTPException)
    async def _html_error(_request: Request, exc: HTTPException) -> Response:
        titles = {401: "Not signed in", 403: "Not allowed", 404: "Not found"}
        title = titles.get(exc.status_code, "Error")
        body = message_page(title, str(exc.detail))
        return HTMLResponse(body, status_code=exc.status_code, headers=PAGE_HEADERS)

    async def admit(request: Request, dag_id: str, run_id: str, entity: str) -> None:
        """Authenticate, authorise, then check the run exists: nothing is read before this."""
        user = await backend.authenticate(request)
        if not dag_id:
            raise HTTPException(status_code=404, detail="No such DAG run")
        await run_in_threadpool(backend.authorize, user, dag_id, (entity, "XCOM"))
        if not run_id or not await run_in_threadpool(backend.run_exists, dag_id, run_id):
            raise HTTPException(status_code=404, detail="No such DAG run")

    async def refs_of(dag_id: str, run_id: str, **where: Any) -> list[OrderRef]:
        refs: list[OrderRef] = await run_in_threadpool(backend.order_refs, dag_id, run_id, **where)
        if not where:
            refs_cache.put((dag_id, run_id), refs)
        return refs

    async def views(refs: list[OrderRef]) -> list[OrderView]:
        photos = backend.photos

        def one(ref: OrderRef) -> OrderView:
            web_url = photos.web_url(ref.conn_id, ref.order_id)
            try:
                order = photos.order(ref.conn_id, ref.order_id)
            except Exception as exc:
                log.warning("Autoenhance tab: could not read order %s: %s", ref.order_id, _error_text(exc))
                return OrderView(ref.order_id, web_url=web_url, tasks=ref.tasks, error=_error_text(exc))
            return order_view(order, web_url, ref.tasks)._replace(order_id=ref.order_id)

        return list(await asyncio.gather(*(run_in_threadpool(one, ref) for ref in refs)))

    def photo_url_for(dag_id: str, run_id: str) -> Callable[[str, str, str], str]:
        base = {"dag_id": dag_id, "run_id": run_id}
        # Relative: the page is <prefix>/run or <prefix>/task, so this is <prefix>/photo whatever
        # the API server's base path.
        return lambda image_id, kind, size: (
            "photo?" + urlencode({**base, "image_id": image_id, "kind": kind, "size": size})
        )

    @app.get("/run", response_class=HTMLResponse)
    async def run_tab(request: Request, dag_id: str = "", run_id: str = "") -> HTMLResponse:
        await admit(request, dag_id, run_id, "RUN")
        orders = await views(await refs_of(dag_id, run_id))
        return HTMLResponse(
            run_page(dag_id, run_id, orders, photo_url_for(dag_id, run_id)), headers=PAGE_HEADERS
        )

    @app.get("/task", response_class=HTMLResponse)
    async def task_tab(
        request: Request, dag_id: str = "", run_id: str = "", task_id: str = "", map_index: str = "-1"
    ) -> HTMLResponse:
        await admit(request, dag_id, run_id, "TASK_INSTANCE")
        index = _map_index(map_index)
        info = await run_in_threadpool(backend.task_info, dag_id, task_id)
        if not info.exists:
            raise HTTPException(status_code=404, detail="No such task")
        refs = await refs_of(dag_id, run_id, task_id=task_id, map_index=index) if info.provider_task else []
        label = task_id if index is None or index < 0 else f"{task_id} [{index}]"
        html = task_page(
            label, await views(refs), photo_url_for(dag_id, run_id), provider_task=info.provider_task
        )
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @app.get("/photo")
    async def photo(
        request: Request,
        dag_id: str = "",
        run_id: str = "",
        image_id: str = "",
        kind: str = "enhanced",
        size: str = "thumb",
    ) -> Response:
        await admit(request, dag_id, run_id, "RUN")
        if kind not in KINDS or size not in SIZES:
            raise HTTPException(status_code=404, detail="No such photo")
        try:
            image_id = require_id("image_id", image_id)
        except Exception:
            raise HTTPException(status_code=404, detail="No such photo") from None
        refs = refs_cache.get((dag_id, run_id))
        conn_id = None if refs is None else await run_in_threadpool(_owner, backend.photos, refs, image_id)
        if conn_id is None:  # not cached, or an order or image newer than the cache: read afresh
            refs = await refs_of(dag_id, run_id)
            conn_id = await run_in_threadpool(_owner, backend.photos, refs, image_id, True)
        if conn_id is None:
            raise HTTPException(status_code=404, detail="No such photo in this run's orders")
        try:
            photo = await run_in_threadpool(backend.photos.photo, conn_id, image_id, kind, size)
        except Exception as exc:
            log.warning("Autoenhance tab: no %s photo of image %s: %s", kind, image_id, _error_text(exc))
            # A drawn "no preview" box (the same for every image: nothing from the API in it).
            headers = {**PHOTO_HEADERS, "Cache-Control": "no-store"}
            return Response(NO_PREVIEW_SVG, status_code=502, media_type="image/svg+xml", headers=headers)
        return Response(photo.data, media_type=photo.content_type, headers=PHOTO_HEADERS)

    return app


def _owner(photos: PhotoSource, refs: list[OrderRef], image_id: str, fresh: bool = False) -> str | None:
    """The connection of the run's order that holds this image, or None if none of them does."""
    for ref in refs:
        try:
            order = photos.order(ref.conn_id, ref.order_id, fresh=fresh)
        except Exception as exc:
            log.warning("Autoenhance tab: could not read order %s: %s", ref.order_id, _error_text(exc))
            continue
        if any(image.image_id == image_id for image in order.images):
            return ref.conn_id
    return None
