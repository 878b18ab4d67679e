"""The fake S3: presigned PUT URLs, signature checks, streamed blob files, asset host names.

Blobs are files under ``<root>/uploads``; derived files (merged brackets, rendered downloads)
live under ``<root>/derived`` and ``<root>/renders``. Request bodies are streamed to disk chunk by
chunk, so a 1 GiB upload needs no more memory than a 1 KiB one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from urllib.parse import quote, urlencode

from autoenhance_sandbox.errors import S3Error

BRACKET_CONTENT_TYPE = "application/octet-stream"
URL_EXPIRES_SECONDS = 3600
ACCESS_KEY_ID = "SANDBOXACCESSKEY"
REGION = "us-east-1"
_SUBDIRS = ("uploads", "derived", "renders", "tmp")


def signing_secret(api_key: str) -> bytes:
    """Derived from the API key so URLs stay valid across a restart with the same key."""
    return hashlib.sha256(b"autoenhance-sandbox-signing\x00" + api_key.encode()).digest()


def public_base_url(scheme: str, host_header: str | None, override: str | None) -> str:
    """Base URL of the storage/asset host: deliberately a *different host name* than the API's.

    ``127.0.0.1:P`` becomes ``localhost:P`` and vice versa, so clients that follow redirects
    cross an origin boundary exactly as they do in production (API -> S3).
    """
    if override:
        return override
    host = (host_header or "127.0.0.1").strip()
    name, sep, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not sep:
        name, port = host, ""
    swapped = {"127.0.0.1": "localhost", "localhost": "127.0.0.1", "[::1]": "localhost"}.get(
        name.lower(), name
    )
    return f"{scheme}://{swapped}{':' + port if port else ''}"


class BlobStore:
    """Files on disk plus the signing secret for presigned URLs."""

    def __init__(self, root: Path, secret: bytes) -> None:
        self.root = root
        self._secret = secret
        for sub in _SUBDIRS:
            (root / sub).mkdir(parents=True, exist_ok=True)

    # -- presigned URLs -----------------------------------------------------------------------

    def _signature(self, object_key: str, content_type: str, amz_date: str, expires: str, signed: str) -> str:
        string_to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, expires, "PUT", object_key, signed, content_type]
        )
        return hmac.new(self._secret, string_to_sign.encode(), hashlib.sha256).hexdigest()

    def presign_put(self, base_url: str, object_key: str, content_type: str | None, now: float) -> str:
        """An S3-looking presigned PUT URL; ``content_type`` None = any Content-Type accepted."""
        stamp = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)
        amz_date = stamp.strftime("%Y%m%dT%H%M%SZ")
        signed = "content-type;host" if content_type else "host"
        expires = str(URL_EXPIRES_SECONDS)
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{ACCESS_KEY_ID}/{stamp:%Y%m%d}/{REGION}/s3/aws4_request",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": signed,
            "X-Amz-Signature": self._signature(object_key, content_type or "", amz_date, expires, signed),
        }
        return f"{base_url}/_storage/{quote(object_key, safe='/')}?{urlencode(query)}"

    def verify_put(
        self,
        object_key: str,
        query: Mapping[str, str],
        signed_content_type: str | None,
        request_content_type: str | None,
        now: float,
    ) -> None:
        """Raise S3's 403s for a missing/invalid/expired signature or a Content-Type mismatch."""
        required = (
            "X-Amz-Algorithm",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
        )
        if any(not query.get(name) for name in required):
            raise S3Error(403, "AccessDenied", "Query-string authentication requires the X-Amz-* parameters.")
        amz_date, expires, signed = query["X-Amz-Date"], query["X-Amz-Expires"], query["X-Amz-SignedHeaders"]
        expected_ct = signed_content_type if "content-type" in signed.split(";") else None
        expected = self._signature(object_key, expected_ct or "", amz_date, expires, signed)
        if signed not in ("host", "content-type;host") or not hmac.compare_digest(
            expected, query["X-Amz-Signature"]
        ):
            raise S3Error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                SandboxHint="The URL's query string was altered or belongs to another upload.",
            )
        try:
            issued = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
            expired = now > issued.timestamp() + int(expires)
        except ValueError:
            expired = True
        if expired:
            raise S3Error(403, "AccessDenied", "Request has expired")
        if expected_ct is not None and _norm_ct(request_content_type) != _norm_ct(expected_ct):
            raise S3Error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                SandboxHint=(
                    f"The URL was signed for Content-Type {expected_ct!r} but the request sent "
                    f"{request_content_type!r}."
                ),
            )

    # -- files --------------------------------------------------------------------------------

    def path(self, relative: str) -> Path:
        return self.root / relative

    async def receive(self, chunks: AsyncIterator[bytes]) -> tuple[Path, int, str]:
        """Stream a request body into a temp file; return (path, size, md5 hex) for the ETag."""
        tmp = self.root / "tmp" / uuid.uuid4().hex
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with tmp.open("wb") as handle:
                async for chunk in chunks:
                    if chunk:
                        handle.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, size, digest.hexdigest()

    def commit(self, tmp: Path, relative: str) -> None:
        """Atomically move a received file into place (overwrites, like S3)."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)

    def write_bytes(self, relative: str, data: bytes) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp" / uuid.uuid4().hex
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def remove(self, relative: str | None) -> None:
        if relative:
            (self.root / relative).unlink(missing_ok=True)

    def temp_path(self, suffix: str = "") -> Path:
        return self.root / "tmp" / (uuid.uuid4().hex + suffix)

    def clear(self) -> None:
        """Delete every blob (reset)."""
        for sub in _SUBDIRS:
            shutil.rmtree(self.root / sub, ignore_errors=True)
            (self.root / sub).mkdir(parents=True, exist_ok=True)


def _norm_ct(value: str | None) -> str:
    return (value or "").strip().lower().replace(" ", "")


def upload_relative_path(object_key: str) -> str:
    """File name for an object key (hashed, so client-chosen names never touch the file system)."""
    return "uploads/" + hashlib.sha256(object_key.encode()).hexdigest()[:40]
