"""Files in any storage Airflow can reach: upload sources, download destinations, media types, writes.

Everything goes through :class:`ObjectStoragePath`, so local paths, ``file://`` and any fsspec
scheme with its Airflow provider installed (``s3://``, ``gs://``, ``abfs://``…) behave alike.
A download only appears under its final name once it is complete and proven to be an image.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any, NamedTuple, cast

from airflow.sdk import ObjectStoragePath

from autoenhance_provider.compat import storage_conn_id
from autoenhance_provider.exceptions import (
    AutoenhanceDownloadError,
    AutoenhanceSourceError,
    AutoenhanceValidationError,
)

#: Extension -> MIME type, as the official examples map them (autoenhance-api.md §11).
CONTENT_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".heic": "image/heic",
    ".heif": "image/heic",
    ".avif": "image/avif",
    ".dng": "image/x-adobe-dng",
    ".cr2": "image/x-canon-cr2",
    ".cr3": "image/x-canon-cr3",
    ".nef": "image/x-nikon-nef",
    ".nrw": "image/x-nikon-nrw",
    ".arw": "image/x-sony-arw",
    ".sr2": "image/x-sony-sr2",
    ".srf": "image/x-sony-srf",
    ".raf": "image/x-fuji-raf",
}
SUPPORTED_EXTENSIONS = tuple(sorted(CONTENT_TYPES))
BRACKET_CONTENT_TYPE = "application/octet-stream"

#: How many leading bytes :func:`sniff_matches` needs.
SNIFF_BYTES = 32

_TIFF = (b"II*\x00", b"MM\x00*")
_ISO_BMFF_BRANDS = {
    "image/heic": {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"},
    "image/avif": {b"avif", b"avis", b"mif1", b"msf1"},
    "image/x-canon-cr3": {b"crx "},
}


def content_type_for(name: str) -> str | None:
    """The MIME type for a file name, or None if Autoenhance does not take that type."""
    return CONTENT_TYPES.get(PurePosixPath(name).suffix.lower())


def sniff_matches(content_type: str, head: bytes) -> bool:
    """Whether a file's first bytes look like ``content_type`` (catches renamed or broken files)."""
    if content_type == "image/jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if content_type == "image/png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if content_type == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if content_type in _ISO_BMFF_BRANDS:
        return head[4:8] == b"ftyp" and head[8:12] in _ISO_BMFF_BRANDS[content_type]
    if content_type == "image/x-fuji-raf":
        return head.startswith(b"FUJIFILMCCD-RAW")
    # TIFF and the TIFF-based RAW formats (DNG, CR2, NEF, NRW, ARW, SR2, SRF).
    return head[:4] in _TIFF


_UNSAFE = re.compile(r"[^\w.\- ()+,@=]")
MAX_NAME_CHARS = 150
#: File systems limit a name to 255 *bytes*: 150 characters of CJK text are 450 bytes in UTF-8.
#: The stem keeps room for a de-duplication suffix, the extension and the ``.part`` temp name.
MAX_NAME_BYTES = 150


def safe_stem(image_name: str, fallback: str) -> str:
    """A file-name stem derived from an image name that cannot leave the destination folder.

    Drops any directory part (``../../etc/passwd`` -> ``passwd``), control characters and NUL,
    replaces characters that are unsafe on common file systems, and bounds the length (in
    characters and in UTF-8 bytes).
    """
    text = unicodedata.normalize("NFC", str(image_name or "")).replace("\\", "/")
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = text.rsplit("/", 1)[-1]
    stem = PurePosixPath(text).stem if PurePosixPath(text).suffix.lower() in CONTENT_TYPES else text
    stem = _UNSAFE.sub("_", stem).strip(" .")
    stem = _utf8_prefix(stem[:MAX_NAME_CHARS], MAX_NAME_BYTES).rstrip(" .")
    return stem or _utf8_prefix(_UNSAFE.sub("_", fallback)[:MAX_NAME_CHARS], MAX_NAME_BYTES) or "image"


def _utf8_prefix(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_bytes`` long in UTF-8."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def extension_for(kind: str, fmt: str | None, image_name: str) -> str:
    """The extension a downloaded file gets.

    The requested format's; else, for an original, the uploaded file's own (the original comes
    back as it was uploaded: a TIFF stays ``.tiff``, a Canon RAW ``.cr2``); else ``.jpg``, what
    the API renders enhanced images and previews as.
    """
    if fmt:
        return ".jpg" if fmt in ("jpeg", "jpg") else f".{fmt}"
    if kind == "original":
        suffix = PurePosixPath(str(image_name)).suffix.lower()
        if suffix in CONTENT_TYPES:
            return ".jpg" if suffix == ".jpeg" else suffix
    return ".jpg"


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


class DownloadTarget:
    """Where a download goes: a file path (written atomically) or an open binary file object.

    Every write is verified before it counts: the body must be a complete image (image content
    type, the magic bytes of a supported format, the declared length). A path only appears under
    its final name once verified; ``sha256`` and ``size`` describe what was written.
    """

    fileobj: IO[bytes] | None = None
    path: Path | None = None
    _start: int | None = None
    #: What was written, once verified.
    sha256: str | None = None
    size: int | None = None

    def __init__(self, destination: str | os.PathLike[str] | IO[bytes]) -> None:
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

    def written(self) -> tuple[int, str]:
        """Size and SHA-256 of the verified write."""
        if self.size is None or self.sha256 is None:
            raise AutoenhanceDownloadError("nothing was written")
        return self.size, self.sha256

    def write(
        self, chunks: Iterator[bytes], *, content_type: str | None = None, declared_length: int | None = None
    ) -> int:
        """Write and verify all chunks; raises :class:`AutoenhanceDownloadError` for a bad body."""
        check = ImageCheck(content_type, declared_length)
        if self.path is None:
            assert self.fileobj is not None
            if self._start is not None:
                self.fileobj.seek(self._start)
                self.fileobj.truncate()
            written = check.copy(chunks, self.fileobj)
        else:
            tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.part")
            try:
                with tmp.open("wb") as handle:
                    written = check.copy(chunks, handle)
                os.replace(tmp, self.path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        self.sha256, self.size = check.digest.hexdigest(), written
        return written


class ImageCheck:
    """Counts, hashes and inspects a body while it is copied; raises if it is not a whole image."""

    def __init__(self, content_type: str | None, declared_length: int | None) -> None:
        self.content_type = (content_type or "").split(";")[0].strip().lower()
        self.declared_length = declared_length
        self.digest = hashlib.sha256()
        self.head = b""

    def copy(self, chunks: Iterator[bytes], handle: IO[bytes]) -> int:
        if (
            self.content_type
            and not self.content_type.startswith("image/")
            and self.content_type
            not in (
                "application/octet-stream",
                "binary/octet-stream",
            )
        ):
            raise AutoenhanceDownloadError(f"the server sent {self.content_type!r}, not an image")
        written = 0
        for chunk in chunks:
            if not chunk:
                continue
            if len(self.head) < SNIFF_BYTES:
                self.head += chunk[: SNIFF_BYTES - len(self.head)]
                if len(self.head) >= SNIFF_BYTES and not looks_like_image(self.head):
                    raise AutoenhanceDownloadError(_not_an_image(self.head))
            self.digest.update(chunk)
            handle.write(chunk)
            written += len(chunk)
        if written == 0:
            raise AutoenhanceDownloadError("the body was empty")
        if not looks_like_image(self.head):
            raise AutoenhanceDownloadError(_not_an_image(self.head))
        if self.declared_length is not None and written != self.declared_length:
            raise AutoenhanceDownloadError(f"got {written} of the {self.declared_length} bytes announced")
        return written


def looks_like_image(head: bytes) -> bool:
    """Whether ``head`` starts like a file of a format Autoenhance reads or renders."""
    return any(sniff_matches(ct, head) for ct in set(CONTENT_TYPES.values()))


def _not_an_image(head: bytes) -> str:
    start = head[:16].decode("ascii", "replace").strip()
    return f"the body is not an image (it starts with {start!r})"


def write_verified(path: ObjectStoragePath, fetch: Callable[[DownloadTarget], Any]) -> tuple[int, str]:
    """Download into ``path`` through ``fetch(target)``; only a verified image gets the final name.

    Local files go through a temporary name and an atomic rename. Other storage (S3, GCS…) is
    written under a temporary key per attempt, then moved into place and its size checked: an
    object store has no atomic rename, but the final key is only created by a server-side copy
    of a complete, verified temporary object, so it never holds a partial or bad body. A body
    that breaks off is retried into a fresh temporary key, like a local file.
    """
    target = DownloadTarget(local_path(path)) if is_local(path) else StorageTarget(path)
    fetch(target)
    return target.written()


class StorageTarget(DownloadTarget):
    """A download into object storage: one temporary key per attempt, renamed once verified."""

    def __init__(self, path: ObjectStoragePath) -> None:  # no super(): nothing local to open
        self.storage_path = path

    @property
    def rewindable(self) -> bool:
        return True  # every attempt starts a new temporary object

    def describe(self) -> str | None:
        return str(self.storage_path)

    def write(
        self, chunks: Iterator[bytes], *, content_type: str | None = None, declared_length: int | None = None
    ) -> int:
        check = ImageCheck(content_type, declared_length)
        final = self.storage_path
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            handle = open_for_writing(tmp)
            try:
                written = check.copy(chunks, handle)
            except BaseException:
                _abandon(handle)
                raise
            handle.close()
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


def write_bytes_atomically(path: ObjectStoragePath, data: bytes) -> None:
    """A small file (the manifest) replaced as a whole, never seen half-written."""
    if is_local(path):
        local = local_path(path)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
        tmp.write_bytes(data)
        os.replace(tmp, local)
    else:
        with open_for_writing(path) as handle:
            handle.write(data)


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


# -------------------------------------------------------------------------------------- manifest
#: The file in a download destination that records which image each file is.
MANIFEST_NAME = ".autoenhance-manifest.json"


class Manifest:
    """``.autoenhance-manifest.json``: file name -> what it holds (``identity``), its size and SHA-256.

    A file counts as already downloaded only when the manifest names the same identity (order,
    image, rendering) and the file still has the recorded size and checksum: a name match alone
    proves nothing (a second run into the same folder, a file cut short, someone else's file).
    """

    VERSION = 1

    def __init__(self, files: dict[str, dict[str, Any]] | None = None) -> None:
        self.files = files or {}

    @classmethod
    def load(cls, folder: ObjectStoragePath) -> Manifest:
        path = folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_bytes()) if path.exists() else {}
        except (OSError, ValueError):
            return cls()  # unreadable: nothing is verified, everything is downloaded again
        files = data.get("files") if isinstance(data, dict) else None
        return cls(files if isinstance(files, dict) else {})

    def verifies(self, folder: ObjectStoragePath, filename: str, identity: dict[str, Any]) -> bool:
        """Whether ``folder/filename`` provably holds ``identity``."""
        entry = self.files.get(filename)
        if not isinstance(entry, dict) or entry.get("identity") != identity:
            return False
        target = folder / filename
        try:
            if int(target.stat().st_size) != int(entry.get("bytes", -1)):
                return False
            return sha256_of(target) == entry.get("sha256")
        except (OSError, ValueError, TypeError):
            return False

    def record(self, filename: str, identity: dict[str, Any], size: int, digest: str) -> None:
        self.files[filename] = {"identity": identity, "bytes": size, "sha256": digest}

    def save(self, folder: ObjectStoragePath) -> None:
        body = json.dumps({"version": self.VERSION, "files": self.files}, indent=1, sort_keys=True)
        write_bytes_atomically(folder / MANIFEST_NAME, body.encode())


def sha256_of(path: ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    with open_for_reading(path) as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()
