"""The webhook receiver: a small FastAPI app the Airflow API server mounts at ``/autoenhance``.

``POST /autoenhance/webhook`` (connection ``autoenhance_webhook``) and
``POST /autoenhance/webhook/<name>`` (connection ``autoenhance_webhook_<name>``, one per account).
Every request is authenticated first (the ``Authorization`` header, raw or ``Bearer``, compared in
constant time with the connection's password; 401 otherwise), then the body is read up to
``MAX_BODY_BYTES`` (413 beyond), parsed (400/422 if it is not an event), and an order's last
``image_processed`` becomes an asset event in the metadata database, in one short transaction.
Nothing is kept in memory between requests but a short cache of the secret, so any number of API
servers can receive deliveries behind a load balancer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from autoenhance_provider.webhooks import (
    CONN_ID_PREFIX,
    DEFAULT_WEBHOOK,
    MAX_BODY_BYTES,
    WEBHOOK_NAME_PATTERN,
    InvalidWebhookBody,
    WebhookEvent,
    order_asset,
    order_finished_asset,
    parse_event,
    webhook_conn_id,
    webhook_name,
)
from autoenhance_provider.webhooks.notes import remember_finished_order

log = logging.getLogger(__name__)

#: Seconds a webhook's secret is kept before the connection is read again (a rotated secret applies
#: after at most this long); also what an unknown webhook name costs: one lookup per this period.
SECRET_CACHE_SECONDS = 30.0
#: Seconds between two listings of the webhook connections (a new webhook is known after at most this).
KNOWN_NAMES_SECONDS = 60.0
#: Seconds between two warnings about rejected or unroutable deliveries of one webhook.
WARNING_INTERVAL = 60.0
RETRY_AFTER_SECONDS = 30
#: Seconds a sender has to deliver the whole body (an Autoenhance event is about 200 bytes).
BODY_READ_SECONDS = 10.0


class _SecretCache:
    """The secret of each webhook, or ``None`` if it has no usable connection, for a short while.

    Requests are unauthenticated until checked, so without the cache anyone could make every
    request cost a call to the secrets backend. Names in the URL are the sender's choice:

    - names of webhooks that exist (``list_names``: the ``autoenhance_webhook*`` connections in the
      environment and the metadata DB, re-listed every ``names_ttl`` seconds, plus every name whose
      lookup found a secret) are always looked up, whatever other clients send;
    - any other name costs a lookup only within a budget of ``new_names_per_minute`` per client
      address, so a flood of random names from one client neither starves another client nor a
      webhook kept only in a secrets backend; at most ``max_unknown`` of them are remembered, and
      at most ``max_clients`` clients' budgets.
    """

    def __init__(
        self,
        ttl: float,
        lookup: Callable[[str], str | None],
        list_names: Callable[[], Iterable[str]] = lambda: (),
        *,
        names_ttl: float = KNOWN_NAMES_SECONDS,
        new_names_per_minute: int = 30,
        max_unknown: int = 1024,
        max_clients: int = 4096,
    ) -> None:
        self.ttl = ttl
        self.lookup = lookup
        self.list_names = list_names
        self.names_ttl = names_ttl
        self.new_names_per_minute = new_names_per_minute
        self.max_unknown = max_unknown
        self.max_clients = max_clients
        self._entries: dict[str, tuple[float, str | None]] = {}
        self._found = {DEFAULT_WEBHOOK}
        self._listed: frozenset[str] = frozenset()
        self._listed_until = float("-inf")
        self._unknown = 0
        self._budgets: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, webhook: str, client: str = "") -> str | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(webhook)
            if entry is not None and now < entry[0]:
                return entry[1]
            if not self._is_known(webhook, now) and not self._may_look_up_new_name(client, now):
                return None
            secret = self.lookup(webhook)
            if secret is not None:
                self._found.add(webhook)
            elif entry is None:
                self._unknown += 1
                if self._unknown > self.max_unknown:  # forget every unknown name, keep the known ones
                    self._entries = {k: v for k, v in self._entries.items() if self._is_known(k, now)}
                    self._unknown = 1
            self._entries[webhook] = (now + self.ttl, secret)
            return secret

    def _is_known(self, webhook: str, now: float) -> bool:
        if webhook in self._found:
            return True
        if now >= self._listed_until:
            self._listed_until = now + self.names_ttl
            try:
                self._listed = frozenset(self.list_names())
            except Exception:  # the DB is down: keep the last list, try again after names_ttl
                log.warning("Autoenhance webhooks: could not list the webhook connections", exc_info=True)
        return webhook in self._listed

    def _may_look_up_new_name(self, client: str, now: float) -> bool:
        start, count = self._budgets.get(client, (now, 0))
        if now - start >= 60:
            start, count = now, 0
        if client not in self._budgets and len(self._budgets) >= self.max_clients:
            self._budgets = {k: v for k, v in self._budgets.items() if now - v[0] < 60}
            if len(self._budgets) >= self.max_clients:
                return False
        self._budgets[client] = (start, count + 1)
        return count < self.new_names_per_minute


def webhook_names_from_connections() -> list[str]:
    """Names of the webhooks whose connection exists in the environment or the metadata DB.

    Secrets backends cannot be listed: a webhook kept only there is known after its first lookup.
    """
    import os

    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    prefix = f"AIRFLOW_CONN_{CONN_ID_PREFIX.upper()}"
    conn_ids = [key[len("AIRFLOW_CONN_") :].lower() for key in os.environ if key.startswith(prefix)]
    with create_session(scoped=False) as session:
        conn_ids += session.scalars(
            select(Connection.conn_id).where(Connection.conn_id.like(f"{CONN_ID_PREFIX}%"))
        ).all()
    return sorted({name for conn_id in conn_ids if (name := webhook_name(conn_id)) is not None})


def lookup_secret(webhook: str) -> str | None:
    """The connection's password, read as the API server reads any connection (env, secrets, DB)."""
    from airflow.models.connection import Connection

    from autoenhance_provider.compat import AirflowNotFoundException

    conn_id = webhook_conn_id(webhook)
    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        log.warning("Autoenhance webhook %s: connection %s does not exist", webhook, conn_id)
        return None
    if not conn.password or not str(conn.password).strip():
        log.warning("Autoenhance webhook %s: connection %s has no password (token)", webhook, conn_id)
        return None
    return str(conn.password)


def token_matches(header: str | None, secret: str) -> bool:
    """Whether ``Authorization`` carries the secret, as ``<token>`` or ``Bearer <token>``.

    Compared as bytes: the header as sent (HTTP servers decode headers as Latin-1, so a UTF-8
    token is re-encoded to its bytes) with the password in UTF-8, whitespace around either removed
    (a password pasted with a trailing space still matches). Both readings are always compared, in
    constant time, so the answer time says nothing about the secret.
    """
    expected = secret.strip().encode("utf-8")
    if not header or not expected:
        return False
    value = _header_bytes(header).strip()
    scheme, _, rest = value.partition(b" ")
    bearer = rest.strip() if scheme.lower() == b"bearer" else b""
    raw_ok = hmac.compare_digest(value, expected)
    bearer_ok = hmac.compare_digest(bearer, expected)
    return (bool(bearer) and bearer_ok) or raw_ok


def _header_bytes(header: str) -> bytes:
    try:
        return header.encode("latin-1")
    except UnicodeEncodeError:  # not what an HTTP server hands over; compare what there is
        return header.encode("utf-8", "surrogatepass")


class _Throttle:
    """At most one log line per key and interval: rejected requests must not flood the log."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def ready(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self.interval) < self.interval:
                return False
            self._last[key] = now
            return True


def record_order_finished(webhook: str, event: WebhookEvent) -> int:
    """Create the asset events of a finished order; return how many were recorded.

    Both the account's :func:`order_finished_asset` and the order's own :func:`order_asset` get
    the event, each only if a DAG declares it (an asset Airflow does not know cannot have events).
    This is what ``POST /api/v2/assets/events`` does (``AssetManager.register_asset_change``,
    which queues the DAGs scheduled on the asset), in one transaction committed before answering.

    A delivery repeated within ``DUPLICATE_WINDOW`` of an earlier event for the same order on the
    account asset records nothing and returns :data:`DUPLICATE`: repeats of one finish are one
    event, whichever API server they reach (two servers receiving the same repeat at the same
    instant can each record it).
    """
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    assert event.order_id is not None
    account_uri = order_finished_asset(webhook).uri
    targets = {(a.name, a.uri) for a in (order_finished_asset(webhook), order_asset(event.order_id))}
    extra = event.as_extra(webhook)
    # Airflow 3.3+ hands back listener notifications to send after the commit; older versions
    # ignore the argument and notify inline.
    notifications: list[Callable[[], None]] = []
    recorded = 0
    account_asset_id: int | None = None
    with _record_lock, create_session(scoped=False) as session:
        models = session.scalars(
            select(AssetModel).where(
                AssetModel.uri.in_(sorted(uri for _, uri in targets)), AssetModel.active.has()
            )
        ).all()
        account = next((m for m in models if m.uri == account_uri), None)
        if account is not None and _recently_recorded(session, account.id, event.order_id):
            return DUPLICATE
        for model in models:
            if (model.name, model.uri) not in targets:
                continue
            asset_event = asset_manager.register_asset_change(
                asset=model,
                extra=extra,
                session=session,
                source_is_api=True,
                api_user_teams=set(),
                callback_sink=notifications,
            )
            recorded += asset_event is not None
            if asset_event is not None and model.uri == account_uri:
                account_asset_id = model.id
    for notify in notifications:
        try:
            notify()
        except Exception:
            log.exception("Autoenhance webhook %s: an asset listener failed", webhook)
    if account_asset_id is not None:
        # After the commit and on its own: the asset event is what matters; this only saves a
        # deferred wait its safety poll, so a failure here is logged, not answered 503.
        try:
            with create_session(scoped=False) as session:
                remember_finished_order(session, account_asset_id, event.order_id)
        except Exception:
            log.exception(
                "Autoenhance webhook %s: could not keep order %s in the state store", webhook, event.order_id
            )
    return recorded


def _recently_recorded(session: Any, asset_id: int, order_id: str) -> bool:
    """Whether the account asset got an event for this order within ``DUPLICATE_WINDOW``."""
    from airflow.models.asset import AssetEvent
    from sqlalchemy import select

    since = datetime.now(timezone.utc) - DUPLICATE_WINDOW
    extras = session.scalars(
        select(AssetEvent.extra).where(AssetEvent.asset_id == asset_id, AssetEvent.timestamp >= since)
    )
    return any(
        isinstance(extra, dict)
        and extra.get("source") == "autoenhance_webhook"
        and extra.get("order_id") == order_id
        for extra in extras
    )


#: What the database raises when it cannot be reached, is locked or is out of connections: answered
#: 503 with ``Retry-After``. Anything else is a fault of its own and answered 500, never 503.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
#: Repeats of an order's finish within this long are one asset event (Autoenhance may resend).
DUPLICATE_WINDOW = timedelta(minutes=10)
#: What :func:`record_order_finished` returns for such a repeat.
DUPLICATE = -1
#: Recording is serialised within an API server, so concurrent repeats see each other's event.
_record_lock = threading.Lock()


def create_app(
    *,
    secret_cache_seconds: float = SECRET_CACHE_SECONDS,
    lookup: Callable[[str], str | None] = lookup_secret,
    list_names: Callable[[], Iterable[str]] = webhook_names_from_connections,
    record: Callable[[str, WebhookEvent], int] = record_order_finished,
    body_seconds: float = BODY_READ_SECONDS,
) -> FastAPI:
    """The receiver app; ``lookup``, ``list_names`` and ``record`` are the connection and database seams."""
    # Airflow mounts plugin apps without its own authentication, so no docs or schema are served:
    # only the POST routes, each checking its own token.
    app = FastAPI(title="Autoenhance webhooks", docs_url=None, redoc_url=None, openapi_url=None)
    secrets = _SecretCache(secret_cache_seconds, lookup, list_names)
    warnings = _Throttle(WARNING_INTERVAL)

    async def receive(request: Request, webhook: str) -> Response:
        if not WEBHOOK_NAME_PATTERN.fullmatch(webhook):
            raise HTTPException(HTTPStatus.NOT_FOUND, "Unknown webhook")
        client = request.client.host if request.client else ""
        secret = await run_in_threadpool(secrets.get, webhook, client)
        if secret is None:
            raise HTTPException(HTTPStatus.NOT_FOUND, "Unknown webhook")
        # Before reading the body: an unauthenticated sender gets nothing read or parsed.
        if not token_matches(request.headers.get("authorization"), secret):
            if warnings.ready(f"auth:{webhook}"):
                present = "a wrong" if request.headers.get("authorization") else "no"
                log.warning("Autoenhance webhook %s: rejected a delivery with %s token", webhook, present)
            raise HTTPException(
                HTTPStatus.UNAUTHORIZED, "Invalid webhook credentials", headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            body = await _read_body(request, body_seconds)
        except ClientDisconnect:
            if warnings.ready(f"disconnect:{webhook}"):
                log.warning("Autoenhance webhook %s: the sender left before its body was read", webhook)
            return Response(status_code=HTTPStatus.BAD_REQUEST)  # nobody reads it
        try:
            event = parse_event(body)
        except InvalidWebhookBody as exc:
            raise HTTPException(exc.status_code, str(exc)) from exc
        if event is None:  # the verification POST
            return Response(status_code=HTTPStatus.NO_CONTENT)
        if not event.order_finished:
            # webhook_updated, image_registered, and images of orders still processing.
            return JSONResponse({"status": "acknowledged", "event": event.event, "asset_events": 0})
        try:
            recorded = await run_in_threadpool(record, webhook, event)
        except DATABASE_UNAVAILABLE:
            if warnings.ready(f"db:{webhook}"):
                log.exception("Autoenhance webhook %s: could not record order %s", webhook, event.order_id)
            raise HTTPException(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        except Exception:
            log.exception("Autoenhance webhook %s: recording order %s failed", webhook, event.order_id)
            raise HTTPException(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal error") from None
        if recorded == DUPLICATE:
            log.info(
                "Autoenhance webhook %s: order %s finished again (a repeat: no new event)",
                webhook,
                event.order_id,
            )
            return JSONResponse({"status": "duplicate", "event": event.event, "asset_events": 0})
        if recorded == 0 and warnings.ready(f"unrouted:{webhook}"):
            log.warning(
                "Autoenhance webhook %s: order %s finished, but no DAG schedules on %s",
                webhook,
                event.order_id,
                order_finished_asset(webhook).uri,
            )
        log.info(
            "Autoenhance webhook %s: order %s finished (%d asset events)", webhook, event.order_id, recorded
        )
        return JSONResponse({"status": "recorded", "event": event.event, "asset_events": recorded})

    # With and without a trailing slash: a redirect would not be followed by every sender.
    @app.post("/webhook")
    @app.post("/webhook/")
    async def receive_default(request: Request) -> Response:
        return await receive(request, DEFAULT_WEBHOOK)

    @app.post("/webhook/{name}")
    @app.post("/webhook/{name}/")
    async def receive_named(request: Request, name: str) -> Response:
        return await receive(request, name)

    return app


async def _read_body(request: Request, seconds: float) -> bytes:
    """The body, refusing a declared or actual size above ``MAX_BODY_BYTES`` (413) and a body
    that takes longer than ``seconds`` to arrive (408), so a trickling sender holds nothing long."""
    too_large = HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Body exceeds {MAX_BODY_BYTES} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()

    async def read() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                raise too_large

    try:
        await asyncio.wait_for(read(), timeout=seconds)
    except asyncio.TimeoutError:
        raise HTTPException(
            HTTPStatus.REQUEST_TIMEOUT, f"Body not received within {seconds:g} seconds"
        ) from None
    return bytes(body)
