"""Files in any storage Airflow can reach: upload sources, download destinations, media types, writes.

Everything goes through :class:`ObjectStoragePath`, so local paths, ``file://`` and any fsspec
scheme with its Airflow provider installed (``s3://``, ``gs://``, ``abfs://``…) behave alike.
A download only appears under its final name once it is complete and proven to be an image.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import re
import stat
import struct
import threading
import time
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


def open_new_file(path: Path) -> IO[bytes]:
    """A new file for writing at ``path``, never through a symlink (a leftover is removed first)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    return os.fdopen(os.open(path, flags, 0o666), "w+b")


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


#: Checksum headers a storage host may send for the whole body: header -> (algorithm, encoding).
CHECKSUM_HEADERS = {"x-amz-checksum-sha256": "sha256", "content-md5": "md5"}


def declared_checksum(headers: Any) -> tuple[str, str] | None:
    """``("sha256"|"md5", hex digest)`` from a response's checksum header, if it sends one."""
    for header, algorithm in CHECKSUM_HEADERS.items():
        value = headers.get(header)
        if not value:
            continue
        try:
            raw = base64.b64decode(str(value).strip(), validate=True)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == hashlib.new(algorithm).digest_size:
            return algorithm, raw.hex()
    return None


class ImageCheck:
    """Counts, hashes and inspects a body while it is copied; raises if it is not a whole image.

    Complete means: the declared length when there is one; else a checksum the server sent;
    else the format's own end — JPEG's EOI marker, PNG's IEND chunk, the RIFF size of a WebP,
    the structure of a TIFF (and of the TIFF-based RAW formats: every IFD and the data it points
    to lies within the file) or of an ISO-BMFF file (HEIC, AVIF, CR3: top-level boxes that end
    exactly at the end). A body whose end cannot be proven is refused.
    """

    TAIL_BYTES = 64

    def __init__(
        self,
        content_type: str | None,
        declared_length: int | None,
        checksum: tuple[str, str] | None = None,
    ) -> None:
        self.content_type = (content_type or "").split(";")[0].strip().lower()
        self.declared_length = declared_length
        self.checksum = checksum
        self.digest = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False) if checksum and checksum[0] == "md5" else None
        self.head = b""
        self.tail = b""

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
            if self._md5 is not None:
                self._md5.update(chunk)
            self.tail = (self.tail + chunk)[-self.TAIL_BYTES :]
            handle.write(chunk)
            written += len(chunk)
        if written == 0:
            raise AutoenhanceDownloadError("the body was empty")
        if not looks_like_image(self.head):
            raise AutoenhanceDownloadError(_not_an_image(self.head))
        if self.declared_length is not None and written != self.declared_length:
            raise AutoenhanceDownloadError(f"got {written} of the {self.declared_length} bytes announced")
        return written

    def complete(self, written: int, read_at: Callable[[int, int], bytes] | None) -> None:
        """Raise unless the body is provably whole (see the class docstring); ``read_at(offset,
        size)`` reads back what was written, for the formats whose end is in their structure."""
        if self.declared_length is not None:
            return  # checked by copy()
        if self.checksum is not None:
            algorithm, expected = self.checksum
            got = (self._md5 if algorithm == "md5" else self.digest).hexdigest()  # type: ignore[union-attr]
            if got != expected:
                raise AutoenhanceDownloadError(
                    f"the body's {algorithm} does not match the one the server sent (cut short or changed)"
                )
            return
        problem = format_end_problem(self.head, self.tail, written, read_at)
        if problem:
            raise AutoenhanceDownloadError(f"{problem} (no Content-Length): the body was cut short")


def format_end_problem(
    head: bytes, tail: bytes, total: int, read_at: Callable[[int, int], bytes] | None
) -> str | None:
    """Why a body of ``total`` bytes is not a whole image by its format's own end, or None."""
    if sniff_matches("image/jpeg", head):
        return None if tail.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9") else "no JPEG end marker"
    if sniff_matches("image/png", head):
        return None if tail.endswith(_PNG_IEND) else "no PNG IEND chunk at the end"
    if sniff_matches("image/webp", head):
        riff = int.from_bytes(head[4:8], "little") + 8
        return None if total >= riff else f"{total} of the {riff} bytes its RIFF header announces"
    if head[:4] in _TIFF or head[4:8] == b"ftyp":
        if read_at is None:
            return "the end of a TIFF/ISO-BMFF file cannot be checked here"
        check = _tiff_problem if head[:4] in _TIFF else _bmff_problem
        try:
            return check(read_at, total)
        except (ValueError, IndexError, struct.error) as exc:
            return f"an unreadable structure ({exc})"
    return "a format whose end cannot be verified"


_PNG_IEND = b"IEND\xaeB`\x82"
#: TIFF field type -> bytes per value.
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
#: Tags holding data offsets and their byte counts (strips, tiles, the JPEG thumbnail).
_TIFF_DATA_TAGS = {273: 279, 324: 325, 513: 514}
#: Tags pointing to further IFDs (SubIFDs of RAW formats, EXIF, GPS).
_TIFF_IFD_TAGS = (330, 34665, 34853)
_MAX_IFDS = 256


def _tiff_problem(read_at: Callable[[int, int], bytes], total: int) -> str | None:
    """Every IFD, every value it points to and every strip/tile it names lie within the file."""
    order = "<" if read_at(0, 2) == b"II" else ">"
    magic, first = struct.unpack(order + "HI", read_at(2, 6))
    if magic != 42:
        return "a BigTIFF, whose end cannot be checked"
    queue: list[int] = [first]
    seen: set[int] = set()

    def values(field_type: int, count: int, raw: bytes) -> list[int]:
        size = _TIFF_TYPE_SIZES.get(field_type, 1) * count
        data = raw if size <= 4 else read_at(struct.unpack(order + "I", raw)[0], size)
        code = {3: "H", 4: "I", 13: "I"}.get(field_type)
        if code is None or len(data) < size:
            return []
        return list(struct.unpack(f"{order}{count}{code}", data[:size]))

    while queue:
        offset = queue.pop()
        if offset == 0 or offset in seen:
            continue
        if len(seen) >= _MAX_IFDS:
            return "too many IFDs"
        seen.add(offset)
        if offset + 2 > total:
            return "an IFD beyond the end"
        (count,) = struct.unpack(order + "H", read_at(offset, 2))
        if offset + 2 + 12 * count + 4 > total:
            return "an IFD cut short"
        table = read_at(offset + 2, 12 * count + 4)
        fields: dict[int, tuple[int, int, bytes]] = {}
        for i in range(count):
            tag, field_type, n = struct.unpack(order + "HHI", table[12 * i : 12 * i + 8])
            raw = table[12 * i + 8 : 12 * i + 12]
            size = _TIFF_TYPE_SIZES.get(field_type, 1) * n
            if size > 4 and struct.unpack(order + "I", raw)[0] + size > total:
                return f"tag {tag}'s data beyond the end"
            fields[tag] = (field_type, n, raw)
        for offsets_tag, counts_tag in _TIFF_DATA_TAGS.items():
            if offsets_tag in fields and counts_tag in fields:
                starts = values(*fields[offsets_tag])
                sizes = values(*fields[counts_tag])
                if any(s + n > total for s, n in zip(starts, sizes, strict=False)):
                    return "image data beyond the end"
        for tag in _TIFF_IFD_TAGS:
            if tag in fields:
                queue.extend(values(*fields[tag]))
        queue.append(struct.unpack(order + "I", table[-4:])[0])
    return None


def _bmff_problem(read_at: Callable[[int, int], bytes], total: int) -> str | None:
    """The top-level boxes of an ISO-BMFF file (HEIC, AVIF, CR3) end exactly at its end."""
    position = 0
    for _ in range(100_000):
        if position == total:
            return None
        header = read_at(position, 16)
        if len(header) < 8:
            return "a box header cut short"
        size = int.from_bytes(header[:4], "big")
        if size == 1:
            if len(header) < 16:
                return "a box header cut short"
            size = int.from_bytes(header[8:16], "big")
        elif size == 0:
            return None  # the last box runs to the end of the file
        if size < 8:
            return "a malformed box"
        position += size
        if position > total:
            return f"a box that needs {position} bytes, {total} received"
    return "too many boxes"


def looks_like_image(head: bytes) -> bool:
    """Whether ``head`` starts like a file of a format Autoenhance reads or renders."""
    return any(sniff_matches(ct, head) for ct in set(CONTENT_TYPES.values()))


def _not_an_image(head: bytes) -> str:
    start = head[:16].decode("ascii", "replace").strip()
    return f"the body is not an image (it starts with {start!r})"


def write_verified(
    path: ObjectStoragePath,
    fetch: Callable[[DownloadTarget], Any],
    *,
    token: TempToken | None = None,
    before_rename: Callable[[int, str], None] | None = None,
) -> tuple[int, str]:
    """Download into ``path`` through ``fetch(target)``; only a verified image gets the final name.

    Local files go through a temporary name and an atomic rename. Other storage (S3, GCS…) is
    written under a temporary key per attempt, then moved into place and its size checked: an
    object store has no atomic rename, but the final key is only created by a server-side copy
    of a complete, verified temporary object, so it never holds a partial or bad body. A body
    that breaks off is retried into a fresh temporary object, like a local file.
    """
    target = (
        DownloadTarget(local_path(path), token=token, before_rename=before_rename)
        if is_local(path)
        else StorageTarget(path, token=token, before_rename=before_rename)
    )
    fetch(target)
    return target.written()


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


class FileProof(NamedTuple):
    """What the manifest proves about one name in the folder.

    ``state``: ``absent`` (nothing there), ``symlink`` (never trusted, never followed),
    ``unknown`` (not in the manifest), ``changed`` (in the manifest, but the bytes are not the
    recorded ones) or ``proven`` (the recorded size and SHA-256). ``identity`` is what the
    manifest says the file holds; ``current`` is False when the bytes are the ones the entry
    says were there before its latest write (a kill between recording and renaming).
    """

    state: str
    identity: dict[str, Any] | None = None
    current: bool = False


class Manifest:
    """``.autoenhance-manifest.json``: file name -> what it holds (``identity``), its size and SHA-256.

    A file counts as already downloaded only when the manifest names the same identity (order,
    image, rendering) and the file still has the recorded size and checksum: a name match alone
    proves nothing (a second run into the same folder, a file cut short, someone else's file).

    Each file is recorded *before* it gets its name (with the bytes that were there before, if
    they were this order's) and the manifest is saved at once: a process killed at any moment
    leaves every landed file provable. Saves from the threads of one download are serialised
    and grouped; each save merges the entries this download recorded into what is stored then,
    so entries another writer saved meanwhile are kept.
    """

    VERSION = 1

    def __init__(self, files: dict[str, dict[str, Any]] | None = None) -> None:
        self.files = files or {}
        self._mine: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._generation = 0
        self._saved = 0

    @classmethod
    def load(cls, folder: ObjectStoragePath) -> Manifest:
        path = folder / MANIFEST_NAME
        try:
            if is_local(path) and local_path(path).is_symlink():
                return cls()  # never read through a symlink
            data = json.loads(path.read_bytes()) if path.exists() else {}
        except (OSError, ValueError):
            return cls()  # unreadable: nothing is verified, everything is downloaded again
        files = data.get("files") if isinstance(data, dict) else None
        return cls({k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {})

    def examine(self, folder: ObjectStoragePath, filename: str) -> FileProof:
        """What the manifest proves about ``folder/filename`` (one checksum of the file)."""
        target = folder / filename
        try:
            if is_local(target):
                info = os.lstat(local_path(target))
                if stat.S_ISLNK(info.st_mode):
                    return FileProof("symlink")
                size = info.st_size
            else:
                if not target.exists():
                    return FileProof("absent")
                size = int(target.stat().st_size)
        except FileNotFoundError:
            return FileProof("absent")
        except OSError:
            return FileProof("unknown")
        entry = self.files.get(filename)
        if not isinstance(entry, dict) or not isinstance(entry.get("identity"), dict):
            return FileProof("unknown")
        identity = entry["identity"]
        found_prior = entry.get("prior")
        prior: dict[str, Any] = found_prior if isinstance(found_prior, dict) else {}
        if size not in (_as_int(entry.get("bytes")), _as_int(prior.get("bytes"))):
            return FileProof("changed", identity)
        try:
            digest = sha256_of(target)
        except OSError:
            return FileProof("unknown", identity)
        if digest == entry.get("sha256") and size == _as_int(entry.get("bytes")):
            return FileProof("proven", identity, current=True)
        if prior and digest == prior.get("sha256") and size == _as_int(prior.get("bytes")):
            return FileProof("proven", identity, current=False)
        return FileProof("changed", identity)

    def verifies(self, folder: ObjectStoragePath, filename: str, identity: dict[str, Any]) -> bool:
        """Whether ``folder/filename`` provably holds ``identity`` (the bytes recorded last)."""
        proof = self.examine(folder, filename)
        return proof.state == "proven" and proof.current and proof.identity == identity

    def record(
        self,
        filename: str,
        identity: dict[str, Any],
        size: int,
        digest: str,
        prior: dict[str, Any] | None = None,
    ) -> None:
        """Note what ``filename`` holds (and, with ``prior``, the proven bytes it replaces)."""
        entry: dict[str, Any] = {"identity": identity, "bytes": size, "sha256": digest}
        if prior:
            entry["prior"] = prior
        with self._lock:
            self.files[filename] = self._mine[filename] = entry
            self._generation += 1

    def entry(self, filename: str) -> dict[str, Any] | None:
        found = self.files.get(filename)
        return found if isinstance(found, dict) else None

    def save(self, folder: ObjectStoragePath, token: TempToken | None = None) -> None:
        """Store everything recorded so far (a no-op if a concurrent save already stored it)."""
        with self._lock:
            wanted = self._generation
        with self._save_lock:
            if self._saved >= wanted and self._saved:
                return
            stored = Manifest.load(folder).files
            with self._lock:
                generation = self._generation
                self.files = {**stored, **self.files, **self._mine}
                body = json.dumps({"version": self.VERSION, "files": self.files}, indent=1, sort_keys=True)
            write_bytes_atomically(folder / MANIFEST_NAME, body.encode(), token)
            self._saved = generation


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def sha256_of(path: ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    if is_local(path):
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        handle: IO[bytes] = os.fdopen(os.open(local_path(path), flags), "rb")
    else:
        handle = open_for_reading(path)
    with handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()
