"""Paths in any storage Airflow can reach: upload sources, destination folders, temporary names.

Everything goes through :class:`ObjectStoragePath`, so local paths, ``file://`` and any fsspec
scheme with its Airflow provider installed (``s3://``, ``gs://``, ``abfs://``…) behave alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

from airflow.sdk import ObjectStoragePath

from autoenhance_provider.compat import storage_conn_id
from autoenhance_provider.exceptions import (
    AutoenhanceSourceError,
    AutoenhanceValidationError,
)
from autoenhance_provider.files.media import (
    SNIFF_BYTES,
    SUPPORTED_EXTENSIONS,
    content_type_for,
    sniff_matches,
)

# ------------------------------------------------------------------------------------- sources
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


class SourceFile(NamedTuple):
    """One file to upload."""

    path: ObjectStoragePath
    name: str
    size: int
    content_type: str

    @property
    def uri(self) -> str:
        return str(self.path)

    def open(self) -> IO[bytes]:
        """Local files are opened directly: reads through fsspec's file wrapper cost about 20 µs
        each (it rebuilds the path string per call), 1.3 ms of CPU per MB uploaded."""
        return open_for_reading(self.path)


#: Read-ahead block for files in object storage: memory per open file stays near this.
REMOTE_READ_BLOCK = 8 * 1024 * 1024


def open_for_reading(path: ObjectStoragePath) -> IO[bytes]:
    """A file opened for streaming reads with bounded memory and cheap small reads.

    Remote files are opened on the fsspec file system itself with an 8 MiB block: s3fs's
    default read-ahead block is 50 MiB (held and copied: +150 MiB RSS for one 256 MiB upload),
    and ``ObjectStoragePath.open`` wraps the file in a hook-lineage tracker that costs about
    2 ms per ``read`` — http.client reads 16 KiB at a time, a minute for 256 MiB. The operators
    report lineage themselves (OpenLineage facets, asset events).
    """
    if is_local(path):
        return local_path(path).open("rb")
    return cast("IO[bytes]", path.fs.open(path.path, "rb", block_size=REMOTE_READ_BLOCK))


def open_for_writing(path: ObjectStoragePath) -> IO[bytes]:
    """A remote file opened for a streamed write: 8 MiB parts, not s3fs's default 50 MiB buffer,
    and no per-``write`` lineage tracking (see :func:`open_for_reading`)."""
    return cast("IO[bytes]", path.fs.open(path.path, "wb", block_size=REMOTE_READ_BLOCK))


def read_head(path: ObjectStoragePath, size: int = SNIFF_BYTES) -> bytes:
    """The first ``size`` bytes of a file: one ranged read, however large the file is."""
    if is_local(path):
        with local_path(path).open("rb") as handle:
            return handle.read(size)
    return bytes(path.fs.cat_file(path.path, start=0, end=size))


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
            head = read_head(path) if size else b""
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


def find_source_files(
    source: Source, conn_id: str | None = None, *, content_type: str | None = None
) -> tuple[list[SourceFile], list[str]]:
    """Every file ``source`` names, checked: the good files, and one problem line per bad one."""
    return inspect_sources(expand_sources(source, conn_id), content_type=content_type)


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


# ------------------------------------------------------------------------------ streams and writes
@contextlib.contextmanager
def open_source(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[tuple[IO[bytes], int | None]]:
    """Open an upload source for streaming; yields the file object and its size if known."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AutoenhanceSourceError(f"Source file not found: {path}")
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise AutoenhanceSourceError(f"Cannot read source file {path}: {exc.strerror}") from None
        with handle:
            yield handle, os.fstat(handle.fileno()).st_size
        return
    if not hasattr(source, "read"):
        raise AutoenhanceValidationError(
            f"source must be a path or a binary file object, got {type(source).__name__}"
        )
    yield source, _remaining_size(source)


def _remaining_size(fileobj: IO[bytes]) -> int | None:
    try:
        if not fileobj.seekable():
            return None
        here = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(here)
        return end - here
    except (OSError, AttributeError, ValueError):
        return None


def ensure_writable_directory(folder: Path) -> None:
    """Create ``folder`` if needed; fail early, with its name, if it cannot be written to."""
    if folder.exists() and not folder.is_dir():
        raise AutoenhanceValidationError(
            f"Destination directory {folder} cannot be created: a file has that name"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AutoenhanceValidationError(
            f"Destination directory {folder} cannot be created: {exc.strerror}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AutoenhanceValidationError(f"Destination directory {folder} is not writable")


def seekable(fileobj: Any) -> bool:
    try:
        return bool(fileobj.seekable())
    except (AttributeError, ValueError, OSError):
        return False


def write_bytes_atomically(path: ObjectStoragePath, data: bytes, token: TempToken | None = None) -> None:
    """A small file (the manifest) replaced as a whole, never seen half-written.

    Locally through a temporary file and a rename (the rename replaces a symlink, never writes
    through it); in object storage one PUT, which stores the whole object or nothing.
    """
    if is_local(path):
        local = local_path(path)
        tmp = local.with_name((token or TempToken.random()).temp_name(local.name))
        try:
            with open_new_file(tmp) as handle:
                handle.write(data)
            os.replace(tmp, local)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    else:
        with open_for_writing(path) as handle:
            handle.write(data)


# ------------------------------------------------------------------------------ temporary files
TEMP_PREFIX = ".autoenhance-"
TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(r"^\.autoenhance-([0-9a-f]{12})t(\d+)-.+\.part$", re.DOTALL)
#: A temporary file of ours untouched for this long belongs to a transfer that died.
STALE_TEMP_SECONDS = 2 * 24 * 3600.0


class TempToken(NamedTuple):
    """Who writes a temporary file: ``.autoenhance-<owner>t<try>-<name>.part``.

    ``owner`` is a hash of the task instance (DAG, task, run, map index), so the provider
    recognises its own temporary files — and only its own — and a later try of the same task
    removes those an earlier try left behind when it was killed (a killed process cleans
    nothing up). Outside a task run the owner is random and the try 0.
    """

    owner: str
    try_number: int

    @classmethod
    def for_task(cls, dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> TempToken:
        key = json.dumps([dag_id, task_id, run_id, int(map_index)]).encode()
        return cls(hashlib.sha256(key).hexdigest()[:12], max(0, int(try_number)))

    @classmethod
    def random(cls) -> TempToken:
        return cls(uuid.uuid4().hex[:12], 0)

    def temp_name(self, name: str) -> str:
        return f"{TEMP_PREFIX}{self.owner}t{self.try_number}-{name}{TEMP_SUFFIX}"

    @classmethod
    def parse(cls, name: str) -> TempToken | None:
        """The token of one of our temporary file names, or None for any other name."""
        match = _TEMP_NAME.match(name)
        return cls(match.group(1), int(match.group(2))) if match else None

    def supersedes(self, other: TempToken) -> bool:
        """``other`` was written by an earlier try of the same task instance."""
        return other.owner == self.owner and other.try_number < self.try_number


def sweep_temp_files(
    folder: ObjectStoragePath, token: TempToken, *, now: float | None = None, log: Any = None
) -> list[str]:
    """Remove the temporary files of earlier tries of this task (and ours gone stale); their names.

    Only names of the provider's own pattern are considered; the current try's are never touched.
    """
    now = time.time() if now is None else now
    removed: list[str] = []
    for name, mtime in _temp_candidates(folder):
        found = TempToken.parse(name)
        if found is None or found == token:
            continue
        if token.supersedes(found) or (mtime is not None and now - mtime > STALE_TEMP_SECONDS):
            with contextlib.suppress(FileNotFoundError):
                if is_local(folder):
                    (local_path(folder) / name).unlink()
                else:
                    (folder / name).unlink(missing_ok=True)
                removed.append(name)
    if removed and log is not None:
        log.info("Removed %d temporary file(s) left in %s by an earlier try", len(removed), folder)
    return removed


def _temp_candidates(folder: ObjectStoragePath) -> list[tuple[str, float | None]]:
    """``(name, mtime)`` of the entries of ``folder`` that start like our temporary files."""
    if is_local(folder):
        try:
            with os.scandir(local_path(folder)) as entries:
                return [
                    (e.name, e.stat(follow_symlinks=False).st_mtime)
                    for e in entries
                    if e.name.startswith(TEMP_PREFIX) and e.name.endswith(TEMP_SUFFIX)
                ]
        except FileNotFoundError:
            return []
    try:
        found = folder.fs.glob(f"{folder.path.rstrip('/')}/{TEMP_PREFIX}*{TEMP_SUFFIX}", detail=True)
    except FileNotFoundError:
        return []
    result: list[tuple[str, float | None]] = []
    for key, info in (found or {}).items():
        stamp = info.get("LastModified") or info.get("mtime") or info.get("updated")
        mtime = stamp.timestamp() if hasattr(stamp, "timestamp") else stamp
        result.append(
            (str(key).rsplit("/", 1)[-1], float(mtime) if isinstance(mtime, (int, float)) else None)
        )
    return result


def open_new_file(path: Path) -> IO[bytes]:
    """A new file for writing at ``path``, never through a symlink (a leftover is removed first)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    return os.fdopen(os.open(path, flags, 0o666), "w+b")
