"""Files in any storage Airflow can reach: finding upload sources and preparing destinations.

Everything goes through :class:`ObjectStoragePath`, so local paths, ``file://`` and any fsspec
scheme with its Airflow provider installed (``s3://``, ``gs://``, ``abfs://``…) behave alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk import ObjectStoragePath

from autoenhance_provider._compat import storage_conn_id
from autoenhance_provider._transport import ensure_writable_directory
from autoenhance_provider.exceptions import AutoenhanceSourceError, AutoenhanceValidationError
from autoenhance_provider.media import SNIFF_BYTES, SUPPORTED_EXTENSIONS, content_type_for, sniff_matches

_GLOB_CHARS = frozenset("*?[")

Source = str | os.PathLike[str] | ObjectStoragePath | Iterable[Any]


def to_storage_path(
    location: str | os.PathLike[str] | ObjectStoragePath, conn_id: str | None = None
) -> ObjectStoragePath:
    """A path or URI as an ObjectStoragePath; plain local paths become absolute ``file://`` URIs."""
    if isinstance(location, ObjectStoragePath):
        return location
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    text = text.strip()
    if not text:
        raise AutoenhanceValidationError("A path or URI must not be empty")
    if "://" not in text:
        # Not Path.as_uri(): it percent-encodes (spaces, "#", "*", non-ASCII) while
        # ObjectStoragePath takes file:// paths literally ("/a b" would become "/a%20b").
        text = "file://" + Path(text).expanduser().resolve().as_posix()
    return ObjectStoragePath(text, conn_id=conn_id) if conn_id else ObjectStoragePath(text)


def is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in ("file", "local", "")


def local_path(path: ObjectStoragePath) -> Path:
    return Path(path.path)


@dataclass(frozen=True)
class SourceFile:
    """One file to upload."""

    path: ObjectStoragePath
    name: str
    size: int
    content_type: str

    @property
    def uri(self) -> str:
        return str(self.path)


def expand_sources(source: Source, conn_id: str | None = None) -> list[ObjectStoragePath]:
    """Every file a source names: a file, a folder (its files), a glob, or a list of those."""
    if isinstance(source, (list, tuple, set)):
        found: list[ObjectStoragePath] = []
        for item in source:
            found.extend(expand_sources(item, conn_id))
        return found
    if not isinstance(source, (str, os.PathLike, ObjectStoragePath)):
        raise AutoenhanceValidationError(
            "source must be a path, a URI, an ObjectStoragePath or a list of them, "
            f"got {type(source).__name__}"
        )
    path = to_storage_path(source, conn_id)
    raw = path.path
    if any(ch in _GLOB_CHARS for ch in raw):
        base, pattern = _split_glob(path)
        matches = sorted((p for p in base.glob(pattern) if p.is_file()), key=str)
        if not matches:
            raise AutoenhanceSourceError(f"No files match {source}")
        return matches
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")), key=str)
        if not files:
            raise AutoenhanceSourceError(f"The folder {source} contains no files")
        return files
    if not path.exists():
        raise AutoenhanceSourceError(f"Source not found: {source}")
    return [path]


def _split_glob(path: ObjectStoragePath) -> tuple[ObjectStoragePath, str]:
    """Split ``…/shoot-42/*.jpg`` into the fixed folder and the pattern below it."""
    parts = path.path.split("/")
    first = next(i for i, part in enumerate(parts) if any(ch in _GLOB_CHARS for ch in part))
    base_text = "/".join(parts[:first]) or "/"
    base = (
        ObjectStoragePath(f"{path.protocol}://{base_text}", conn_id=storage_conn_id(path))
        if path.protocol
        else ObjectStoragePath(base_text)
    )
    return base, "/".join(parts[first:])


def inspect_sources(
    paths: list[ObjectStoragePath], *, content_type: str | None = None
) -> tuple[list[SourceFile], list[str]]:
    """Check each file before any API call: supported type, readable, not empty, content matches.

    Returns the good files and one problem line per bad file. With ``content_type`` (HDR
    brackets) every file is sent with that type, but must still be a supported image.
    """
    good: list[SourceFile] = []
    problems: list[str] = []
    for path in paths:
        name = path.name
        detected = content_type_for(name)
        if detected is None:
            problems.append(f"{path}: unsupported file type (supported: {', '.join(SUPPORTED_EXTENSIONS)})")
            continue
        try:
            size = int(path.stat().st_size)
            with path.open("rb") as handle:
                head = handle.read(SNIFF_BYTES)
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})")
            continue
        if size == 0:
            problems.append(f"{path}: the file is empty")
        elif not sniff_matches(detected, head):
            problems.append(f"{path}: the content is not a valid {detected} file")
        else:
            good.append(SourceFile(path=path, name=name, size=size, content_type=content_type or detected))
    names: dict[str, str] = {}
    for item in good:
        if item.name in names:
            problems.append(
                f"{item.uri}: same image name as {names[item.name]} (names must be unique per order)"
            )
        names.setdefault(item.name, item.uri)
    return [g for g in good if names[g.name] == g.uri], problems


def prepare_destination(
    destination: str | os.PathLike[str] | ObjectStoragePath, conn_id: str | None = None
) -> ObjectStoragePath:
    """Create the destination folder if needed and check that it can be written to."""
    path = to_storage_path(destination, conn_id)
    if is_local(path):
        ensure_writable_directory(local_path(path))
    else:
        path.mkdir(parents=True, exist_ok=True)
    return path
