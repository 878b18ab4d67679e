"""OpenLineage datasets and facets for the transfer operators, and the asset URIs of downloads.

``apache-airflow-providers-openlineage`` is optional (the ``openlineage`` extra): nothing here
imports it at module import time. The operators record what they moved in a
:class:`TransferRecord` during ``execute``; :func:`operator_lineage` turns that into an
``OperatorLineage`` afterwards without any API or storage call.

Dataset names follow OpenLineage's naming conventions: ``s3://{bucket}`` + key,
``gs://{bucket}`` + key, ``file://{host}`` + absolute path, ``{scheme}://{authority}`` + path for
any other storage; an Autoenhance order is ``autoenhance://{api host}`` + ``orders/{order_id}``.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

#: Above this many source files the inputs are their folders (a lineage event stays small).
MAX_LINEAGE_FILES = 100
#: Files listed in an asset event's ``extra`` (the count is always exact).
MAX_EVENT_FILES = 100
#: The key of the run facet that carries the order id and counts.
RUN_FACET_KEY = "autoenhance"

_BUCKET_SCHEMES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs"}
_LOCAL_SCHEMES = ("", "file", "local")


def _parts(location: Any) -> tuple[str, str, str]:
    """``(scheme, authority, path)`` of a path, URI or ``ObjectStoragePath``, without credentials.

    ``str(ObjectStoragePath)`` carries the connection id as user info (``s3://aws_default@b/k``);
    it never belongs in a dataset name or an asset URI.
    """
    protocol = getattr(location, "protocol", None)
    if isinstance(protocol, str) and hasattr(location, "path"):
        scheme = protocol.lower()
        text = str(location.path)
        if scheme in _LOCAL_SCHEMES:
            return "file", "", text
        bucket, _, key = text.partition("/")
        return scheme, bucket, key
    text = str(location)
    if "://" not in text:
        return "file", "", text
    # Split by hand, not urlsplit: ObjectStoragePath takes paths literally ("#", "?" are names).
    scheme, _, rest = text.partition("://")
    authority, _, path = rest.partition("/")
    scheme = scheme.lower()
    if scheme in _BUCKET_SCHEMES or scheme in _LOCAL_SCHEMES:
        # There the user info can only be a connection id (abfs keeps its container there).
        authority = authority.rpartition("@")[2]
    if scheme in _LOCAL_SCHEMES:
        return "file", "", "/" + path
    return scheme, authority, path


def dataset_name(location: Any, *, host: str | None = None) -> tuple[str, str]:
    """The OpenLineage ``(namespace, name)`` of a storage location (file, folder or prefix)."""
    scheme, authority, path = _parts(location)
    if scheme == "file":
        return f"file://{host or local_host()}", "/" + path.lstrip("/")
    scheme = _BUCKET_SCHEMES.get(scheme, scheme)
    return f"{scheme}://{authority}", path.rstrip("/") if path != "/" else path


def storage_uri(location: Any) -> str:
    """A location as a credential-free URI fit for an :class:`~airflow.sdk.Asset` (percent-encoded)."""
    scheme, authority, path = _parts(location)
    if scheme == "file":
        return quote("file://" + "/" + path.lstrip("/"), safe=":/@")
    return quote(f"{scheme}://{authority}/{path.lstrip('/')}".rstrip("/"), safe=":/@")


def order_dataset_name(api_base_url: str, order_id: str) -> tuple[str, str]:
    """An Autoenhance order as an OpenLineage dataset: the API host is the data source."""
    parts = urlsplit(api_base_url)
    authority = parts.hostname or "api.autoenhance.ai"
    if parts.port:
        authority = f"{authority}:{parts.port}"
    return f"autoenhance://{authority}", f"orders/{order_id}"


@functools.lru_cache(maxsize=1)
def local_host() -> str:
    """The authority of local file datasets: a local path only means something on its host."""
    return socket.gethostname() or "localhost"


class TransferRecord(NamedTuple):
    """What an operator moved, kept on the operator during ``execute`` for the lineage hooks."""

    operation: str  # "upload", "upload_brackets" or "download"
    order_id: str
    api_base_url: str
    sources: Sequence[str] = ()
    destination: str | None = None
    file_count: int = 0
    total_bytes: int | None = None
    skipped_count: int = 0


def _inputs_for(sources: Sequence[str], host: str | None) -> list[tuple[str, str]]:
    """One dataset per source file, or per folder when there are many."""
    names = [dataset_name(uri, host=host) for uri in sources]
    if len(names) > MAX_LINEAGE_FILES:
        names = [(ns, str(PurePosixPath(name).parent)) for ns, name in names]
    unique: dict[tuple[str, str], None] = dict.fromkeys(names)
    return list(unique)


def operator_lineage(record: TransferRecord | None, *, host: str | None = None) -> Any:
    """The ``OperatorLineage`` of a finished transfer (empty when nothing was recorded)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    if record is None:
        return OperatorLineage()
    order = Dataset(*order_dataset_name(record.api_base_url, record.order_id))
    if record.operation == "download":
        inputs = [order]
        outputs = [Dataset(*dataset_name(record.destination, host=host))] if record.destination else []
    else:
        inputs = [Dataset(ns, name) for ns, name in _inputs_for(record.sources, host)]
        outputs = [order]
    facet = run_facet_class()(
        orderId=record.order_id,
        operation=record.operation,
        fileCount=record.file_count,
        totalBytes=record.total_bytes,
        skippedCount=record.skipped_count,
    )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={RUN_FACET_KEY: facet})


@functools.lru_cache(maxsize=1)
def run_facet_class() -> type:
    """The ``autoenhance`` run facet, defined on first use so the OpenLineage client stays optional."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class AutoenhanceRunFacet(RunFacet):
        """Which order a run worked on and how many files it moved."""

        # camelCase, as OpenLineage's own facets name their fields
        orderId: str
        operation: str
        fileCount: int
        totalBytes: int | None = None
        skippedCount: int = 0

        # No override of _get_schema: the facet's _schemaURL stays the one RunFacet documents,
        # the OpenLineage spec's own `.../OpenLineage.json#/$defs/RunFacet` (a run facet with
        # additional properties). This project hosts no JSON schema of its own to point to.

    AutoenhanceRunFacet.__module__ = __name__
    return AutoenhanceRunFacet
