"""Write an order's enhanced (or original) images to any storage, without paying twice."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from airflow.sdk import Asset, Context, ObjectStoragePath

from autoenhance_provider.exceptions import AutoenhanceError, AutoenhanceValidationError
from autoenhance_provider.media import extension_for, safe_stem
from autoenhance_provider.operators._base import AutoenhanceBaseOperator
from autoenhance_provider.operators._transfer import Progress, raise_for_failures, run_concurrently
from autoenhance_provider.settings import validate_download_params
from autoenhance_provider.status import ImageStatus, evaluate_order
from autoenhance_provider.storage import is_local, local_path, prepare_destination, to_storage_path

_RENDER_PARAMS = ("format", "quality", "max_width", "scale", "preview", "watermark")


class DownloadImagesOperator(AutoenhanceBaseOperator):
    """Download every processed image of an order into a folder, streamed and concurrent.

    Files are named after the image names (made safe: no name can leave the folder) with the
    extension of the rendered format. Existing files are skipped unless ``overwrite``, so a
    retry never downloads — or buys — an image twice. On ``/enhanced`` the API returns a
    preview unless ``preview=False``, which buys the full-size image (free with the
    connection's ``dev_mode``).

    Returns the URIs of the order's files in the destination (written now or earlier). When
    ``destination`` is a fixed path (not a template) it is declared as an outlet asset, and the
    asset event carries ``{order_id, count, uris}``.

    :param order_id: the order (templated).
    :param destination: folder path, URI or ``ObjectStoragePath`` (templated).
    :param kind: ``enhanced`` (default), ``original`` or ``preview``.
    :param format: ``jpeg``, ``png`` or ``webp``; quality 1-90; max_width; scale (0-1];
        preview; watermark — the API's rendering parameters (all templated).
    :param overwrite: download again even if the file exists.
    :param max_concurrency: downloads in flight at once.
    :param destination_conn_id: connection for the destination storage (e.g. ``aws_default``).
    """

    template_fields: Sequence[str] = (
        "order_id",
        "destination",
        "destination_conn_id",
        "kind",
        *_RENDER_PARAMS,
        "autoenhance_conn_id",
    )

    def __init__(
        self,
        *,
        order_id: str,
        destination: str | os.PathLike[str] | ObjectStoragePath,
        kind: str = "enhanced",
        format: str | None = None,
        quality: int | None = None,
        max_width: int | None = None,
        scale: float | None = None,
        preview: bool | None = None,
        watermark: bool | None = None,
        overwrite: bool = False,
        max_concurrency: int = 8,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if int(max_concurrency) < 1:
            raise AutoenhanceValidationError("max_concurrency must be at least 1")
        hook_params = dict(kwargs.pop("hook_params", None) or {})
        hook_params.setdefault("pool_size", max(int(max_concurrency), 4))
        asset = _fixed_asset(destination)
        if asset is not None and "outlets" not in kwargs:
            kwargs["outlets"] = [asset]
        super().__init__(hook_params=hook_params, **kwargs)
        self.order_id = order_id
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.kind = kind
        self.format = format
        self.quality = quality
        self.max_width = max_width
        self.scale = scale
        self.preview = preview
        self.watermark = watermark
        self.overwrite = overwrite
        self.max_concurrency = int(max_concurrency)
        if not any("{{" in str(getattr(self, n)) for n in ("kind", *_RENDER_PARAMS)):
            validate_download_params(kind, self._render_params())  # fail at parse time on a typo

    def _render_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RENDER_PARAMS}

    def execute(self, context: Context) -> list[str]:
        order_id = str(self.order_id)
        self.set_label(context, order_id)
        params = self._render_params()
        query = validate_download_params(self.kind, params)
        self.kind = str(self.kind).strip().lower()  # as validated: "ORIGINAL" means original
        folder = prepare_destination(self.destination, self.destination_conn_id)
        self.publish_order(context, order_id)
        order = self.hook.get_order(order_id)
        progress_now = evaluate_order(order)
        if self.kind != "original" and not progress_now.done:
            raise AutoenhanceError(
                f"Autoenhance {progress_now.describe()}: not finished, nothing downloaded yet. "
                "Wait for it first (OrderProcessedSensor); a retry of this task downloads once it is done."
            )

        plan = self._plan(order, folder, query.get("format"))
        todo = [(image, path) for image, path in plan if self.overwrite or not path.exists()]
        skipped = len(plan) - len(todo)
        if skipped:
            self.log.info("%d file(s) already in %s; not downloading them again", skipped, folder)
        paid_before = [img["image_id"] for img, _ in todo if img.get("downloaded")]
        if paid_before and self.kind == "enhanced" and params.get("preview") is False:
            self.log.info(
                "%d image(s) were bought earlier; fetching them again costs no credit", len(paid_before)
            )

        progress = Progress(len(todo), "downloaded", self.log)

        def download(entry: tuple[dict[str, Any], ObjectStoragePath]) -> int:
            image, path = entry
            written = self._download_one(image["image_id"], path, params)
            progress.add(written)
            return written

        done, failed = run_concurrently(
            todo,
            download,
            max_concurrency=self.max_concurrency,
            describe=lambda e: f"Download of {e[0].get('image_name')}",
            log=self.log,
        )
        raise_for_failures(
            failed,
            total=len(todo),
            succeeded=len(done),
            what="download",
            name=lambda e: str(e[0].get("image_name")),
        )
        uris = [str(path) for _, path in plan]
        self._emit_asset_event(context, order_id, uris)
        return uris

    def _plan(
        self, order: dict[str, Any], folder: ObjectStoragePath, fmt: str | None
    ) -> list[tuple[dict[str, Any], ObjectStoragePath]]:
        """Which image goes to which file; images that failed or are not ready are reported."""
        ready_statuses = (
            {ImageStatus.PROCESSED}
            if self.kind != "original"
            else {
                ImageStatus.PROCESSED,
                ImageStatus.PROCESSING,
                ImageStatus.ERROR,
            }
        )
        plan: list[tuple[dict[str, Any], ObjectStoragePath]] = []
        used: set[str] = set()
        # Sorted, so a retry maps every name to the same image whatever order the API lists them in.
        images = sorted(
            order.get("images") or [], key=lambda i: (str(i.get("image_name")), str(i.get("image_id")))
        )
        for image in images:
            status = ImageStatus.parse(image.get("status"))
            name = image.get("image_name") or image.get("image_id")
            if status not in ready_statuses:
                self.log.warning("Not downloading %s: its status is %s", name, image.get("status"))
                continue
            stem = safe_stem(str(name), str(image.get("image_id")))
            ext = extension_for(self.kind, fmt, str(name))
            filename = f"{stem}{ext}"
            if filename.lower() in used:
                filename = f"{stem}-{str(image.get('image_id'))[:8]}{ext}"
                n = 2
                while filename.lower() in used:  # another image may be named like that already
                    filename = f"{stem}-{str(image.get('image_id'))[:8]}-{n}{ext}"
                    n += 1
            used.add(filename.lower())
            plan.append((image, folder / filename))
        if not plan:
            self.log.warning("Order %s has no image ready to download", order.get("order_id"))
        return plan

    def _download_one(self, image_id: str, path: ObjectStoragePath, params: dict[str, Any]) -> int:
        if is_local(path):
            return int(
                self.hook.download_image(image_id, local_path(path), kind=self.kind, **params)["bytes"]
            )
        handle = path.open("wb")
        try:
            written = int(self.hook.download_image(image_id, handle, kind=self.kind, **params)["bytes"])
        except BaseException:
            discard = getattr(handle, "discard", None)
            if callable(discard):
                discard()
            else:
                handle.close()
                path.unlink(missing_ok=True)
            raise
        handle.close()
        return written

    def _emit_asset_event(self, context: Context, order_id: str, uris: list[str]) -> None:
        for outlet in self.outlets or []:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = {
                    "order_id": order_id,
                    "count": len(uris),
                    "uris": uris[:100],
                }


def _fixed_asset(destination: Any) -> Asset | None:
    """An outlet asset for a destination known at parse time (not a Jinja template)."""
    if isinstance(destination, ObjectStoragePath):
        return Asset(_as_uri(str(destination)))
    if (
        isinstance(destination, (str, os.PathLike))
        and "{{" not in str(destination)
        and str(destination).strip()
    ):
        return Asset(_as_uri(str(to_storage_path(destination))))
    return None


def _as_uri(text: str) -> str:
    """ObjectStoragePath keeps paths literal; an asset URI must be encoded ("#" would end it)."""
    return quote(text, safe=":/@")
