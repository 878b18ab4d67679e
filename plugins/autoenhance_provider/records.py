"""Typed answers of the API: :class:`Order`, :class:`Image` and :class:`Bracket`, and the status vocabulary.

Each record is built once, where the hooks read a response (:meth:`Order.parse`,
:meth:`Image.parse`, :meth:`Bracket.parse_list`), and a malformed answer is refused there with one
:class:`~autoenhance_provider.exceptions.AutoenhanceAPIError` saying what was wrong, instead of a
wait that never ends or a request for ``/v3/images/None``. Above the hooks, code reads the typed
attributes. Each record keeps the answer as it came (``raw``, a plain JSON dict: what goes into
XCom or a trigger event) and is a read-only :class:`~collections.abc.Mapping` over it, so
``hook.get_order(order_id)["images"]`` and ``dict(order)`` work as they did when the hook
returned dicts. Unknown fields are kept in ``raw``; optional ones may be missing. Status words,
synonyms included, are read by :meth:`ImageStatus.parse` alone (the synonyms are in
:mod:`autoenhance_provider.readings`). Create answers stay dicts, checked for the new id and the
presigned URL by :func:`with_upload_url`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from autoenhance_provider import readings
from autoenhance_provider.exceptions import AutoenhanceAPIError
from autoenhance_provider.readings import IMAGE_STATUS_SYNONYMS


class ImageStatus(str, Enum):
    """Image statuses of the v3 API, plus ``UNKNOWN`` for anything new (treated as not finished)."""

    WAITING = "waiting"
    PROCESSING = "processing"
    PROCESSED = "processed"
    ERROR = "error"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: Any) -> ImageStatus:
        """Map the API's word (and the synonyms third-party clients have seen) to a member."""
        text = str(value or "").strip().lower()
        return _IMAGE_SYNONYMS.get(text) or next((m for m in cls if m.value == text), cls.UNKNOWN)

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_IMAGE_STATUSES

    @property
    def is_failure(self) -> bool:
        return self in FAILED_IMAGE_STATUSES


_IMAGE_SYNONYMS = {word: ImageStatus(value) for word, value in IMAGE_STATUS_SYNONYMS.items()}

TERMINAL_IMAGE_STATUSES = frozenset({ImageStatus.PROCESSED, ImageStatus.ERROR, ImageStatus.EXPIRED})
FAILED_IMAGE_STATUSES = frozenset({ImageStatus.ERROR, ImageStatus.EXPIRED})


class _Answer(Mapping[str, Any]):
    """A read-only mapping over the answer as it came (``raw``)."""

    __slots__ = ()
    raw: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


@dataclass(frozen=True, slots=True, eq=False)
class Image(_Answer):
    """One image of an order (``GET /v3/images/{id}`` or an element of an order's ``images``)."""

    raw: dict[str, Any]
    #: Always a non-empty string (the API's ids are strings; an integer id is read as its digits).
    image_id: str
    #: ``image_name``; None when the answer has none.
    name: str | None
    status: ImageStatus
    #: The status word as the API wrote it (``str`` of it; ``"None"`` when there is none), for reports.
    status_word: str
    status_reason: str | None
    order_id: str | None
    #: Bought (downloaded in full size) already.
    downloaded: bool

    @property
    def label(self) -> str:
        """How the image is named in logs, errors and file names: its name, else its id."""
        return self.name or self.image_id

    @classmethod
    def parse(cls, answer: Any, path: str = "/v3/images/?", method: str = "GET") -> Image:
        """The image of an answer, or :class:`AutoenhanceAPIError` saying what was wrong."""
        if not isinstance(answer, dict):
            raise AutoenhanceAPIError(
                200, method, path, f"the answer is a JSON {_json_type(answer)}, not an image"
            )
        return cls._of(answer, path, method, "the image", "")

    @classmethod
    def _of(cls, raw: dict[str, Any], where: str, method: str, which: str, of: str) -> Image:
        image_id = raw.get("image_id")
        if not _is_id(image_id):
            name = raw.get("image_name")
            named = f" ({str(name)[:80]!r})" if isinstance(name, str) else ""
            raise AutoenhanceAPIError(200, method, where, f"{which}{named}{of} has no image_id")
        status = raw.get("status")
        return cls(
            raw=raw,
            image_id=str(image_id),
            name=_text(raw.get("image_name")),
            status=ImageStatus.parse(status),
            status_word=str(status),
            status_reason=_text(raw.get("status_reason")),
            order_id=_text(raw.get("order_id")),
            downloaded=truthy(raw.get("downloaded")),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Order(_Answer):
    """An order (``GET /v3/orders/{id}``) and its images."""

    raw: dict[str, Any]
    #: The order's id as the answer gives it (empty when it gives none).
    order_id: str
    name: str | None
    #: The order's own status word, as the API wrote it (not an :class:`ImageStatus`).
    status: str | None
    images: tuple[Image, ...]
    #: Grouping HDR brackets into images.
    is_merging: bool
    is_processing: bool
    is_deleted: bool

    @classmethod
    def parse(cls, answer: Any, path: str | None = None, method: str = "GET") -> Order:
        """The order of an answer, or :class:`AutoenhanceAPIError` saying what was wrong.

        The order must be a JSON object, its ``images`` a list (or absent), each image an object
        with an ``image_id``.
        """
        if not isinstance(answer, dict):
            where = path or "/v3/orders/?"
            raise AutoenhanceAPIError(
                200, method, where, f"the answer is a JSON {_json_type(answer)}, not an order"
            )
        where = path or f"/v3/orders/{answer.get('order_id', '?')}"
        images = answer.get("images")
        if images is None:
            images = []
        if not isinstance(images, list):
            raise AutoenhanceAPIError(
                200,
                method,
                where,
                f"the order's 'images' is a JSON {_json_type(images)}, not a list of images",
            )
        parsed = []
        for index, image in enumerate(images):
            if not isinstance(image, dict):
                raise AutoenhanceAPIError(
                    200,
                    method,
                    where,
                    f"the order's images must be objects; image {index} is a JSON {_json_type(image)}",
                )
            parsed.append(Image._of(image, where, method, f"image {index}", " of the order"))
        order_id = answer.get("order_id")
        return cls(
            raw=answer,
            order_id="" if order_id is None else str(order_id),
            name=_text(answer.get("name")),
            status=_text(answer.get("status")),
            images=tuple(parsed),
            is_merging=truthy(answer.get("is_merging")),
            is_processing=truthy(answer.get("is_processing")),
            is_deleted=truthy(answer.get("is_deleted")),
        )

    @classmethod
    def of(cls, order: Order | Any, path: str | None = None) -> Order:
        """``order`` itself if it is a record already, else the record of an answer (a dict)."""
        return order if isinstance(order, Order) else cls.parse(order, path)


@dataclass(frozen=True, slots=True, eq=False)
class Bracket(_Answer):
    """One HDR bracket of an order (an element of ``GET /v3/orders/{id}/brackets``)."""

    raw: dict[str, Any]
    bracket_id: str
    name: str | None
    #: The bracket received its bytes (only those are grouped).
    is_uploaded: bool
    order_id: str | None

    @classmethod
    def parse_list(cls, answer: Any, path: str) -> list[Bracket]:
        """An order's brackets: ``{"brackets": [...]}``, or a bare list (nothing: no brackets)."""
        brackets = answer.get("brackets") if isinstance(answer, dict) else answer
        if brackets is None:
            return []
        if not isinstance(brackets, list):
            raise AutoenhanceAPIError(
                200,
                "GET",
                path,
                f"the answer's 'brackets' is a JSON {_json_type(brackets)}, not a list of brackets",
            )
        parsed = []
        for index, bracket in enumerate(brackets):
            if not isinstance(bracket, dict):
                raise AutoenhanceAPIError(
                    200,
                    "GET",
                    path,
                    f"the brackets must be objects; bracket {index} is a JSON {_json_type(bracket)}",
                )
            bracket_id = bracket.get("bracket_id")
            if not _is_id(bracket_id):
                name = bracket.get("name")
                named = f" ({str(name)[:80]!r})" if isinstance(name, str) else ""
                raise AutoenhanceAPIError(200, "GET", path, f"bracket {index}{named} has no bracket_id")
            parsed.append(
                cls(
                    raw=bracket,
                    bracket_id=str(bracket_id),
                    name=_text(bracket.get("name")),
                    is_uploaded=truthy(bracket.get("is_uploaded")),
                    order_id=_text(bracket.get("order_id")),
                )
            )
        return parsed


def with_upload_url(created: Any, what: str, id_field: str) -> dict[str, Any]:
    """A create answer checked before use: it must name the new id and an upload URL."""
    path = f"/v3/{what}s/"
    if not isinstance(created, dict):
        raise AutoenhanceAPIError(200, "POST", path, f"the answer is not a {what} object")
    url = readings.upload_url(created)
    if not url or not isinstance(url, str):
        raise AutoenhanceAPIError(200, "POST", path, f"the created {what} has no upload URL")
    if not created.get(id_field):
        raise AutoenhanceAPIError(200, "POST", path, f"the created {what} has no {id_field}")
    return {**created, "upload_url": url}


def truthy(value: Any) -> bool:
    """A flag of an answer: JSON booleans, and the strings ``"true"``/``"false"`` some answers carry."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def _is_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and bool(str(value).strip())


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


__all__ = [
    "FAILED_IMAGE_STATUSES",
    "TERMINAL_IMAGE_STATUSES",
    "Bracket",
    "Image",
    "ImageStatus",
    "Order",
    "truthy",
    "with_upload_url",
]
