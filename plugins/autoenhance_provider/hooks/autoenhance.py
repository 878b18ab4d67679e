"""AutoenhanceHook: the Autoenhance v3 endpoints, each safe to repeat, and the workflow entry points.

HTTP concerns (sessions, retries, redirects, redaction) live in :mod:`autoenhance_provider.http`;
uploads and downloads, end to end, in :mod:`autoenhance_provider.uploads` and
:mod:`autoenhance_provider.downloads`; files in
:mod:`autoenhance_provider.files`; the wait state machine in :mod:`autoenhance_provider.waiting`.
This module says what to ask the API, in which order, and how to make every call safe to repeat;
the answers that name orders, images and brackets are read here, once, into the typed records of
:mod:`autoenhance_provider.records`. The workflow modules (uploads, downloads, HDR) are imported
when an entry point first runs, not with the hook: every DAG file that uses an operator imports
the hook, and most parse without running anything (``make bench``, "import" rows).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any

import requests

from autoenhance_provider import readings
from autoenhance_provider.compat import BaseHook, mask_secret
from autoenhance_provider.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    AutoenhanceConnectionConfig,
    connection_form_widgets,
    ui_field_behaviour,
)
from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceAuthError,
    AutoenhanceClientError,
    AutoenhanceNotFoundError,
    AutoenhanceValidationError,
    scrub,
)
from autoenhance_provider.http import (
    MAX_PAGES,
    Recovered,
    RetryPolicy,
    SyncTransport,
    Timeout,
)
from autoenhance_provider.records import Bracket, Image, Order, with_upload_url
from autoenhance_provider.settings import validate_settings
from autoenhance_provider.validation import (
    DownloadRequest,
    path_segment,
    require_id,
    validate_download_params,
    validate_per_page,
    validate_report,
)
from autoenhance_provider.waiting import DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, wait_until_done

if TYPE_CHECKING:
    from autoenhance_provider.files.storage import SourceFile, TempToken

TEST_CONNECTION_POLICY = RetryPolicy(max_attempts=2, initial_delay=0.5, max_delay=2.0, max_elapsed=15.0)


class AutoenhanceHook(BaseHook):
    """Talk to the Autoenhance.ai v3 API.

    The API key comes from the connection's password. Nothing touches the network or the
    connection until the first call. Every request has explicit (connect, read) timeouts and is
    retried with backoff on 429, 5xx and network errors; requests that are not idempotent are
    re-sent only when a check shows the first attempt did not take effect.

    :param autoenhance_conn_id: the Airflow connection to use.
    :param timeout: seconds, or a (connect, read) pair; overrides the connection's ``timeout``.
    :param retry_limit: retries per request after the first attempt (default 5).
    :param retry_delay: first backoff in seconds; doubles per retry, with jitter (default 1).
    :param retry_max_delay: longest single backoff, also the cap on ``Retry-After`` (default 30).
    :param pool_size: connections kept open per host (raise it for high upload concurrency).
    """

    conn_name_attr = "autoenhance_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Autoenhance"

    def __init__(
        self,
        autoenhance_conn_id: str = DEFAULT_CONN_ID,
        *,
        timeout: Timeout | None = None,
        retry_limit: int = 5,
        retry_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        pool_size: int = 16,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.autoenhance_conn_id = autoenhance_conn_id
        self._timeout_override = timeout
        self.retry_policy = RetryPolicy.for_hook(retry_limit, retry_delay, retry_max_delay)
        self.pool_size = max(1, int(pool_size))

    # ------------------------------------------------------------------ connection
    @cached_property
    def config(self) -> AutoenhanceConnectionConfig:
        """The validated connection (looked up once, on first use)."""
        conn = self.get_connection(self.autoenhance_conn_id)
        config = AutoenhanceConnectionConfig.from_connection(conn)
        mask_secret(config.api_key)
        return config

    @cached_property
    def transport(self) -> SyncTransport:
        return SyncTransport(
            self.config,
            self.retry_policy,
            self.log,
            pool_size=self.pool_size,
            timeout=self._timeout_override,
            conn_id=self.autoenhance_conn_id,
        )

    @property
    def timeout(self) -> tuple[float, float]:
        return self.config.timeouts(self._timeout_override)

    @property
    def session(self) -> requests.Session:
        """Session for the API host only: it carries the API key."""
        return self.transport.session

    @property
    def storage_session(self) -> requests.Session:
        """Key-less session for presigned uploads, asset hosts and any other host."""
        return self.transport.storage_session

    def get_conn(self) -> requests.Session:
        return self.session

    def close(self) -> None:
        """Close the sessions (their pooled connections); the hook can be used again after."""
        if "transport" in self.__dict__:
            self.transport.close()

    def order_url(self, order_id: str) -> str:
        """The order's page in the web app (or in the local sandbox), for links and logs."""
        return self.config.order_url(order_id)

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.transport.request_json(method, path, **kwargs)

    def _api_object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A call whose answer must be one JSON object (anything else is retried, then an error)."""
        value = self._api(method, path, expect=dict, **kwargs)
        if not isinstance(value, dict):  # a recovery check may find nothing to return
            raise AutoenhanceAPIError(200, method, path, "the answer is not a JSON object")
        return value

    # ------------------------------------------------------------------ orders
    def create_order(self, name: str | None = None, order_id: str | None = None) -> dict[str, Any]:
        """Create an order. With a client-chosen ``order_id`` a lost response is safe to retry."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = str(name)
        if order_id is not None:
            body["order_id"] = require_id("order_id", order_id)
        recover = (lambda: self._existing_order(body["order_id"])) if order_id else None
        return self._api_object("POST", "/v3/orders/", json=body, recover=recover, idempotent=False)

    def ensure_order(self, order_id: str, name: str | None = None) -> tuple[Order, bool]:
        """The order with this id, created unless it exists already: ``(order, created)``.

        A retry of the same task finds the order an earlier try created. What the API answers to
        a duplicate id is undocumented (409? 400/422? the existing order?), so the rule rests on
        none of them: any refusal other than a bad key is followed by a look-up of the id.
        """
        order_id = require_id("order_id", order_id)
        try:
            return Order.parse(self.create_order(name=name, order_id=order_id), "/v3/orders/", "POST"), True
        except AutoenhanceClientError as exc:
            if isinstance(exc, AutoenhanceAuthError):
                raise
            existing = self.get_order_or_none(order_id)
            if existing is None:
                raise
            return existing, False

    def _existing_order(self, order_id: str) -> Recovered | None:
        order = self.get_order_or_none(order_id)
        return Recovered(order) if order is not None else None

    def get_order(self, order_id: str) -> Order:
        """The order (the answer as a dict, with typed attributes); a malformed
        answer (images not objects, an image without id) raises :class:`AutoenhanceAPIError`
        saying what was wrong."""
        path = f"/v3/orders/{path_segment('order_id', order_id)}"
        return Order.parse(self._api_object("GET", path), path)

    def get_order_or_none(self, order_id: str) -> Order | None:
        """The order, or None if it does not exist (or was deleted)."""
        try:
            order = self.get_order(order_id)
        except AutoenhanceNotFoundError:
            return None
        return None if order.is_deleted else order

    def list_orders(
        self, per_page: int | None = None, *, max_pages: int = MAX_PAGES
    ) -> Iterator[dict[str, Any]]:
        """Every order of the account, page by page (``per_page`` at most 15, as the API allows).

        Stops with an error after ``max_pages`` pages, so a listing that never ends cannot run forever.
        """
        params: dict[str, Any] = {}
        if per_page is not None:
            params["per_page"] = validate_per_page(per_page)
        seen: set[str] = set()
        for _ in range(max(1, int(max_pages))):
            page = self._api_object("GET", "/v3/orders/", params=params)
            orders = page.get("orders")
            if orders is not None and not isinstance(orders, list):
                raise AutoenhanceAPIError(200, "GET", "/v3/orders/", "'orders' is not a list")
            yield from (o for o in orders or [] if isinstance(o, dict))
            token = (page.get("pagination") or {}).get("next_offset")
            if not token or not page.get("orders"):
                return
            if token in seen:
                raise AutoenhanceAPIError(200, "GET", "/v3/orders/", "pagination repeated an offset token")
            seen.add(token)
            params["offset"] = token
        raise AutoenhanceAPIError(
            200, "GET", "/v3/orders/", f"the listing did not end after {max_pages} pages; stopped"
        )

    def update_order(self, order_id: str, name: str) -> dict[str, Any]:
        return self._api_object(
            "PATCH", f"/v3/orders/{path_segment('order_id', order_id)}", json={"name": str(name)}
        )

    def delete_order(self, order_id: str) -> None:
        """Delete an order; a lost response followed by a 404 counts as deleted."""
        path = f"/v3/orders/{path_segment('order_id', order_id)}"
        self._api(
            "DELETE", path, recover=lambda: None if self.get_order_or_none(order_id) else Recovered(None)
        )

    def process_order(self, order_id: str, **settings: Any) -> dict[str, Any]:
        """Group uploaded HDR brackets into images and start enhancing them.

        Grouping: pass ``number_of_brackets_per_image``, or ``images=[{"bracket_ids": [...]}, ...]``,
        or neither for automatic grouping. Falls back to the legacy ``/merge`` endpoint when the
        API has no ``/process``.
        """
        from autoenhance_provider import hdr  # on use: see the module docstring

        return hdr.process(self, order_id, settings)

    def process_order_once(
        self,
        order_id: str,
        *,
        number_of_brackets_per_image: int | None = None,
        bracket_groups: list[list[str]] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> bool:
        """Start grouping and enhancing an order's brackets unless that has started already.

        ``bracket_groups`` may name brackets by id or by file name. Returns False when the order
        was already grouping or had images (a retried task), True when it started now.
        """
        from autoenhance_provider import hdr  # on use: see the module docstring

        return hdr.process_once(
            self,
            order_id,
            number_of_brackets_per_image=number_of_brackets_per_image,
            bracket_groups=bracket_groups,
            settings=settings,
        )

    # ------------------------------------------------------------------ images
    def create_image(
        self,
        image_name: str,
        order_id: str | None = None,
        content_type: str | None = None,
        **settings: Any,
    ) -> dict[str, Any]:
        """Register an image; the result carries the presigned URL under ``upload_url``.

        Older API versions call that field ``s3PutObjectUrl``; both are accepted. With an
        ``order_id``, a lost response is recovered by removing the half-created image (still
        ``waiting``, with no bytes) before re-sending, so no duplicate is left behind. An unknown
        ``order_id`` makes the API create that order.
        """
        checked = validate_settings(settings, api_version=self.config.api_version, context="create_image")
        checked_order_id = None if order_id is None else require_id("order_id", order_id)
        from autoenhance_provider import uploads  # on use: see the module docstring

        return uploads.register_image(self, image_name, checked_order_id, content_type, checked)

    def upload_file(
        self,
        upload_url: str,
        source: str | Any | IO[bytes],
        content_type: str,
        *,
        size: int | None = None,
    ) -> dict[str, Any]:
        """PUT a file to a presigned URL, streamed, without the API key.

        ``content_type`` should be the one the URL was signed for (the value given at creation;
        ``application/octet-stream`` for brackets). Sources disagree on whether Autoenhance signs
        image URLs for the type sent at creation or always for ``application/octet-stream``: when
        the storage host refuses the signature, the upload is tried once more as octet-stream.
        """
        from autoenhance_provider import uploads  # on use: see the module docstring

        return uploads.upload_file(self, upload_url, source, content_type, size=size)

    def upload_images(
        self,
        order_id: str,
        files: list[SourceFile],
        *,
        settings: Mapping[str, Any] | None = None,
        max_concurrency: int = 8,
        wait_for_upload: bool = True,
        create_missing_order: bool = False,
    ) -> list[dict[str, str]]:
        """Put files into an order as images, safe to repeat: returns ``{image_id, image_name}`` each.

        Images already in the order under the same name (and past ``waiting``) are kept; a
        half-done one (registered, never uploaded) is removed and uploaded again. An order that
        does not exist is an error unless ``create_missing_order`` — the API would otherwise
        silently create a new order for a mistyped id.
        """
        from autoenhance_provider import uploads  # on use: see the module docstring

        return uploads.upload_images(
            self,
            order_id,
            files,
            settings=settings,
            max_concurrency=max_concurrency,
            wait_for_upload=wait_for_upload,
            create_missing_order=create_missing_order,
        )

    def get_image(self, image_id: str) -> Image:
        """The image (the answer as a dict, with typed attributes)."""
        path = f"/v3/images/{path_segment('image_id', image_id)}"
        return Image.parse(self._api_object("GET", path), path)

    def reprocess_image(self, image_id: str, **settings: Any) -> dict[str, Any]:
        """Enhance an image again; settings not given keep their previous values."""
        path = f"/v3/images/{path_segment('image_id', image_id)}/process"
        body = validate_settings(
            settings, api_version=self.config.api_version, context="reprocess_image"
        ).body()
        try:
            return self._api_object(readings.REPROCESS_METHOD, path, json=body)
        except AutoenhanceClientError as exc:
            if exc.status_code != readings.REPROCESS_METHOD_MISSING:
                raise
        # Not re-sent after a lost answer: re-enhancing is not free.
        return self._api_object(readings.REPROCESS_FALLBACK_METHOD, path, json=body, idempotent=False)

    def resubmit_refused(self, order_id: str, *, max_concurrency: int = 8) -> dict[str, list[str]]:
        """Send the images of ``order_id`` that the daily enhancement limit refused for processing
        again; nothing else in the order is touched (no upload, no enhancement is repeated).

        Whether the API lets a refused image be processed again or wants the file registered
        again is undocumented (docs/contract.md). Each refused image is first reprocessed
        (``POST /v3/images/{id}/process``); if the API refuses that (a 4xx other than 401/403/404/
        429), its original is fetched from the API and registered again under the same name in
        the same order, and the refused image is deleted. Returns the image names per outcome:
        ``reprocessed``, ``reregistered``, ``refused_again`` (still over the limit) and ``failed``.
        """
        from autoenhance_provider import uploads  # on use: see the module docstring

        return uploads.resubmit_refused(self, order_id, max_concurrency=max_concurrency)

    def delete_image(self, image_id: str, *, missing_ok: bool = False) -> None:
        path = f"/v3/images/{path_segment('image_id', image_id)}"
        try:
            self._api("DELETE", path)
        except AutoenhanceNotFoundError:
            if not missing_ok:
                raise

    def report_image(
        self,
        image_id: str,
        categories: list[str] | str,
        comment: str | None = None,
        score: int | None = None,
    ) -> dict[str, Any]:
        """Send quality feedback about an enhanced image."""
        cats, checked_score = validate_report(categories, score)
        body: dict[str, Any] = {"categories": cats, "source": "API"}
        if comment is not None:
            body["comment"] = str(comment)
        if checked_score is not None:
            body["score"] = checked_score
        return self._api("POST", f"/v3/images/{path_segment('image_id', image_id)}/report", json=body) or {}

    # ------------------------------------------------------------------ brackets
    def create_bracket(
        self, order_id: str, name: str, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Register one HDR bracket; upload it with ``application/octet-stream``.

        Re-sent after a lost response on purpose: the worst case is an empty bracket, harmless
        because only uploaded brackets are grouped.
        """
        if not str(name or "").strip():
            raise AutoenhanceValidationError("bracket name must not be empty")
        body: dict[str, Any] = {"order_id": require_id("order_id", order_id), "name": str(name)}
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise AutoenhanceValidationError("bracket metadata must be a dict")
            body["metadata"] = metadata
        created = self._api("POST", "/v3/brackets/", json=body, idempotent=True, expect=dict)
        return with_upload_url(created, "bracket", "bracket_id")

    def list_brackets(self, order_id: str) -> list[Bracket]:
        """The order's brackets (the answer's, as dicts with typed attributes)."""
        path = f"/v3/orders/{path_segment('order_id', order_id)}/brackets"
        return Bracket.parse_list(self._api("GET", path), path)

    def uploaded_brackets(self, order_id: str) -> dict[str, Bracket]:
        """The order's brackets that received their bytes, by name.

        Only these count: a re-sent create may have left an empty bracket with the same name.
        """
        return {str(b.name): b for b in self.list_brackets(order_id) if b.is_uploaded}

    def upload_brackets(
        self, order_id: str, files: list[SourceFile], *, max_concurrency: int = 1
    ) -> list[dict[str, str]]:
        """Upload HDR brackets into an existing order, skipping those already uploaded.

        One at a time (the default) keeps the upload order, which ``number_of_brackets_per_image``
        groups by: the first failure stops the rest, so a retry continues in sequence.
        """
        from autoenhance_provider import uploads  # on use: see the module docstring

        return uploads.upload_brackets(self, order_id, files, max_concurrency=max_concurrency)

    # ------------------------------------------------------------------ downloads
    def download_image(
        self,
        image_id: str,
        destination: str | Any | IO[bytes],
        kind: str = "enhanced",
        **params: Any,
    ) -> dict[str, Any]:
        """Stream an image (``original``, ``enhanced`` or ``preview``) to a path or file object.

        Rendering params: ``format`` (jpeg/png/webp), ``quality`` (1-90), ``max_width``,
        ``scale`` (0-1], ``preview``, ``watermark``. On ``/enhanced`` the API returns a preview
        unless ``preview=False``, which buys the full-size image (once per image).
        """
        request = validate_download_params(kind, params)
        from autoenhance_provider import downloads  # on use: see the module docstring
        from autoenhance_provider.files.targets import DownloadTarget

        return downloads.download_image(self, image_id, DownloadTarget(destination), request)

    def download_order(
        self,
        order_id: str,
        folder: Any,
        *,
        request: DownloadRequest | None = None,
        if_exists: str = "skip",
        max_concurrency: int = 8,
        temp_token: TempToken | None = None,
    ) -> list[str]:
        """Write an order's images into ``folder`` (an ``ObjectStoragePath``); return their URIs.

        Which file holds which image is recorded in ``.autoenhance-manifest.json`` in the folder
        (order and image id, rendering, size, SHA-256), each file as it lands: a retry after a
        kill downloads again at most the files that were in flight. ``if_exists``:

        - ``skip`` (default) keeps files the manifest proves to be this image and downloads the
          rest; it replaces only files it can prove this order wrote (an earlier rendering). Any
          other file in the way — a user's file, a symlink, another order's image, a file changed
          since it was written — fails the task before anything is written, naming them;
        - ``fail`` also refuses to replace this order's own files of another rendering;
        - ``overwrite`` downloads everything and replaces whatever has the name (a symlink
          itself, never its target).

        ``temp_token`` names the temporary files (``.autoenhance-<token>-<name>.part``); those
        an earlier try of the same task left are removed first. The result lists only files
        written now or proven.
        """
        from autoenhance_provider import downloads  # on use: see the module docstring

        return downloads.download_order(
            self,
            order_id,
            folder,
            request=request,
            if_exists=if_exists,
            max_concurrency=max_concurrency,
            temp_token=temp_token,
        )

    # ------------------------------------------------------------------ waiting
    def wait_for_order(
        self,
        order_id: str,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        allow_partial: bool = False,
    ) -> dict[str, Any]:
        """Block until the order is done; return its summary.

        Raises :class:`AutoenhanceOrderFailedError` if images ended in ``error`` (unless
        ``allow_partial``) and :class:`AutoenhanceTimeoutError` after ``timeout`` seconds.
        """
        return wait_until_done(
            self.get_order,
            order_id,
            poll_interval=poll_interval,
            timeout=timeout,
            allow_partial=allow_partial,
            logger=self.log,
        )

    # ------------------------------------------------------------------ connection test & UI
    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated read. Never raises; the message never contains the key."""
        key = ""
        try:
            key = self.config.api_key
            response = self.transport.attempts(
                "GET",
                "/v3/orders/",
                params={"per_page": 1},
                timeout=(5.0, 10.0),
                policy=TEST_CONNECTION_POLICY,
            )
            assert isinstance(response, requests.Response)
            response.close()
            return True, f"Connected to Autoenhance at {self.config.base_url}; the API key was accepted."
        except AutoenhanceAuthError as exc:
            return (
                False,
                f"Autoenhance rejected the API key (HTTP {exc.status_code}). Check the connection's API key.",
            )
        except Exception as exc:
            message = scrub(str(exc) or type(exc).__name__)
            return False, message.replace(key, "***") if key else message

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form layout for Airflow < 3.2 (3.2+ reads the provider info)."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form for Airflow < 3.2."""
        return connection_form_widgets()


__all__ = ["AutoenhanceHook"]
