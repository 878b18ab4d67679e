"""The download manifest: which file in a folder holds which image, proven by size and SHA-256."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from typing import IO, Any, NamedTuple

from airflow.sdk import ObjectStoragePath

from autoenhance_provider.files.storage import (
    TempToken,
    is_local,
    local_path,
    open_for_reading,
    write_bytes_atomically,
)

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
