"""AutoenhanceHook: the whole Autoenhance v3 API over ``requests``, with retries and no leaks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from autoenhance_provider._compat import BaseHook, mask_secret
from autoenhance_provider._transport import (
    CHUNK_SIZE,
    DownloadTarget,
    indirect_image_url,
    install_log_redaction,
    open_source,
    seekable,
    storage_error_text,
    user_agent,
)
from autoenhance_provider.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    AutoenhanceConnectionConfig,
)
from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceAuthError,
    AutoenhanceClientError,
    AutoenhanceConflictError,
    AutoenhanceError,
    AutoenhanceNotFoundError,
    AutoenhanceStorageError,
    AutoenhanceValidationError,
)
from autoenhance_provider.policy import (
    Failure,
    Retrier,
    RetryPolicy,
    failure_for_exception,
    failure_for_status,
    redact_url,
)
from autoenhance_provider.settings import (
    path_segment,
    require_id,
    to_int,
    validate_download_params,
    validate_report,
    validate_settings,
)
from autoenhance_provider.status import evaluate_order
from autoenhance_provider.waiting import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    OrderWait,
    result_from_event,
)

install_log_redaction()

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
ERROR_BODY_BYTES = 4096
TEST_CONNECTION_POLICY = RetryPolicy(max_attempts=2, initial_delay=0.5, max_delay=2.0, max_elapsed=15.0)

Timeout = float | tuple[float, float]


@dataclass(frozen=True)
class Recovered:
    """What a recovery check found: the call already took effect, and this is its result."""

    value: Any


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
        self._lock = threading.Lock()
        self._sessions: dict[str, requests.Session] = {}

    # ------------------------------------------------------------------ connection & sessions
    @cached_property
    def config(self) -> AutoenhanceConnectionConfig:
        """The validated connection (looked up once, on first use)."""
        conn = self.get_connection(self.autoenhance_conn_id)
        config = AutoenhanceConnectionConfig.from_connection(conn)
        mask_secret(config.api_key)
        return config

    @property
    def timeout(self) -> tuple[float, float]:
        return self.config.timeouts(self._timeout_override)

    def _new_session(self, headers: dict[str, str]) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = user_agent()
        session.headers.update(headers)
        session.verify = self.config.verify
        adapter = _BlockSizeAdapter(pool_connections=4, pool_maxsize=self.pool_size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def _lazy_session(self, name: str, headers: Any) -> requests.Session:
        """Create a session once, even when upload threads ask for it at the same moment."""
        session = self._sessions.get(name)
        if session is None:
            with self._lock:
                session = self._sessions.get(name)
                if session is None:
                    session = self._sessions[name] = self._new_session(headers())
        return session

    @property
    def session(self) -> requests.Session:
        """Session for the API host only: it carries the API key."""
        return self._lazy_session("api", self.config.api_headers)

    @property
    def storage_session(self) -> requests.Session:
        """Key-less session for presigned uploads, asset hosts and any other host."""
        return self._lazy_session("storage", dict)

    def get_conn(self) -> requests.Session:
        return self.session

    def close(self) -> None:
        """Close the sessions (their pooled connections); the hook can be used again after."""
        with self._lock:
            sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            session.close()

    def order_url(self, order_id: str) -> str:
        """The order's page in the Autoenhance web app (for links and logs)."""
        return self.config.order_url(order_id)

    # ------------------------------------------------------------------ the request machinery
    def _url(self, path: str) -> str:
        return path if "://" in path else f"{self.config.base_url}{path}"

    def _send_once(
        self, method: str, url: str, *, keyless: bool = False, timeout: Timeout | None = None, **kwargs: Any
    ) -> requests.Response:
        """One attempt, following redirects by hand so the key never reaches another host."""
        for _ in range(MAX_REDIRECTS + 1):
            use_key = not keyless and self.config.same_origin(url)
            session = self.session if use_key else self.storage_session
            # verify per request: a session's verify loses to REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
            # (requests#3829), which silently replaced the connection's ca_bundle.
            response = session.request(
                method,
                url,
                allow_redirects=False,
                timeout=timeout or self.timeout,
                verify=self.config.verify,
                **kwargs,
            )
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            if method not in ("GET", "HEAD") and response.status_code not in (307, 308):
                return response
            if "data" in kwargs:  # a streamed body cannot be sent twice
                return response
            response.close()
            url = urljoin(url, location)
            # The Location is complete (often a presigned URL): re-adding the query params
            # would change it and invalidate its signature.
            kwargs.pop("params", None)
        raise AutoenhanceAPIError(response.status_code, method, redact_url(url), "too many redirects")

    def _attempts(
        self,
        method: str,
        path: str,
        *,
        recover: Callable[[], Recovered | None] | None = None,
        idempotent: bool | None = None,
        policy: RetryPolicy | None = None,
        data_factory: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response | Recovered:
        """Send with retries. Returns the first non-error response, or what ``recover`` found."""
        url = self._url(path)
        shown = redact_url(url)
        shown_path = urlsplit(shown).path if self.config.same_origin(url) else shown
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        retrier = Retrier(policy or self.retry_policy, resend_safe=idempotent or recover is not None)
        while True:
            if data_factory is not None:
                kwargs["data"] = data_factory()
            try:
                response = self._send_once(method, url, **kwargs)
            except requests.RequestException as exc:
                failure = _failure_for_request_exception(exc, method, shown_path)
            else:
                if response.status_code < 400:
                    return response
                failure = failure_for_status(
                    response.status_code,
                    method,
                    shown_path,
                    _error_body(response),
                    response.headers,
                    secret=self.config.api_key,
                    conn_id=self.autoenhance_conn_id,
                )
                response.close()
            delay = retrier.next_delay(failure)
            self.log.warning(
                "Autoenhance %s %s failed (%s); retry %d of %d in %.1fs",
                method,
                shown_path,
                failure.reason,
                retrier.failed_attempts,
                retrier.policy.max_attempts - 1,
                delay,
            )
            time.sleep(delay)
            if failure.ambiguous and recover is not None:
                found = recover()
                if found is not None:
                    self.log.info(
                        "%s %s had taken effect before the error; not re-sending", method, shown_path
                    )
                    return found

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A JSON API call: returns the decoded body (None when empty)."""
        outcome = self._attempts(method, path, **kwargs)
        if isinstance(outcome, Recovered):
            return outcome.value
        with outcome:
            if not outcome.content:
                return None
            try:
                return outcome.json()
            except ValueError:
                raise AutoenhanceAPIError(
                    outcome.status_code, method, path, "the response was not JSON"
                ) from None

    # ------------------------------------------------------------------ orders
    def create_order(self, name: str | None = None, order_id: str | None = None) -> dict[str, Any]:
        """Create an order. With a client-chosen ``order_id`` a lost response is safe to retry."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = str(name)
        if order_id is not None:
            body["order_id"] = require_id("order_id", order_id)
        recover = (lambda: self._existing_order(order_id)) if order_id else None
        return self._api("POST", "/v3/orders/", json=body, recover=recover, idempotent=False)

    def _existing_order(self, order_id: str) -> Recovered | None:
        order = self.get_order_or_none(order_id)
        return Recovered(order) if order is not None else None

    def get_order(self, order_id: str) -> dict[str, Any]:
        return self._api("GET", f"/v3/orders/{path_segment('order_id', order_id)}")

    def get_order_or_none(self, order_id: str) -> dict[str, Any] | None:
        """The order, or None if it does not exist (or was deleted)."""
        try:
            order = self.get_order(order_id)
        except AutoenhanceNotFoundError:
            return None
        return None if order and order.get("is_deleted") else order

    def list_orders(self, per_page: int | None = None) -> Iterator[dict[str, Any]]:
        """Every order of the account, page by page (the API clamps ``per_page`` to 15)."""
        params: dict[str, Any] = {}
        if per_page is not None:
            params["per_page"] = to_int("per_page", per_page, 1)
        seen: set[str] = set()
        while True:
            page = self._api("GET", "/v3/orders/", params=params) or {}
            yield from page.get("orders") or []
            token = (page.get("pagination") or {}).get("next_offset")
            if not token or not page.get("orders"):
                return
            if token in seen:
                raise AutoenhanceAPIError(200, "GET", "/v3/orders/", "pagination repeated an offset token")
            seen.add(token)
            params["offset"] = token

    def update_order(self, order_id: str, name: str) -> dict[str, Any]:
        return self._api(
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
        grouping = {k: settings.pop(k) for k in ("number_of_brackets_per_image", "images") if k in settings}
        if grouping.get("number_of_brackets_per_image") is None:
            grouping.pop("number_of_brackets_per_image", None)
        if grouping.get("images") is None:
            grouping.pop("images", None)
        if len(grouping) > 1:
            raise AutoenhanceValidationError(
                "Give either number_of_brackets_per_image or images (explicit bracket groups), not both"
            )
        if "number_of_brackets_per_image" in grouping:
            grouping["number_of_brackets_per_image"] = to_int(
                "number_of_brackets_per_image", grouping["number_of_brackets_per_image"], 1, 9
            )
        if "images" in grouping:
            grouping["images"] = _bracket_groups(grouping["images"])
        body = {**validate_settings(settings, context="process_order"), **grouping}
        oid = path_segment("order_id", order_id)
        recover = lambda: self._processing_started(order_id)  # noqa: E731
        try:
            return self._api("POST", f"/v3/orders/{oid}/process", json=body, recover=recover)
        except AutoenhanceClientError as exc:
            if exc.status_code not in (404, 405) or (
                exc.status_code == 404 and not self.get_order_or_none(order_id)
            ):
                raise
        if grouping:
            raise AutoenhanceValidationError(
                "This Autoenhance API only offers the legacy /merge endpoint, which groups brackets "
                "automatically; drop number_of_brackets_per_image / images"
            )
        self.log.info("POST /process is not available; using the legacy /merge endpoint")
        return self._api("POST", f"/v3/orders/{oid}/merge", json=body, recover=recover) or {}

    def _processing_started(self, order_id: str) -> Recovered | None:
        order = self.get_order_or_none(order_id)
        if order and (order.get("is_merging") or order.get("images")):
            return Recovered(order)
        return None

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
        ``waiting``, with no bytes) before re-sending, so no duplicate is left behind.
        """
        if not str(image_name or "").strip():
            raise AutoenhanceValidationError("image_name must not be empty")
        body: dict[str, Any] = {"image_name": str(image_name), **validate_settings(settings)}
        if order_id is not None:
            body["order_id"] = require_id("order_id", order_id)
        if content_type:
            body["contentType"] = content_type
        recover = (lambda: self._discard_unuploaded(order_id, image_name)) if order_id else None
        created = self._api("POST", "/v3/images/", json=body, recover=recover, idempotent=False)
        return _with_upload_url(created, "image")

    def _discard_unuploaded(self, order_id: str, image_name: str) -> None:
        order = self.get_order_or_none(order_id) or {}
        for image in order.get("images") or []:
            if image.get("image_name") == image_name and str(image.get("status")).lower() == "waiting":
                self.log.info("Removing half-created image %s before re-sending", image.get("image_id"))
                self.delete_image(image["image_id"], missing_ok=True)
        return None

    def upload_file(
        self,
        upload_url: str,
        source: str | Any | IO[bytes],
        content_type: str,
        *,
        size: int | None = None,
    ) -> dict[str, Any]:
        """PUT a file to a presigned URL, streamed, without the API key.

        ``content_type`` must be the one the URL was signed for (the value given at creation;
        ``application/octet-stream`` for brackets).
        """
        with open_source(source) as (fileobj, known_size):
            length = size if size is not None else known_size
            headers = {"Content-Type": content_type}
            if length is not None:
                headers["Content-Length"] = str(length)
            start = fileobj.tell() if seekable(fileobj) else None
            policy = self.retry_policy if start is not None else replace(self.retry_policy, max_attempts=1)

            def rewound() -> IO[bytes]:
                if start is not None:
                    fileobj.seek(start)
                return fileobj

            try:
                response = self._attempts(
                    "PUT", upload_url, keyless=True, headers=headers, data_factory=rewound, policy=policy
                )
            except AutoenhanceClientError as exc:
                raise AutoenhanceStorageError(
                    f"Upload to {redact_url(upload_url)} was rejected with HTTP {exc.status_code}: "
                    f"{storage_error_text(exc.body)}. The Content-Type sent ({content_type}) must be the one "
                    "the URL was signed for, and presigned URLs expire."
                ) from None
            assert isinstance(response, requests.Response)
            with response:
                if not 200 <= response.status_code < 300:
                    # A redirect cannot be followed with a streamed body: nothing was stored.
                    raise AutoenhanceStorageError(
                        f"Upload to {redact_url(upload_url)} was not stored: the storage host answered "
                        f"HTTP {response.status_code} (redirects are not followed for uploads)."
                    )
                return {"bytes": length, "etag": response.headers.get("ETag")}

    def get_image(self, image_id: str) -> dict[str, Any]:
        return self._api("GET", f"/v3/images/{path_segment('image_id', image_id)}")

    def reprocess_image(self, image_id: str, **settings: Any) -> dict[str, Any]:
        """Enhance an image again; settings not given keep their previous values."""
        path = f"/v3/images/{path_segment('image_id', image_id)}/process"
        body = validate_settings(settings, context="reprocess_image")
        try:
            return self._api("POST", path, json=body)
        except AutoenhanceClientError as exc:
            if exc.status_code != 405:
                raise
        return self._api("PATCH", path, json=body, idempotent=False)  # re-enhancing is not free

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

        Re-sending after a lost response may leave an empty bracket behind; it is harmless
        because only uploaded brackets are grouped.
        """
        if not str(name or "").strip():
            raise AutoenhanceValidationError("bracket name must not be empty")
        body: dict[str, Any] = {"order_id": require_id("order_id", order_id), "name": str(name)}
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise AutoenhanceValidationError("bracket metadata must be a dict")
            body["metadata"] = metadata
        # Re-sent after a lost response on purpose: the worst case is an empty bracket.
        created = self._api("POST", "/v3/brackets/", json=body, idempotent=True)
        return _with_upload_url(created, "bracket")

    def list_brackets(self, order_id: str) -> list[dict[str, Any]]:
        data = self._api("GET", f"/v3/orders/{path_segment('order_id', order_id)}/brackets") or {}
        return list(data.get("brackets") or []) if isinstance(data, dict) else list(data)

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
        query = validate_download_params(kind, params)
        kind = str(kind).strip().lower()  # as validated; the path must use the API's spelling
        target = DownloadTarget(destination)
        path = f"/v3/images/{path_segment('image_id', image_id)}/{kind}"
        # Only for a body that breaks off mid-way (each GET already retries on its own).
        retrier = Retrier(replace(self.retry_policy, max_attempts=3), resend_safe=target.rewindable)
        while True:
            response = self._attempts("GET", path, params=query, stream=True)
            assert isinstance(response, requests.Response)
            try:
                response = self._follow_indirect(response)
                written = target.write(response.iter_content(CHUNK_SIZE))
                return {
                    "image_id": image_id,
                    "kind": kind,
                    "bytes": written,
                    "content_type": response.headers.get("Content-Type"),
                    "destination": target.describe(),
                }
            except requests.RequestException as exc:
                failure = _failure_for_request_exception(exc, "GET", path)
            finally:
                response.close()
            delay = retrier.next_delay(failure)
            self.log.warning(
                "Download of %s broke off (%s); retrying in %.1fs", image_id, failure.reason, delay
            )
            time.sleep(delay)

    def _follow_indirect(self, response: requests.Response) -> requests.Response:
        """Follow a JSON or HTML body that names the image URL (older API behaviour)."""
        for _ in range(MAX_REDIRECTS):
            content_type = response.headers.get("Content-Type", "")
            if not content_type.startswith(("application/json", "text/html")):
                return response
            url = indirect_image_url(content_type, _read_capped(response, 64 * 1024))
            if not url:
                raise AutoenhanceAPIError(
                    response.status_code,
                    "GET",
                    redact_url(response.url),
                    "expected image bytes, got " + content_type,
                )
            response.close()
            next_response = self._attempts("GET", urljoin(response.url, url), stream=True, keyless=True)
            assert isinstance(next_response, requests.Response)
            response = next_response
        return response

    # ------------------------------------------------------------------ waiting
    @staticmethod
    def is_order_done(order: dict[str, Any]) -> bool:
        """True when nothing in the order is grouping, processing or waiting for bytes."""
        return evaluate_order(order).done

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
        wait = OrderWait(order_id, deadline=time.time() + float(timeout), logger=self.log)
        while True:
            try:
                event = wait.check(self.get_order(order_id))
            except AutoenhanceError as exc:
                event = wait.on_error(exc)
            event = event or wait.timeout_event()
            if event:
                return result_from_event(event, allow_partial=allow_partial)
            time.sleep(wait.sleep_for(float(poll_interval)))

    # ------------------------------------------------------------------ connection test & UI
    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated read. Never raises; the message never contains the key."""
        key = ""
        try:
            key = self.config.api_key
            response = self._attempts(
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
            message = str(exc) or type(exc).__name__
            return False, message.replace(key, "***") if key else message

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form layout for Airflow < 3.2 (3.2+ reads the provider info)."""
        from autoenhance_provider.get_provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form for Airflow < 3.2."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, StringField

        from autoenhance_provider.get_provider_info import CONN_FIELDS

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            types = spec["schema"]["type"]
            if "boolean" in (types if isinstance(types, list) else [types]):
                widgets[name] = BooleanField(lazy_gettext(spec["label"]), description=spec["description"])
            else:
                widgets[name] = StringField(
                    lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(), description=spec["description"]
                )
        return widgets


# ---------------------------------------------------------------------- helpers

_URLLIB3_BLOCKSIZE = int(urllib3.__version__.split(".")[0]) >= 2


class _BlockSizeAdapter(HTTPAdapter):
    """Streams request bodies in ``CHUNK_SIZE`` blocks instead of urllib3's 16 KiB.

    A 16 KiB block costs a file read, a ``sendall`` and a few Python calls: 64 per MB uploaded,
    which made our client use 30 % more CPU per upload than a bare session (``make bench``).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if _URLLIB3_BLOCKSIZE:  # urllib3 1.26 has no blocksize in its pool keys
            kwargs.setdefault("blocksize", CHUNK_SIZE)
        super().init_poolmanager(*args, **kwargs)


def _bracket_groups(groups: Any) -> list[dict[str, list[str]]]:
    if not isinstance(groups, list) or not groups:
        raise AutoenhanceValidationError("images must be a non-empty list of bracket groups")
    result = []
    for group in groups:
        ids = group.get("bracket_ids") if isinstance(group, dict) else group
        if not isinstance(ids, list) or not ids or not all(str(i).strip() for i in ids):
            raise AutoenhanceValidationError(
                "each bracket group must be a non-empty list of bracket ids (or {'bracket_ids': [...]})"
            )
        result.append({"bracket_ids": [str(i) for i in ids]})
    return result


def _with_upload_url(created: Any, what: str) -> dict[str, Any]:
    if not isinstance(created, dict):
        raise AutoenhanceAPIError(200, "POST", f"/v3/{what}s/", "unexpected response body")
    url = created.get("upload_url") or created.get("s3PutObjectUrl")
    if not url:
        raise AutoenhanceAPIError(200, "POST", f"/v3/{what}s/", f"the created {what} has no upload URL")
    return {**created, "upload_url": url}


def _read_capped(response: requests.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a (possibly streamed) body; network errors stay requests errors."""
    data = b""
    for chunk in response.iter_content(chunk_size=min(limit, 16 * 1024)):
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit]


def _error_body(response: requests.Response) -> str:
    try:
        raw = _read_capped(response, ERROR_BODY_BYTES)
    except (requests.RequestException, RuntimeError):
        return ""
    return raw.decode("utf-8", "replace")


def _failure_for_request_exception(exc: requests.RequestException, method: str, path: str) -> Failure:
    network = isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )
    return failure_for_exception(exc, method, path, sent=_may_have_been_sent(exc), network=network)


def _may_have_been_sent(exc: requests.RequestException) -> bool:
    """False only when the connection was never established (refused, DNS, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, urllib3.exceptions.NewConnectionError):
            return False
    return True


__all__ = ["AutoenhanceConflictError", "AutoenhanceHook", "Recovered"]
