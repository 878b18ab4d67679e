"""Put photos (or HDR brackets) from any storage into an order: concurrent, streamed, idempotent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from autoenhance_provider.exceptions import AutoenhanceSourceError, AutoenhanceValidationError
from autoenhance_provider.files.media import BRACKET_CONTENT_TYPE
from autoenhance_provider.files.storage import Source, SourceFile, find_source_files
from autoenhance_provider.lineage import TransferRecord, operator_lineage
from autoenhance_provider.operators.base import AutoenhanceBaseOperator, AutoenhanceSettingsOperator

ON_INVALID = ("fail", "skip")


class _UploadOperatorBase(AutoenhanceBaseOperator):
    """The parameters both upload operators share, and turning ``source`` into checked files."""

    def __init__(
        self,
        *,
        order_id: str,
        source: Source,
        source_conn_id: str | None = None,
        max_concurrency: int = 8,
        on_invalid: str = "fail",
        **kwargs: Any,
    ) -> None:
        if on_invalid not in ON_INVALID:
            raise AutoenhanceValidationError(f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")
        if int(max_concurrency) < 1:
            raise AutoenhanceValidationError("max_concurrency must be at least 1")
        hook_params = dict(kwargs.pop("hook_params", None) or {})
        hook_params.setdefault("pool_size", max(int(max_concurrency), 4))
        super().__init__(hook_params=hook_params, **kwargs)
        self.order_id = order_id
        self.source = source
        self.source_conn_id = source_conn_id
        self.max_concurrency = int(max_concurrency)
        self.on_invalid = on_invalid
        #: What the last ``execute`` moved, for OpenLineage (no API call after the fact).
        self.lineage_record: TransferRecord | None = None
        self._skipped = 0

    def _files(self, context: Context, content_type: str | None = None) -> list[SourceFile]:
        """The files to upload, checked before any API call."""
        self.set_label(context, _describe_source(self.source))
        self.lineage_record = None
        files, problems = find_source_files(self.source, self.source_conn_id, content_type=content_type)
        self._skipped = len(problems)
        if problems:
            listing = "\n  ".join(problems)
            if self.on_invalid == "fail":
                raise AutoenhanceSourceError(f"{len(problems)} file(s) cannot be uploaded:\n  {listing}")
            self.log.warning("Skipping %d file(s) that cannot be uploaded:\n  %s", len(problems), listing)
        if not files:
            raise AutoenhanceSourceError(f"Nothing to upload from {self.source}")
        return files

    def _record(self, operation: str, order_id: str, files: list[SourceFile], uploaded: int) -> None:
        self.lineage_record = TransferRecord(
            operation=operation,
            order_id=order_id,
            api_base_url=self.hook.config.base_url,
            sources=[str(f.path) for f in files],
            file_count=uploaded,
            total_bytes=sum(f.size for f in files),
            skipped_count=self._skipped,
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the source files; output: the order; run facet ``autoenhance`` (id, counts).

        Built from what ``execute`` recorded; needs the ``openlineage`` extra, imported only here.
        """
        return operator_lineage(self.lineage_record)


class UploadImagesOperator(AutoenhanceSettingsOperator, _UploadOperatorBase):
    """Upload photos into an order; Autoenhance starts enhancing each one as it lands.

    ``source`` is a path or URI, a list of them, or an ``ObjectStoragePath``: a file, a folder
    (its files) or a glob such as ``s3://bucket/shoot-42/*.jpg``. The content type comes from the
    file; files are checked (type, readable, not empty, content matches) before any API call.

    Idempotent on retry: images already in the order under the same name and past ``waiting``
    are skipped; a half-done one (registered, never uploaded) is removed and uploaded again.
    The order must exist: a mistyped ``order_id`` fails instead of silently starting a new order
    (the API would create one), unless ``create_missing_order=True``.

    Returns a list of ``{"image_id", "image_name"}`` for every file of the source.

    :param order_id: the order to upload into (templated).
    :param source: what to upload (templated).
    :param source_conn_id: connection for the storage of ``source`` (e.g. ``aws_default``).
    :param max_concurrency: uploads in flight at once.
    :param wait_for_upload: wait until the API has registered every upload (no image left
        ``waiting``), so that downstream tasks see a consistent order.
    :param create_missing_order: let the upload create an order that does not exist yet.
    :param on_invalid: ``"fail"`` (default) or ``"skip"`` files that cannot be uploaded.
    :param enhance_type: and the other enhancement settings (``sky_replacement``,
        ``cloud_type``, ``vertical_correction``, ``lens_correction``, ``window_pull_type``,
        ``privacy``, ``upscale``, ``ai_version``, ``threesixty``…) as keyword arguments, or a
        ``settings`` dict; see :class:`AutoenhanceSettingsOperator`.
    """

    template_fields: Sequence[str] = (
        "order_id",
        "source",
        "source_conn_id",
        "settings",
        "autoenhance_conn_id",
    )

    def __init__(
        self,
        *,
        order_id: str,
        source: Source,
        max_concurrency: int = 8,
        wait_for_upload: bool = True,
        create_missing_order: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(order_id=order_id, source=source, max_concurrency=max_concurrency, **kwargs)
        self.wait_for_upload = wait_for_upload
        self.create_missing_order = create_missing_order

    def execute(self, context: Context) -> list[dict[str, str]]:
        order_id = self.order_id_param()
        files = self._files(context)
        self.publish_order(context, order_id)
        result = self.hook.upload_images(
            order_id,
            files,
            settings=self.settings,
            max_concurrency=self.max_concurrency,
            wait_for_upload=self.wait_for_upload,
            create_missing_order=self.create_missing_order,
        )
        self._record("upload", order_id, files, len(result))
        return result


class UploadBracketsOperator(_UploadOperatorBase):
    """Upload HDR bracket files into an order (sent as ``application/octet-stream``).

    The order must exist (create it with :class:`CreateOrderOperator`). Start grouping and
    enhancement afterwards with :class:`ProcessOrderOperator`. Idempotent on retry: brackets
    already uploaded under the same name are skipped. ``max_concurrency`` defaults to 1 because
    ``number_of_brackets_per_image`` groups brackets in upload order: then the upload stops at
    the first failure, so a retry continues in sequence. Raise it when you group explicitly or
    automatically.

    Returns a list of ``{"bracket_id", "name"}``.
    """

    template_fields: Sequence[str] = ("order_id", "source", "source_conn_id", "autoenhance_conn_id")

    def __init__(self, *, order_id: str, source: Source, max_concurrency: int = 1, **kwargs: Any) -> None:
        super().__init__(order_id=order_id, source=source, max_concurrency=max_concurrency, **kwargs)

    def execute(self, context: Context) -> list[dict[str, str]]:
        order_id = self.order_id_param()
        files = self._files(context, content_type=BRACKET_CONTENT_TYPE)
        self.publish_order(context, order_id)
        result = self.hook.upload_brackets(order_id, files, max_concurrency=self.max_concurrency)
        self._record("upload_brackets", order_id, files, len(result))
        return result


def _describe_source(source: Any) -> str:
    if isinstance(source, (list, tuple)):
        return f"{len(source)} sources" if len(source) != 1 else str(source[0])
    return str(source)
