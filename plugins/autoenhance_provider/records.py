"""Typed answers of the API: :class:`Order`, :class:`Image` and :class:`Bracket`, and the status vocabulary.

Each record is built once, where the hooks read a response (:meth:`Order.parse`,
:meth:`Image.parse`, :meth:`Bracket.parse_list`), and a malformed answer is refused there with one
:class:`~autoenhance_provider.exceptions.AutoenhanceAPIError` saying what was wrong, instead of a
wait that never ends or a request for ``/v3/images/None``. Above the hooks, code reads the typed
attributes. Each record *is* the answer as it came: a ``dict`` subclass holding the JSON
object unchanged, with the typed attributes read once beside it. So what the hooks return still
works everywhere a dict did (``order["images"]``, ``json.dumps``, a task's return value, an XCom:
Airflow serialises it as the plain dict). Unknown fields stay in the dict; optional ones may be
missing. Status words,
synonyms included, are read by :meth:`ImageStatus.parse` alone (the synonyms are in
:mod:`autoenhance_provider.readings`). Create answers stay dicts, checked for the new id and the
presigned URL by :func:`with_upload_url`.
"""

from __future__ import annotations

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


class _Answer(dict[str, Any]):
    """The answer as it came (a plain JSON object), with typed attributes read once beside it.

    The attributes describe the answer as parsed; code above the hooks reads them and never
    changes the dict. A copy made by Airflow (XCom, serialisation) is a plain dict again.
    """

    __slots__ = ()

    @property
    def raw(self) -> dict[str, Any]:
        """The answer as a plain dict (a copy), e.g. for a value that must be exactly a ``dict``."""
        return dict(self)


class Image(_Answer):
    """One image of an order (``GET /v3/images/{id}`` or an element of an order's ``images``)."""

    __slots__ = ("downloaded", "image_id", "name", "order_id", "status", "status_reason", "status_word")
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
        image = cls(raw)
        image.image_id = str(image_id)
        image.name = _text(raw.get("image_name"))
        image.status = ImageStatus.parse(status)
        image.status_word = str(status)
        image.status_reason = _text(raw.get("status_reason"))
        image.order_id = _text(raw.get("order_id"))
        image.downloaded = truthy(raw.get("downloaded"))
        return image


class Order(_Answer):
    """An order (``GET /v3/orders/{id}``) and its images."""

    __slots__ = ("images", "is_deleted", "is_merging", "is_processing", "name", "order_id", "status")
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
        order = cls(answer)
        order.order_id = "" if order_id is None else str(order_id)
        order.name = _text(answer.get("name"))
        order.status = _text(answer.get("status"))
        order.images = tuple(parsed)
        order.is_merging = truthy(answer.get("is_merging"))
        order.is_processing = truthy(answer.get("is_processing"))
        order.is_deleted = truthy(answer.get("is_deleted"))
        return order

    @classmethod
    def of(cls, order: Order | Any, path: str | None = None) -> Order:
        """``order`` itself if it is a record already, else the record of an answer (a dict)."""
        return order if isinstance(order, Order) else cls.parse(order, path)


class Bracket(_Answer):
    """One HDR bracket of an order (an element of ``GET /v3/orders/{id}/brackets``)."""

    __slots__ = ("bracket_id", "is_uploaded", "name", "order_id")
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
            record = cls(bracket)
            record.bracket_id = str(bracket_id)
            record.name = _text(bracket.get("name"))
            record.is_uploaded = truthy(bracket.get("is_uploaded"))
            record.order_id = _text(bracket.get("order_id"))
            parsed.append(record)
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
