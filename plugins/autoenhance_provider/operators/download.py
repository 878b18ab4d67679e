"""Write an order's enhanced (or original) images to any storage, without paying twice."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias, Context, ObjectStoragePath

from autoenhance_provider.exceptions import AutoenhanceValidationError
from autoenhance_provider.files.storage import TempToken, prepare_destination, to_storage_path
from autoenhance_provider.lineage import MAX_EVENT_FILES, TransferRecord, operator_lineage, storage_uri
from autoenhance_provider.operators.base import AutoenhanceBaseOperator
from autoenhance_provider.validation import (
    DownloadRequest,
    IfExists,
    is_template,
    validate_download_params,
    validate_if_exists,
)

_RENDER_PARAMS = ("format", "quality", "max_width", "scale", "preview", "watermark")

#: The asset alias that downloads to templated destinations emit their asset events through.
DOWNLOADS_ALIAS = "autoenhance-downloads"


class DownloadImagesOperator(AutoenhanceBaseOperator):
    """Download every processed image of an order into a folder, streamed and concurrent.

    Files are named after the image names (made safe: no name can leave the folder) with the
    extension of the rendered format. Each file is verified (a complete image) before it gets
    its name, and recorded in ``.autoenhance-manifest.json`` in the folder with its image id,
    size and checksum as it lands — so a retry, even after the worker was killed, downloads (or
    buys) again at most the images that were in flight. Temporary files are named
    ``.autoenhance-<task token>-<name>.part``; a later try removes those an earlier one left.

    ``if_exists="skip"`` (default) keeps the files the manifest proves to be this order's images
    and downloads the rest, and never replaces a file it cannot prove this order wrote: a file of
    your own, a symlink, another order's image or a file changed since it was downloaded fails
    the task before anything is written, naming the files (use a folder per order, or
    ``"overwrite"``). ``"fail"`` also refuses to replace this order's files of another rendering;
    ``"overwrite"`` downloads everything and replaces whatever has the name (a symlink itself,
    never the file it points to). On ``/enhanced`` the API returns a preview unless
    ``preview=False``, which buys the full-size image (free with the connection's ``dev_mode``).

    Returns the URIs of the files written or verified. Every successful run emits an asset event
    for the destination folder whose ``extra`` is ``{order_id, count, uris}`` (``uris`` capped at
    100; one string, a URI per line, for alias events before Airflow 3.2). When ``destination``
    is a fixed path (not a template) that asset is declared as the
    outlet at parse time; when it is templated, the outlet is the asset alias ``asset_alias``
    (``autoenhance-downloads`` by default), resolved at run time to the rendered destination's
    asset — schedule a DAG on ``AssetAlias("autoenhance-downloads")`` to hear of every download.

    :param order_id: the order (templated).
    :param destination: folder path, URI or ``ObjectStoragePath`` (templated).
    :param kind: ``enhanced`` (default), ``original`` or ``preview``.
    :param format: ``jpeg``, ``png`` or ``webp``; quality 1-90; max_width; scale (0-1];
        preview; watermark — the API's rendering parameters (all templated).
    :param if_exists: ``skip`` (default), ``overwrite`` or ``fail``; see above.
    :param overwrite: the same as ``if_exists="overwrite"`` (kept for compatibility).
    :param max_concurrency: downloads in flight at once.
    :param destination_conn_id: connection for the destination storage (e.g. ``aws_default``).
    :param asset_alias: the alias name for templated destinations (``None``: no asset event).
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
        if_exists: str = "skip",
        overwrite: bool = False,
        max_concurrency: int = 8,
        destination_conn_id: str | None = None,
        asset_alias: str | None = DOWNLOADS_ALIAS,
        **kwargs: Any,
    ) -> None:
        if int(max_concurrency) < 1:
            raise AutoenhanceValidationError("max_concurrency must be at least 1")
        checked_if_exists = validate_if_exists(if_exists)
        hook_params = dict(kwargs.pop("hook_params", None) or {})
        hook_params.setdefault("pool_size", max(int(max_concurrency), 4))
        asset = _fixed_asset(destination)
        if "outlets" not in kwargs:
            if asset is not None:
                kwargs["outlets"] = [asset]
            elif asset_alias:
                kwargs["outlets"] = [AssetAlias(asset_alias)]
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
        self.if_exists = IfExists.OVERWRITE if overwrite else checked_if_exists
        self.max_concurrency = int(max_concurrency)
        self.asset_alias = asset_alias
        #: What the last ``execute`` moved, for OpenLineage (no API call after the fact).
        self.lineage_record: TransferRecord | None = None
        if not is_template([kind, *self._render_params().values()]):
            self._request()  # a typo fails at DAG-parse time

    def _render_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RENDER_PARAMS}

    def _request(self) -> DownloadRequest:
        return validate_download_params(self.kind, self._render_params())

    def execute(self, context: Context) -> list[str]:
        order_id = self.order_id_param()
        self.set_label(context, order_id)
        self.lineage_record = None
        request = self._request()
        folder = prepare_destination(self.destination, self.destination_conn_id)
        self.publish_order(context, order_id)
        uris = self.hook.download_order(
            order_id,
            folder,
            request=request,
            if_exists=self.if_exists,
            max_concurrency=self.max_concurrency,
            temp_token=_temp_token(context),
        )
        self.lineage_record = TransferRecord(
            operation="download",
            order_id=order_id,
            api_base_url=self.hook.config.base_url,
            destination=str(folder),
            file_count=len(uris),
        )
        self._emit_asset_event(context, order_id, folder, uris)
        return uris

    def _emit_asset_event(
        self, context: Context, order_id: str, folder: ObjectStoragePath, uris: list[str]
    ) -> None:
        """Describe the download on the fixed outlet asset, or add the destination to the alias."""
        events = context.get("outlet_events")
        if events is None:  # called outside a task run (a script, a test): no events to record
            return
        extra: dict[str, Any] = {"order_id": order_id, "count": len(uris), "uris": uris[:MAX_EVENT_FILES]}
        for outlet in self.outlets or []:
            if isinstance(outlet, Asset):
                events[outlet].extra = extra
            elif isinstance(outlet, AssetAlias) and outlet.name == self.asset_alias:
                events[outlet].add(Asset(storage_uri(folder)), extra=_alias_event_extra(extra))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the order; output: the destination folder; run facet ``autoenhance``.

        Built from what ``execute`` recorded; needs the ``openlineage`` extra, imported only here.
        """
        return operator_lineage(self.lineage_record)


def _alias_event_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """The extra of an event added through an alias, in a form this Airflow can register.

    Before Airflow 3.2 the API server hashes such extras (a frozenset of their items,
    apache/airflow#56882): a list value would make it fail, so the file list is one string,
    a URI per line, there.
    """
    if _alias_extras_are_json():
        return extra
    return {**extra, "uris": "\n".join(extra["uris"])}


@functools.lru_cache(maxsize=1)
def _alias_extras_are_json() -> bool:
    try:
        from airflow import __version__
        from packaging.version import Version
    except ImportError:  # pragma: no cover - a worker without airflow-core: assume a current server
        return True
    return Version(__version__).release >= (3, 2)


def _temp_token(context: Context) -> TempToken | None:
    """Names this try's temporary files, so a later try of the task recognises (and removes) them."""
    ti: Any = context.get("ti")
    try:
        return TempToken.for_task(
            str(ti.dag_id), str(ti.task_id), str(ti.run_id), int(ti.map_index), int(ti.try_number)
        )
    except (AttributeError, TypeError, ValueError):  # outside a task run: a random token
        return None


def _fixed_asset(destination: Any) -> Asset | None:
    """An outlet asset for a destination known at parse time (not a Jinja template)."""
    if isinstance(destination, ObjectStoragePath):
        return Asset(storage_uri(destination))
    if (
        isinstance(destination, (str, os.PathLike))
        and not is_template(str(destination))
        and str(destination).strip()
    ):
        return Asset(storage_uri(to_storage_path(destination)))
    return None
