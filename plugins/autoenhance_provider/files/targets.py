"""Where one downloaded image is written; it only gets its final name once verified.

A local file goes through a temporary name and an atomic rename; object storage through a
temporary key per attempt, moved into place once complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from airflow.sdk import ObjectStoragePath

from autoenhance_provider.exceptions import (
    AutoenhanceDownloadError,
    AutoenhanceValidationError,
)
from autoenhance_provider.files.integrity import ImageCheck
from autoenhance_provider.files.storage import (
    TempToken,
    ensure_writable_directory,
    is_local,
    local_path,
    open_for_writing,
    open_new_file,
    seekable,
)


class DownloadTarget:
    """Where a download goes: a file path (written atomically) or an open binary file object.

    Every write is verified before it counts: the body must be a complete image (image content
    type, the magic bytes of a supported format, and its end: the declared length, else the
    format's own end or a checksum the server sends). A path only appears under its final name
    once verified; ``sha256`` and ``size`` describe what was written.

    A path is written through a temporary file ``.autoenhance-<token>-<name>.part`` next to it
    (see :class:`TempToken`), opened without following symlinks; the rename replaces whatever
    is at the final name (a symlink itself, never its target). ``before_rename(size, sha256)``
    runs once the body is verified and before it gets its name (the manifest's write-ahead).
    """

    fileobj: IO[bytes] | None = None
    path: Path | None = None
    _start: int | None = None
    #: What was written, once verified.
    sha256: str | None = None
    size: int | None = None
    token: TempToken | None = None
    before_rename: Callable[[int, str], None] | None = None

    def __init__(
        self,
        destination: str | os.PathLike[str] | IO[bytes],
        *,
        token: TempToken | None = None,
        before_rename: Callable[[int, str], None] | None = None,
    ) -> None:
        self.token = token
        self.before_rename = before_rename
        if isinstance(destination, (str, os.PathLike)):
            self.path = Path(destination)
            self._check_path(self.path)
        elif hasattr(destination, "write"):
            self.fileobj = destination
            self._start = destination.tell() if seekable(destination) else None
        else:
            raise AutoenhanceValidationError(
                f"destination must be a file path or a binary file object, got {type(destination).__name__}"
            )

    @staticmethod
    def _check_path(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            raise AutoenhanceValidationError(f"Destination {path} is a directory; give a file path")
        ensure_writable_directory(path.parent)

    @property
    def rewindable(self) -> bool:
        return self.path is not None or self._start is not None

    def describe(self) -> str | None:
        return str(self.path) if self.path else None

    def written(self) -> tuple[int, str]:
        """Size and SHA-256 of the verified write."""
        if self.size is None or self.sha256 is None:
            raise AutoenhanceDownloadError("nothing was written")
        return self.size, self.sha256

    def write(
        self,
        chunks: Iterator[bytes],
        *,
        content_type: str | None = None,
        declared_length: int | None = None,
        checksum: tuple[str, str] | None = None,
    ) -> int:
        """Write and verify all chunks; raises :class:`AutoenhanceDownloadError` for a bad body."""
        check = ImageCheck(content_type, declared_length, checksum)
        if self.path is None:
            assert self.fileobj is not None
            if self._start is not None:
                self.fileobj.seek(self._start)
                self.fileobj.truncate()
            written = check.copy(chunks, self.fileobj)
            check.complete(written, _fileobj_reader(self.fileobj, self._start))
        else:
            token = self.token or TempToken.random()
            tmp = self.path.with_name(token.temp_name(self.path.name))
            try:
                with open_new_file(tmp) as handle:
                    written = check.copy(chunks, handle)
                    handle.flush()
                    check.complete(written, _pread_reader(handle.fileno()))
                if self.before_rename is not None:
                    self.before_rename(written, check.digest.hexdigest())
                os.replace(tmp, self.path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        self.sha256, self.size = check.digest.hexdigest(), written
        return written


def _pread_reader(fd: int) -> Callable[[int, int], bytes]:
    return lambda offset, size: os.pread(fd, size, offset)


def _fileobj_reader(fileobj: IO[bytes], start: int | None) -> Callable[[int, int], bytes] | None:
    """Random reads of what was written to a caller's file object, if it can be read back."""
    if start is None:
        return None
    try:
        if not fileobj.readable():
            return None
    except (AttributeError, ValueError, OSError):
        return None

    def read_at(offset: int, size: int) -> bytes:
        here = fileobj.tell()
        try:
            fileobj.seek(start + offset)
            return fileobj.read(size)
        finally:
            fileobj.seek(here)

    return read_at


def target_for(
    path: ObjectStoragePath,
    *,
    token: TempToken | None = None,
    before_rename: Callable[[int, str], None] | None = None,
) -> DownloadTarget:
    """Where a download into ``path`` is written; only a verified image gets the final name.

    Local files go through a temporary name and an atomic rename. Other storage (S3, GCS…) is
    written under a temporary key per attempt, then moved into place and its size checked: an
    object store has no atomic rename, but the final key is only created by a server-side copy
    of a complete, verified temporary object, so it never holds a partial or bad body. A body
    that breaks off is retried into a fresh temporary object, like a local file.
    """
    if is_local(path):
        return DownloadTarget(local_path(path), token=token, before_rename=before_rename)
    return StorageTarget(path, token=token, before_rename=before_rename)


class StorageTarget(DownloadTarget):
    """A download into object storage: a temporary key per attempt, renamed once verified."""

    def __init__(
        self,
        path: ObjectStoragePath,
        *,
        token: TempToken | None = None,
        before_rename: Callable[[int, str], None] | None = None,
    ) -> None:  # no super(): nothing local to open
        self.storage_path = path
        self.token = token
        self.before_rename = before_rename

    @property
    def rewindable(self) -> bool:
        return True  # every attempt starts a new temporary object

    def describe(self) -> str | None:
        return str(self.storage_path)

    def write(
        self,
        chunks: Iterator[bytes],
        *,
        content_type: str | None = None,
        declared_length: int | None = None,
        checksum: tuple[str, str] | None = None,
    ) -> int:
        check = ImageCheck(content_type, declared_length, checksum)
        final = self.storage_path
        tmp = final.parent / (self.token or TempToken.random()).temp_name(final.name)
        try:
            handle = open_for_writing(tmp)
            try:
                written = check.copy(chunks, handle)
            except BaseException:
                _abandon(handle)
                raise
            handle.close()
            check.complete(
                written, lambda offset, size: bytes(tmp.fs.cat_file(tmp.path, offset, offset + size))
            )
            if self.before_rename is not None:
                self.before_rename(written, check.digest.hexdigest())
            tmp.rename(final)
        except BaseException:
            with contextlib.suppress(Exception):
                tmp.unlink(missing_ok=True)
            raise
        stored = int(final.stat().st_size)
        if stored != written:
            raise AutoenhanceDownloadError(f"{final} holds {stored} bytes after writing {written}")
        self.sha256, self.size = check.digest.hexdigest(), written
        return written


def _abandon(handle: Any) -> None:
    """Throw a half-written remote file away instead of letting ``close()`` commit it.

    fsspec files upload what they buffered when closed (s3fs completes the multipart upload);
    ``discard()`` aborts it (s3fs, gcsfs), and the file is then marked closed so that nothing
    flushes it later.
    """
    raw = getattr(handle, "_obj", handle)  # in case of ObjectStoragePath.open()'s wrapper
    discard = getattr(raw, "discard", None)
    if callable(discard):
        with contextlib.suppress(Exception):
            discard()
        with contextlib.suppress(Exception):
            raw.closed = True
        return
    with contextlib.suppress(Exception):
        handle.close()
