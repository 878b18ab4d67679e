"""Uploads, end to end: which files an order still needs, registering each image, its PUT, progress.

An order's upload (:func:`upload_images`) keeps the images already in the order under the same
name, removes half-done ones (registered, never uploaded, or refused by the duplicate-name limit),
registers (:func:`register_image`, ``POST /v3/images``; what its 429 means:
:func:`duplicate_name_error`) and PUTs the rest concurrently with progress lines, then waits until
the API has registered every upload (:func:`~autoenhance_provider.waiting.wait_until_registered`).
One file's PUT (:func:`upload_file`) goes to the presigned URL without the key and, when the
storage host refuses the signature, once more as ``application/octet-stream``. HDR brackets
(:func:`upload_brackets`) go one at a time by default. Images the daily enhancement limit refused
are sent again (:func:`resubmit_refused`): reprocessed, or their original registered again. The
hook's ``create_image``, ``upload_file``, ``upload_images``, ``upload_brackets`` and
``resubmit_refused`` are the entry points.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

import requests

from autoenhance_provider import readings
from autoenhance_provider.downloads import MAX_IMAGE_BYTES
from autoenhance_provider.exceptions import (
    AutoenhanceAuthError,
    AutoenhanceClientError,
    AutoenhanceDuplicateNameError,
    AutoenhanceNotFoundError,
    AutoenhanceStorageError,
    AutoenhanceTransientError,
    AutoenhanceValidationError,
    SignedURLRefused,
    refusal_kind,
)
from autoenhance_provider.files.media import BRACKET_CONTENT_TYPE
from autoenhance_provider.files.storage import SourceFile, open_source, seekable
from autoenhance_provider.http import ERROR_BODY_BYTES, iter_body, read_start, redact_url, storage_error_text
from autoenhance_provider.records import Image, ImageStatus, Order, with_upload_url
from autoenhance_provider.settings import EnhancementSettings, validate_settings
from autoenhance_provider.transfers import raise_for_failures, transfer
from autoenhance_provider.validation import path_segment, require_id
from autoenhance_provider.waiting import wait_until_registered

if TYPE_CHECKING:
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook


def upload_images(
    hook: AutoenhanceHook,
    order_id: str,
    files: list[SourceFile],
    *,
    settings: Mapping[str, Any] | None = None,
    max_concurrency: int = 8,
    wait_for_upload: bool = True,
    create_missing_order: bool = False,
) -> list[dict[str, str]]:
    """Files into an order as images, safe to repeat; see :meth:`AutoenhanceHook.upload_images`."""
    order_id = require_id("order_id", order_id)
    checked = validate_settings(settings or {}, api_version=hook.config.api_version, context="upload_images")
    order = hook.get_order_or_none(order_id)
    if order is None and not create_missing_order:
        raise AutoenhanceNotFoundError(
            404,
            "GET",
            f"/v3/orders/{order_id}",
            message=(
                f"order {order_id} does not exist. Create it first (CreateOrderOperator), check the "
                "order_id for a typo, or pass create_missing_order=True to let the upload create it"
            ),
            conn_id=hook.autoenhance_conn_id,
        )
    names = {f.name for f in files}
    discard_unuploaded(hook, order, names)
    images = order.images if order is not None else ()
    existing = {img.name: img for img in images if not _to_upload_again(img)}
    results = {
        f.name: {"image_id": existing[f.name].image_id, "image_name": f.name}
        for f in files
        if f.name in existing
    }
    if results:
        hook.log.info("%d image(s) are already in order %s; not uploading them again", len(results), order_id)

    def upload_one(item: SourceFile) -> dict[str, str]:
        created = register_image(hook, item.name, order_id, item.content_type, checked)
        with item.open() as handle:
            upload_file(hook, created["upload_url"], handle, item.content_type, size=item.size)
        return {"image_id": str(created["image_id"]), "image_name": item.name}

    todo = [f for f in files if f.name not in results]
    _upload_all(hook, todo, upload_one, max_concurrency, keep_order=False, results=results)
    if wait_for_upload and todo:
        image_ids = {results[f.name]["image_id"] for f in todo}
        wait_until_registered(hook.get_order, order_id, image_ids, logger=hook.log)
    return [results[f.name] for f in files]


def _upload_all(
    hook: AutoenhanceHook,
    todo: list[SourceFile],
    upload_one: Callable[[SourceFile], dict[str, str]],
    max_concurrency: int,
    *,
    keep_order: bool,
    results: dict[str, dict[str, str]],
) -> None:
    if todo:
        hook.log.info(
            "Uploading %d file(s), %.1f MB, %d at a time",
            len(todo),
            sum(f.size for f in todo) / 1e6,
            max_concurrency,
        )
    done, failed = transfer(todo, upload_one, "upload", max_concurrency, log=hook.log, keep_order=keep_order)
    for item, result in done:
        results[item.name] = result
    raise_for_failures(failed, total=len(todo), succeeded=len(done), what="upload")


def register_image(
    hook: AutoenhanceHook,
    image_name: str,
    order_id: str | None,
    content_type: str | None,
    checked: EnhancementSettings,
) -> dict[str, Any]:
    """``POST /v3/images``: one image registered (settings and ``order_id`` already checked).

    With an ``order_id``, a lost answer is recovered by removing the half-created image (still
    ``waiting``, with no bytes) before re-sending, so no duplicate is left behind. A 429 that
    outlasts the retries is the duplicate-name limit (:func:`duplicate_name_error`).
    """
    if not str(image_name or "").strip():
        raise AutoenhanceValidationError("image_name must not be empty")
    body: dict[str, Any] = {"image_name": str(image_name), **checked.body()}
    if order_id is not None:
        body["order_id"] = order_id
    if content_type:
        body["contentType"] = content_type

    def recover() -> None:
        assert order_id is not None
        discard_unuploaded(hook, hook.get_order_or_none(order_id), {str(image_name)})

    try:
        created = hook.transport.request_json(
            "POST",
            "/v3/images/",
            json=body,
            recover=recover if order_id is not None else None,
            idempotent=False,
            expect=dict,
        )
    except AutoenhanceTransientError as exc:
        if exc.status_code != 429:
            raise
        raise duplicate_name_error(str(image_name), exc) from None
    return with_upload_url(created, "image", "image_id")


def discard_unuploaded(hook: AutoenhanceHook, order: Order | None, names: set[str]) -> None:
    """Remove images of ``names`` that were registered but never received their bytes, and
    images the duplicate-name limit refused (never enhanced): both are uploaded again."""
    for image in order.images if order is not None else ():
        if image.name in names and _to_upload_again(image):
            what = "half-done" if image.status is ImageStatus.WAITING else "refused (duplicate name)"
            hook.log.info("Removing %s image %s (%s)", what, image.image_id, image.name)
            hook.delete_image(image.image_id, missing_ok=True)


def upload_file(
    hook: AutoenhanceHook,
    upload_url: str,
    source: str | Any | IO[bytes],
    content_type: str,
    *,
    size: int | None = None,
) -> dict[str, Any]:
    """PUT a file to a presigned URL, without the key; see :meth:`AutoenhanceHook.upload_file`."""
    fallback = readings.SIGNATURE_FALLBACK_CONTENT_TYPE
    with open_source(source) as (fileobj, known_size):
        length = size if size is not None else known_size
        start = fileobj.tell() if seekable(fileobj) else None
        try:
            return _put(hook, upload_url, fileobj, content_type, length)
        except SignedURLRefused as exc:
            if content_type == fallback or start is None:
                raise AutoenhanceStorageError(
                    f"{exc} The Content-Type sent ({content_type}) must be the one the URL is signed for."
                ) from None
            first = exc
        hook.log.info("The storage host refused %s; trying the octet-stream signature", content_type)
        fileobj.seek(start or 0)
        try:
            return _put(hook, upload_url, fileobj, fallback, length)
        except AutoenhanceStorageError:
            raise AutoenhanceStorageError(
                f"{first} Neither the Content-Type sent ({content_type}) nor {fallback} "
                "matched the signature: the URL may have expired."
            ) from None


def _put(
    hook: AutoenhanceHook, upload_url: str, fileobj: IO[bytes], content_type: str, length: int | None
) -> dict[str, Any]:
    headers = {"Content-Type": content_type}
    if length is not None:
        headers["Content-Length"] = str(length)
    start = fileobj.tell() if seekable(fileobj) else None
    policy = hook.retry_policy if start is not None else hook.retry_policy._replace(max_attempts=1)

    def rewound() -> IO[bytes]:
        if start is not None:
            fileobj.seek(start)
        return fileobj

    def answer(response: requests.Response) -> tuple[int, str | None]:
        # Read the (short) answer to the end: a connection dropped before it ends means the
        # storage host may not have stored the file, and the PUT is sent again.
        read_start(response, ERROR_BODY_BYTES)
        return response.status_code, response.headers.get("ETag")

    try:
        sending: dict[str, Any] = {
            "keyless": True,
            "headers": headers,
            "data_factory": rewound,
            "policy": policy,
        }
        status, etag = hook.transport.attempts("PUT", upload_url, size=length, parse=answer, **sending)
    except AutoenhanceClientError as exc:
        raise AutoenhanceStorageError(
            f"Upload to {redact_url(upload_url)} was rejected with HTTP {exc.status_code}: "
            f"{storage_error_text(exc.body)}."
        ) from None
    if not 200 <= status < 300:
        # A redirect cannot be followed with a streamed body: nothing was stored.
        raise AutoenhanceStorageError(
            f"Upload to {redact_url(upload_url)} was not stored: the storage host answered "
            f"HTTP {status} (redirects are not followed for uploads)."
        )
    return {"bytes": length, "etag": etag}


def upload_brackets(
    hook: AutoenhanceHook, order_id: str, files: list[SourceFile], *, max_concurrency: int = 1
) -> list[dict[str, str]]:
    """HDR brackets into an existing order; see :meth:`AutoenhanceHook.upload_brackets`."""
    order_id = require_id("order_id", order_id)
    uploaded = hook.uploaded_brackets(order_id)  # an unknown order is a 404 here
    results = {
        f.name: {"bracket_id": uploaded[f.name].bracket_id, "name": f.name}
        for f in files
        if f.name in uploaded
    }
    if results:
        hook.log.info("%d bracket(s) already uploaded to order %s; skipping them", len(results), order_id)

    def upload_one(item: SourceFile) -> dict[str, str]:
        created = hook.create_bracket(order_id, item.name)
        with item.open() as handle:
            upload_file(hook, created["upload_url"], handle, item.content_type, size=item.size)
        return {"bracket_id": str(created["bracket_id"]), "name": item.name}

    todo = [f for f in files if f.name not in results]
    _upload_all(hook, todo, upload_one, max_concurrency, keep_order=max_concurrency == 1, results=results)
    return [results[f.name] for f in files]


def resubmit_refused(
    hook: AutoenhanceHook, order_id: str, *, max_concurrency: int = 8
) -> dict[str, list[str]]:
    """Refused images of an order sent again; see :meth:`AutoenhanceHook.resubmit_refused`."""
    order_id = require_id("order_id", order_id)
    order = hook.get_order(order_id)
    refused = [
        img
        for img in order.images
        if img.status is ImageStatus.ERROR and refusal_kind(img.status_reason) == "daily_limit"
    ]
    outcome: dict[str, list[str]] = {
        "reprocessed": [],
        "reregistered": [],
        "refused_again": [],
        "failed": [],
    }
    if not refused:
        return outcome
    hook.log.info(
        "Order %s: sending %d image(s) refused by the daily enhancement limit for processing again",
        order_id,
        len(refused),
    )

    def resubmit(image: Image) -> tuple[str, str]:
        name = image.label
        try:
            answer = hook.reprocess_image(image.image_id)
        except (AutoenhanceAuthError, AutoenhanceNotFoundError):
            raise
        except AutoenhanceClientError as exc:
            hook.log.info("Reprocessing %s was refused (%s); registering its file again", name, exc)
            _register_again(hook, order_id, image)
            return "reregistered", name
        if refusal_kind(answer.get("status_reason")) == "daily_limit":
            return "refused_again", name
        return "reprocessed", name

    done, failed = transfer(refused, resubmit, "resubmitt", max_concurrency, log=hook.log)
    for _, (kind, name) in done:
        outcome[kind].append(name)
    outcome["failed"] = [img.label for img, _ in failed]
    raise_for_failures(
        failed, total=len(refused), succeeded=len(done), what="resubmit", name=lambda img: img.label
    )
    hook.log.info(
        "Order %s: %d reprocessed, %d registered again, %d refused again",
        order_id,
        len(outcome["reprocessed"]),
        len(outcome["reregistered"]),
        len(outcome["refused_again"]),
    )
    return outcome


def _register_again(hook: AutoenhanceHook, order_id: str, image: Image) -> dict[str, Any]:
    """Register a refused image's original again in the same order, then delete the refused one.

    The original comes from the API (``/original``): the source files are not needed. Its
    enhancement settings are carried over where this provider can check them.
    """
    image_id = image.image_id
    response = hook.transport.attempts("GET", f"/v3/images/{path_segment('image_id', image_id)}/original")
    with hook.transport.deadline(), response:
        data = b"".join(iter_body(response, MAX_IMAGE_BYTES, "GET", "original"))
        content_type = (response.headers.get("Content-Type") or BRACKET_CONTENT_TYPE).split(";")[0].strip()
    # The settings are carried as the API wrote them (read from the answer itself: not typed).
    carried = {key: image[key] for key in _CARRIED_SETTINGS if image.get(key) is not None}
    try:
        checked = validate_settings(carried, api_version=hook.config.api_version, context="register again")
    except AutoenhanceValidationError:
        checked = validate_settings({}, api_version=hook.config.api_version, context="register again")
    name = image.label
    created = register_image(hook, name, order_id, content_type, checked)
    upload_file(hook, created["upload_url"], io.BytesIO(data), content_type, size=len(data))
    hook.delete_image(image_id, missing_ok=True)
    return created


#: Settings of a refused image carried over when it has to be registered again.
_CARRIED_SETTINGS = (
    "enhance",
    "enhance_type",
    "sky_replacement",
    "cloud_type",
    "vertical_correction",
    "lens_correction",
    "window_pull",
    "privacy",
    "upscale",
)


def _to_upload_again(image: Image) -> bool:
    """Registered but never uploaded, or refused by the duplicate-name limit (the API's ``error``
    reading of it): nothing of it was enhanced, and a retried upload registers it again."""
    return image.status is ImageStatus.WAITING or (
        image.status is ImageStatus.ERROR and refusal_kind(image.status_reason) == "duplicate_name"
    )


def duplicate_name_error(name: str, exc: AutoenhanceTransientError) -> AutoenhanceDuplicateNameError:
    """A registration refused with 429 through every retry: most likely the limit on one file name
    per hour (the request-rate limit clears within seconds), so say the name, the limit and the fix."""
    said = exc.api_message or exc.body or "no reason given"
    return AutoenhanceDuplicateNameError(
        429,
        exc.method,
        exc.path,
        exc.body,
        message=(
            f"registering the image {name!r} was refused with HTTP 429 through every retry (Autoenhance "
            f"said: {said}). Autoenhance accepts at most {DUPLICATE_NAMES_PER_HOUR} images with exactly "
            "the same file name per hour, across the account. Fix: give each file a name unique to its "
            "listing or order (for example prefix it with the listing id), or wait an hour and clear "
            "this task: images already in the order are not uploaded again"
        ),
        conn_id=exc.conn_id,
    )


#: The documented limit on registrations of one file name (docs "Rate Limits").
DUPLICATE_NAMES_PER_HOUR = 30
