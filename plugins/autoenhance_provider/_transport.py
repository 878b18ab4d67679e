"""Transport details of the sync client that are not API logic: user agent, sources, targets.

Kept apart from the hook so that the hook reads as the list of API operations.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import IO, Any

from autoenhance_provider import __version__
from autoenhance_provider.exceptions import AutoenhanceSourceError, AutoenhanceValidationError
from autoenhance_provider.policy import redact_urls_in

CHUNK_SIZE = 1024 * 1024


@cache
def user_agent(client: str = "requests") -> str:
    """``airflow-provider-autoenhance/<v> apache-airflow/<v> python-<client>/<v>``, computed once."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:  # pragma: no cover - e.g. only the task SDK installed
            return "unknown"

    return (
        f"airflow-provider-autoenhance/{__version__} apache-airflow/{installed('apache-airflow')} "
        f"python-{client}/{installed(client)}"
    )


class RedactQueryStrings(logging.Filter):
    """Strip query strings (presigned signatures) from urllib3/httpx debug log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_urls_in(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_urls_in(a) if isinstance(a, str) else a for a in record.args)
        return True


_FILTER = RedactQueryStrings()


def install_log_redaction() -> None:
    for name in ("urllib3.connectionpool", "httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


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


class DownloadTarget:
    """Where a download goes: a file path (written atomically) or an open binary file object."""

    def __init__(self, destination: str | os.PathLike[str] | IO[bytes]) -> None:
        self.fileobj: IO[bytes] | None = None
        self.path: Path | None = None
        self._start: int | None = None
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
        if path.is_dir():
            raise AutoenhanceValidationError(f"Destination {path} is a directory; give a file path")
        ensure_writable_directory(path.parent)

    @property
    def rewindable(self) -> bool:
        return self.path is not None or self._start is not None

    def describe(self) -> str | None:
        return str(self.path) if self.path else None

    def write(self, chunks: Iterator[bytes]) -> int:
        """Write all chunks; a path target only appears once it is complete."""
        if self.path is None:
            assert self.fileobj is not None
            if self._start is not None:
                self.fileobj.seek(self._start)
                self.fileobj.truncate()
            return _copy(chunks, self.fileobj)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with tmp.open("wb") as handle:
                written = _copy(chunks, handle)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return written


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


def _copy(chunks: Iterator[bytes], handle: IO[bytes]) -> int:
    written = 0
    for chunk in chunks:
        if chunk:
            handle.write(chunk)
            written += len(chunk)
    return written


_HREF = re.compile(r"""href=["']([^"']+)["']""", re.IGNORECASE)
_JSON_URL_KEYS = ("url", "image_url", "imageSource", "download_url", "downloadUrl")


def indirect_image_url(content_type: str, body: bytes) -> str | None:
    """Older API versions answer a download with JSON or a redirect page naming the image URL."""
    import json

    ct = content_type.split(";")[0].strip().lower()
    if ct == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if isinstance(data, dict):
            for key in _JSON_URL_KEYS:
                if isinstance(data.get(key), str):
                    return data[key]
        return None
    if ct == "text/html":
        match = _HREF.search(body.decode("utf-8", "replace"))
        return match.group(1) if match else None
    return None


_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_S3_MESSAGE = re.compile(r"<Message>([^<]+)</Message>")


def storage_error_text(body: str) -> str:
    """The Code and Message of an S3-style XML error, or the start of the body."""
    code, message = _S3_CODE.search(body), _S3_MESSAGE.search(body)
    if code:
        return f"{code.group(1)}" + (f": {message.group(1)}" if message else "")
    return redact_urls_in(body.strip()[:200])
