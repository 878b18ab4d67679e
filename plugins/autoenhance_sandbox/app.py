"""The ASGI application: wires state, routes, middleware, error shapes and the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from autoenhance_sandbox.admin import build_admin_router
from autoenhance_sandbox.api import build_api_router
from autoenhance_sandbox.assets import AssetService
from autoenhance_sandbox.background import BackgroundWorker
from autoenhance_sandbox.config import SandboxConfig
from autoenhance_sandbox.errors import ApiError, S3Error, error_body, json_response
from autoenhance_sandbox.middleware import SandboxMiddleware, install_log_filter
from autoenhance_sandbox.pages import build_pages_router
from autoenhance_sandbox.state import SandboxState


def create_app(config: SandboxConfig) -> FastAPI:
    """Build a sandbox app; its live state is ``app.state.sandbox``.

    Without ``config.data_dir`` blobs go to a temp dir that is removed at shutdown.
    """
    state = SandboxState(config)
    assets = AssetService(state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        install_log_filter()
        worker = BackgroundWorker(state)
        await worker.start()
        try:
            yield
        finally:
            await worker.stop()
            state.close()

    app = FastAPI(
        title="Autoenhance sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.sandbox = state
    app.state.assets = assets
    admin_router, api_router = build_admin_router(state), build_api_router(state, assets)
    app.include_router(admin_router)
    app.include_router(api_router)
    app.include_router(build_pages_router(state, assets))  # not given to the middleware: never faulted
    app.add_middleware(SandboxMiddleware, state=state, routes=[*admin_router.routes, *api_router.routes])

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if exc.status in (400, 409, 422) and request.url.path.startswith("/v3"):
            state.record_rejection(
                request.method,
                request.url.path,
                request.headers.get("x-api-version"),
                getattr(request.state, "raw_body", b""),
                exc,
            )
        return exc.response()

    @app.exception_handler(S3Error)
    async def s3_error(_: Request, exc: S3Error) -> Response:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        phrase = HTTPStatus(exc.status_code).phrase
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
        return json_response(error_body(exc.status_code, message), exc.status_code, dict(exc.headers or {}))

    return app
