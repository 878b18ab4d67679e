"""Downloads, end to end: which file each image of an order becomes, each image's GET, its check, its write.

An order's download (:func:`download_order`) plans the file names (:func:`plan_download`), sorts
the files already in the folder by what the manifest proves (kept, replaced, refused), then
downloads the rest concurrently with progress lines; each file is written verified and recorded
in the manifest before it gets its name (:func:`autoenhance_provider.files.targets.target_for`). One
image's GET (:func:`download_image`) follows the API's redirect to the asset host, or an older
API's JSON/HTML indirection, and retries a body that breaks off or is not an image.
The hook's :meth:`~autoenhance_provider.hooks.autoenhance.AutoenhanceHook.download_image` and
:meth:`~autoenhance_provider.hooks.autoenhance.AutoenhanceHook.download_order` are the entry points.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urljoin

import requests

from autoenhance_provider import readings
from autoenhance_provider.exceptions import (
    AutoenhanceAPIError,
    AutoenhanceClientError,
    AutoenhanceDownloadError,
    AutoenhanceError,
    AutoenhanceValidationError,
)
from autoenhance_provider.files.integrity import declared_checksum
from autoenhance_provider.files.manifest import Manifest
from autoenhance_provider.files.media import extension_for, safe_stem
from autoenhance_provider.files.storage import TempToken, sweep_temp_files
from autoenhance_provider.files.targets import DownloadTarget, target_for
from autoenhance_provider.http import (
    MAX_REDIRECTS,
    Failure,
    Retrier,
    failure_for_requests_exception,
    iter_body,
    read_start,
    redact_url,
)
from autoenhance_provider.records import Image, ImageStatus, Order
from autoenhance_provider.transfers import raise_for_failures, transfer
from autoenhance_provider.validation import (
    DownloadRequest,
    IfExists,
    path_segment,
    require_id,
    validate_download_params,
    validate_if_exists,
)
from autoenhance_provider.waiting import evaluate_order

if TYPE_CHECKING:
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

#: The largest image the provider downloads (a 100-megapixel 16-bit TIFF is about 600 MB).
MAX_IMAGE_BYTES = 2 * 1024 * 1024 * 1024
#: Attempts at an image whose body breaks off or is not an image (within the hook's retry budget).
MAX_BODY_ATTEMPTS = 3


class PlannedFile(NamedTuple):
    """One image of an order and the file it goes to."""

    image: Image
    filename: str

    @property
    def image_id(self) -> str:
        return self.image.image_id

    @property
    def name(self) -> str:
        """How the image is named in progress lines and errors."""
        return self.image.label


def download_image(
    hook: AutoenhanceHook, image_id: str, target: DownloadTarget, request: DownloadRequest
) -> dict[str, Any]:
    """One image into ``target``: GET, follow to the bytes, check them while writing."""
    if request.kind == "preview":
        # The current spec serves previews as /enhanced?preview=true; older docs list /preview.
        current = readings.PREVIEW_CURRENT_KIND
        as_enhanced = DownloadRequest(current, {**request.query, **readings.PREVIEW_CURRENT_QUERY})
        try:
            return {**download_image(hook, image_id, target, as_enhanced), "kind": "preview"}
        except AutoenhanceClientError as exc:
            if exc.status_code not in readings.PREVIEW_ROUTE_MISSING:
                raise
            hook.log.info("Previews are not served by /enhanced?preview=true here; using /preview")
    transport = hook.transport
    path = f"/v3/images/{path_segment('image_id', image_id)}/{request.kind}"
    # One retry budget for every GET of this image, whatever failed: the answer (5xx, 429, network)
    # or the body (broken off, not an image; at most MAX_BODY_ATTEMPTS of those).
    retrier = Retrier(hook.retry_policy, resend_safe=True)
    body_failures = 0
    while True:
        # One deadline for the request and its body, growing with the bytes received.
        with transport.deadline():
            response = transport.attempts("GET", path, params=request.query, retrier=retrier)
            try:
                response = _follow_indirect(hook, response)
                written = target.write(
                    iter_body(response, MAX_IMAGE_BYTES, "GET", path),
                    content_type=response.headers.get("Content-Type"),
                    declared_length=_declared_length(response),
                    checksum=declared_checksum(response.headers),
                )
                return {
                    "image_id": image_id,
                    "kind": request.kind,
                    "bytes": written,
                    "content_type": response.headers.get("Content-Type"),
                    "destination": target.describe(),
                }
            except requests.RequestException as exc:
                failure = failure_for_requests_exception(exc, "GET", path)
            except AutoenhanceDownloadError as exc:
                error = AutoenhanceDownloadError(f"Download of image {image_id} ({path}) failed: {exc}")
                failure = Failure(error=error, retryable=True, ambiguous=False, reason=str(exc))
            finally:
                response.close()
        body_failures += 1
        if body_failures >= MAX_BODY_ATTEMPTS or (failure.ambiguous and not target.rewindable):
            raise failure.error  # bytes written to a stream that cannot rewind cannot be taken back
        delay = retrier.next_delay(failure)
        hook.log.warning("Download of %s failed (%s); retrying in %.1fs", image_id, failure.reason, delay)
        time.sleep(delay)


def _follow_indirect(hook: AutoenhanceHook, response: requests.Response) -> requests.Response:
    """Follow a JSON or HTML body that names the image URL (older API behaviour)."""
    for _ in range(MAX_REDIRECTS):
        content_type = response.headers.get("Content-Type", "")
        if not content_type.lower().startswith(readings.INDIRECT_CONTENT_TYPES):
            return response
        url = readings.indirect_image_url(content_type, read_start(response, 64 * 1024))
        if not url:
            raise AutoenhanceAPIError(
                response.status_code,
                "GET",
                redact_url(response.url),
                "expected image bytes, got " + content_type,
            )
        response.close()
        next_response = hook.transport.attempts("GET", urljoin(response.url, url), keyless=True)
        assert isinstance(next_response, requests.Response)
        response = next_response
    return response


def download_order(
    hook: AutoenhanceHook,
    order_id: str,
    folder: Any,
    *,
    request: DownloadRequest | None = None,
    if_exists: str | IfExists = IfExists.SKIP,
    max_concurrency: int = 8,
    temp_token: TempToken | None = None,
) -> list[str]:
    """An order's images into ``folder``; see :meth:`AutoenhanceHook.download_order`."""
    log = hook.log
    order_id = require_id("order_id", order_id)
    request = request or validate_download_params("enhanced", {})
    if_exists = validate_if_exists(if_exists)
    token = temp_token or TempToken.random()
    order = hook.get_order(order_id)
    progress = evaluate_order(order)
    if request.kind != "original" and not progress.done:
        raise AutoenhanceError(
            f"Autoenhance {progress.describe()}: not finished, nothing downloaded yet. "
            "Wait for it first (OrderProcessedSensor); a retry of this task downloads once it is done."
        )
    plan = plan_download(order, request, log=log)
    sweep_temp_files(folder, token, log=log)
    manifest = Manifest.load(folder)

    def identity(item: PlannedFile) -> dict[str, Any]:
        return {
            "order_id": order_id,
            "image_id": item.image_id,
            "kind": request.kind,
            "query": request.query,
        }

    kept: list[PlannedFile] = []
    todo: list[PlannedFile] = []
    priors: dict[str, dict[str, Any]] = {}
    refused: list[str] = []
    for item in plan:
        if if_exists is IfExists.OVERWRITE:
            todo.append(item)
            continue
        proof = manifest.examine(folder, item.filename)
        if proof.state == "absent":
            todo.append(item)
        elif proof.state == "proven" and proof.current and proof.identity == identity(item):
            kept.append(item)
        elif (
            proof.state == "proven"
            and if_exists is IfExists.SKIP
            and (proof.identity or {}).get("order_id") == order_id
        ):
            todo.append(item)  # this order's file, another rendering (or an unfinished rename)
            entry = manifest.entry(item.filename) or {}
            prior = entry if proof.current else entry.get("prior") or {}
            priors[item.filename] = {"bytes": prior.get("bytes"), "sha256": prior.get("sha256")}
        else:
            refused.append(f"{item.filename} ({_refusal_reason(proof, order_id)})")
    if refused:
        raise AutoenhanceValidationError(
            f"Not downloading order {order_id} into {folder}: {len(refused)} file(s) there are not "
            f"proven to be this order's and would be replaced: {', '.join(refused[:10])}"
            + (f" and {len(refused) - 10} more" if len(refused) > 10 else "")
            + ". Nothing was written. Download each order into its own folder, or pass "
            "if_exists='overwrite' to replace them."
        )
    if kept:
        log.info("%d verified file(s) of order %s kept in %s", len(kept), order_id, folder)
    if request.buys_full_size and any(p.image.downloaded for p in todo):
        log.info("Images bought earlier are fetched again at no charge")

    def download_one(item: PlannedFile) -> tuple[int, str]:
        def before_rename(size: int, digest: str) -> None:
            # Write-ahead: recorded (and saved) before the file gets its name, so a kill at
            # any moment leaves every landed file provable.
            manifest.record(item.filename, identity(item), size, digest, priors.get(item.filename))
            manifest.save(folder, token)

        target = target_for(folder / item.filename, token=token, before_rename=before_rename)
        download_image(hook, item.image_id, target, request)
        return target.written()

    done, failed = transfer(todo, download_one, "download", max_concurrency, log=log, size=lambda r: r[0])
    raise_for_failures(failed, total=len(todo), succeeded=len(done), what="download")
    written = {item.filename for item, _ in done} | {item.filename for item in kept}
    return [str(folder / item.filename) for item in plan if item.filename in written]


def plan_download(order: Order, request: DownloadRequest, *, log: Any = None) -> list[PlannedFile]:
    """Which image goes to which file name; images that failed or are not ready are left out.

    Sorted, so every retry maps every name to the same image whatever order the API lists them in.
    """
    ready = (
        {ImageStatus.PROCESSED}
        if request.kind != "original"
        else {ImageStatus.PROCESSED, ImageStatus.PROCESSING, ImageStatus.ERROR}
    )
    plan: list[PlannedFile] = []
    used: set[str] = set()
    # By name, then id: str(None) for a missing name sorts as "None" (as it always has).
    images = sorted(order.images, key=lambda i: (str(i.name), i.image_id))
    fmt = request.query.get("format")
    for image in images:
        name = image.label
        if image.status not in ready:
            if log is not None:
                log.warning("Not downloading %s: its status is %s", name, image.status_word)
            continue
        image_id = image.image_id
        stem = safe_stem(name, image_id)
        ext = extension_for(request.kind, fmt, name)
        filename = f"{stem}{ext}"
        n = 1
        while filename.lower() in used:  # another image has that name already
            filename = f"{stem}-{image_id[:8]}{ext}" if n == 1 else f"{stem}-{image_id[:8]}-{n}{ext}"
            n += 1
        used.add(filename.lower())
        plan.append(PlannedFile(image, filename))
    if not plan and log is not None:
        log.warning("Order %s has no image ready to download", order.order_id)
    return plan


def _refusal_reason(proof: Any, order_id: str) -> str:
    """Why a file in the way of a download is not this order's to replace."""
    if proof.state == "symlink":
        return "a symlink"
    if proof.state == "changed":
        return "changed since it was downloaded"
    owner = (proof.identity or {}).get("order_id")
    if proof.state == "proven" and owner != order_id:
        return f"order {owner}'s image"
    if proof.state == "proven":
        return "this order's file of another rendering; if_exists='fail'"
    return "not written by this provider"


def _declared_length(response: requests.Response) -> int | None:
    """The Content-Length, when it describes the bytes we will read (no content encoding)."""
    if response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        return None
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None
