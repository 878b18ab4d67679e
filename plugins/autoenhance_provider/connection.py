"""The ``autoenhance`` Airflow connection: its form, parsing, validation and defaults, in one place.

Both the sync hook and the trigger's async client build their settings from
:class:`AutoenhanceConnectionConfig`, so a connection means the same thing everywhere. The extras
are one list, ``CONN_FIELDS`` (kept in ``get_provider_info`` because Airflow reads the form from
there without importing anything heavy); the form of Airflow < 3.2 is built from the same list.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from autoenhance_provider.exceptions import AutoenhanceConfigError, register_secret
from autoenhance_provider.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from autoenhance_provider.ratelimit import DEFAULT_MAX_REQUESTS_PER_SECOND
from autoenhance_provider.validation import to_bool, to_float

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "autoenhance_default"
CONN_TYPE = "autoenhance"
DEFAULT_BASE_URL = "https://api.autoenhance.ai"
DEFAULT_APP_URL = "https://app.autoenhance.ai"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
#: Total seconds one API request may take (connect + headers + body), however the server trickles.
DEFAULT_REQUEST_DEADLINE = 120.0
#: Transfers get this many bytes per second on top of the request deadline (a throughput floor).
DEFAULT_MIN_TRANSFER_RATE = 50_000.0

#: Extras understood by the provider (anything else is reported once, by name only).
KNOWN_EXTRAS = frozenset(CONN_FIELDS)
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def is_loopback(hostname: str | None) -> bool:
    if not hostname:
        return False
    if hostname.lower() == "localhost" or hostname.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AutoenhanceConnectionConfig:
    """Validated settings of one Autoenhance connection. The key never appears in ``repr``."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    api_version: str | None = None
    dev_mode: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    verify: bool | str = True
    app_url: str = DEFAULT_APP_URL
    request_deadline: float = DEFAULT_REQUEST_DEADLINE
    min_transfer_rate: float = DEFAULT_MIN_TRANSFER_RATE
    order_id_namespace: str | None = None
    #: Requests per second this process sends to the API host (None: no limit); see ratelimit.py.
    max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND

    @classmethod
    def from_connection(cls, conn: Any) -> AutoenhanceConnectionConfig:
        """Build from an Airflow ``Connection`` (JSON or URI form; URI extras arrive as strings)."""
        conn_id = getattr(conn, "conn_id", None) or DEFAULT_CONN_ID
        api_key = (getattr(conn, "password", None) or "").strip()
        if not api_key:
            raise AutoenhanceConfigError(
                f"The Autoenhance connection {conn_id!r} has no API key: put the key in the connection's "
                "password field (labelled 'API key' in the UI)."
            )
        register_secret(api_key)
        if not all(33 <= ord(ch) <= 126 for ch in api_key):
            # Never quoted: the key itself is the secret. A line break or a non-ASCII character
            # cannot travel in an HTTP header (and usually means a bad copy-paste).
            raise AutoenhanceConfigError(
                f"The API key of connection {conn_id!r} contains a character that cannot be sent in an "
                "HTTP header (a space, line break, control or non-ASCII character). Copy the key again "
                "from app.autoenhance.ai → API into the password field."
            )
        # The UI form saves every field it shows, the empty ones as null or "": both mean "unset".
        extras = {k: v for k, v in _extras(conn, conn_id).items() if v is not None and str(v).strip() != ""}
        unknown = sorted(set(extras) - KNOWN_EXTRAS)
        if unknown:
            log.warning(
                "Connection %r has extras this provider does not use: %s", conn_id, ", ".join(unknown)
            )
        try:
            allow_http = to_bool("allow_insecure_http", extras.get("allow_insecure_http", False))
            dev_mode = to_bool("dev_mode", extras.get("dev_mode", False))
            read_timeout = to_float("timeout", extras.get("timeout", DEFAULT_READ_TIMEOUT), 0.1, 3600)
            connect_timeout = to_float(
                "connect_timeout",
                extras.get("connect_timeout", min(DEFAULT_CONNECT_TIMEOUT, read_timeout)),
                0.1,
                600,
            )
            request_deadline = to_float(
                "request_deadline",
                extras.get("request_deadline", max(DEFAULT_REQUEST_DEADLINE, read_timeout + connect_timeout)),
                0.1,
                86400,
            )
            min_transfer_rate = to_float(
                "min_transfer_rate", extras.get("min_transfer_rate", DEFAULT_MIN_TRANSFER_RATE), 1, 1e12
            )
            max_rate = to_float(
                "max_requests_per_second",
                extras.get("max_requests_per_second", DEFAULT_MAX_REQUESTS_PER_SECOND),
                0,
                1e6,
            )
        except ValueError as exc:
            raise AutoenhanceConfigError(f"Connection {conn_id!r}: invalid extra: {exc}") from None
        api_version = extras.get("api_version")
        if api_version is not None and not _API_VERSION.match(str(api_version).strip()):
            raise AutoenhanceConfigError(
                f"Connection {conn_id!r}: api_version must look like YYYY-MM-DD, got {api_version!r}"
            )
        verify: bool | str = True
        if extras.get("ca_bundle"):
            verify = str(extras["ca_bundle"])
        if "verify" in extras or "verify_ssl" in extras:
            raise AutoenhanceConfigError(
                f"Connection {conn_id!r}: TLS verification cannot be switched off; to trust a private "
                "certificate authority set the extra 'ca_bundle' to the path of its PEM file."
            )
        base_url = normalise_base_url(
            getattr(conn, "host", None), getattr(conn, "port", None), conn_id, allow_insecure_http=allow_http
        )
        # A loopback API is the local sandbox, which serves its own order pages.
        default_app_url = base_url if is_loopback(urlsplit(base_url).hostname) else DEFAULT_APP_URL
        app_url = str(extras.get("app_url") or default_app_url).rstrip("/")
        return cls(
            conn_id=conn_id,
            base_url=base_url,
            api_key=api_key,
            api_version=str(api_version).strip() if api_version else None,
            dev_mode=dev_mode,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            verify=verify,
            app_url=app_url,
            request_deadline=request_deadline,
            min_transfer_rate=min_transfer_rate,
            max_requests_per_second=max_rate or None,
            order_id_namespace=str(extras["order_id_namespace"]).strip()
            if extras.get("order_id_namespace")
            else None,
        )

    def timeouts(
        self, override: float | tuple[float, float] | list[float] | None = None
    ) -> tuple[float, float]:
        """(connect, read) seconds: the connection's, or a hook's ``timeout`` argument."""
        if override is None:
            return (self.connect_timeout, self.read_timeout)
        if isinstance(override, (tuple, list)):
            connect, read = override
            return (float(connect), float(read))
        return (min(float(override), self.connect_timeout), float(override))

    def api_headers(self) -> dict[str, str]:
        """Headers for API requests (and only for the API host)."""
        headers = {"x-api-key": self.api_key, "Accept": "application/json"}
        if self.api_version:
            headers["x-api-version"] = self.api_version
        if self.dev_mode:
            headers["x-dev-mode"] = "true"
        return headers

    def order_url(self, order_id: str) -> str:
        """The order's page in the Autoenhance web app."""
        return f"{self.app_url}/orders/{order_id}"

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` points at the API host itself (the only host that may see the key)."""
        a, b = urlsplit(self.base_url), urlsplit(url)
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _extras(conn: Any, conn_id: str) -> dict[str, Any]:
    raw = getattr(conn, "extra", None)
    if isinstance(raw, str) and raw.strip():
        # Airflow's extra_dejson logs invalid JSON and returns {}: check it here so a typo
        # in the extras is an error instead of silently meaning "no extras".
        try:
            json.loads(raw)
        except ValueError:
            raise AutoenhanceConfigError(
                f"Connection {conn_id!r}: the extra field is not valid JSON"
            ) from None
    try:
        extras = conn.extra_dejson
    except Exception:
        raise AutoenhanceConfigError(f"Connection {conn_id!r}: the extra field is not valid JSON") from None
    if not isinstance(extras, dict):
        raise AutoenhanceConfigError(f"Connection {conn_id!r}: the extra field must be a JSON object")
    return extras


def _without_userinfo(host: str | None) -> str:
    """The host field as typed, minus any ``user:password@`` (it may hold a secret)."""
    return re.sub(r"^([^/]*//)?[^/@]*@", lambda m: f"{m.group(1) or ''}***@", (host or "").strip())


def normalise_base_url(
    host: str | None, port: int | None, conn_id: str, *, allow_insecure_http: bool = False
) -> str:
    """Turn the connection's host (and port) into a base URL like ``https://api.autoenhance.ai``.

    A host without a scheme gets ``https://``, except loopback hosts (the local sandbox), which
    get ``http://``. Plain ``http://`` to anything but loopback is refused unless the connection
    sets ``allow_insecure_http``, because the API key would travel in clear text.
    """
    raw = (host or "").strip()
    if not raw:
        return DEFAULT_BASE_URL
    if "://" not in raw:
        bare = urlsplit(f"//{raw}")
        raw = f"{'http' if is_loopback(bare.hostname) else 'https'}://{raw}"
    try:
        parts = urlsplit(raw)
        url_port = parts.port
    except ValueError:
        raise AutoenhanceConfigError(
            f"Connection {conn_id!r}: invalid API base URL {_without_userinfo(host)!r}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AutoenhanceConfigError(
            f"Connection {conn_id!r}: invalid API base URL {_without_userinfo(host)!r}; "
            f"expected e.g. {DEFAULT_BASE_URL}"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise AutoenhanceConfigError(
            f"Connection {conn_id!r}: the API base URL must not contain credentials, a query or a fragment"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise AutoenhanceConfigError(
            f"Connection {conn_id!r}: refusing plain http:// to {parts.hostname} — the API key would be sent "
            "unencrypted. Use https://, or set the extra allow_insecure_http=true if you really mean it."
        )
    hostname = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if url_port is None and port:
        url_port = int(port)
    netloc = f"{hostname}:{url_port}" if url_port else hostname
    path = parts.path.rstrip("/")
    if path.endswith("/v3"):
        path = path[: -len("/v3")]
    return f"{parts.scheme}://{netloc}{path}"


def ui_field_behaviour() -> dict[str, Any]:
    """Connection form layout for Airflow < 3.2 (3.2+ reads the provider info)."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def connection_form_widgets() -> dict[str, Any]:
    """Extra fields of the connection form for Airflow < 3.2, from ``CONN_FIELDS``."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, StringField

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
