"""Error types and their wire shapes.

The API speaks APIFlask's shapes (``{"message", "detail"}``; 422 detail keyed by location and
field); the storage/asset host speaks S3's XML, because real clients must cope with both.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

from starlette.responses import Response


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON without Starlette's JSONResponse overhead (hot path for 10k pollers)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


def error_body(
    status: int, message: str | None = None, detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    """APIFlask's HTTPError body; the message defaults to the HTTP reason phrase."""
    return {"message": message or HTTPStatus(status).phrase, "detail": detail or {}}


class ApiError(Exception):
    """An API error with an APIFlask-style JSON body."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        detail: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or HTTPStatus(status).phrase)
        self.status = status
        self.body = error_body(status, message, detail)
        self.headers = headers

    def response(self) -> Response:
        return json_response(self.body, self.status, self.headers)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def not_found(message: str = "Not Found") -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def validation_error(location: str, field: str, message: str) -> ApiError:
    """A 422 for one field; use :class:`FieldErrors` to report several at once."""
    return ApiError(422, "Validation error", {location: {field: [message]}})


class FieldErrors:
    """Collects per-field messages so one 422 lists every problem, like marshmallow does."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ApiError(422, "Validation error", {self.location: self.errors})


class S3Error(Exception):
    """An S3-style XML error, as returned by the presigned-upload and asset hosts."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        return xml_error_response(self.status, self.code, self.message, **self.extra)


def xml_error_response(status: int, code: str, message: str, **extra: str) -> Response:
    """Render ``<Error><Code>..</Code><Message>..</Message>...</Error>`` like S3 does."""
    parts = [f"<Code>{escape(code)}</Code>", f"<Message>{escape(message)}</Message>"]
    parts += [f"<{key}>{escape(value)}</{key}>" for key, value in extra.items()]
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>"
    return Response(body.encode(), status_code=status, media_type="application/xml")
