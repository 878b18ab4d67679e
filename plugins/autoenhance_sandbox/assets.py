"""The asset host: signed asset tokens, lazy merges and a render cache on disk.

A download endpoint answers 302 to ``/_assets/<token>``; the token is self-describing and
HMAC-signed (image id, endpoint kind, render spec), so nothing is stored per download and tokens
survive a restart. Renders are computed in worker threads on first fetch and cached under
``renders/`` keyed by (image, processing generation, spec); identical concurrent requests share
one computation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse

from autoenhance_sandbox.errors import S3Error
from autoenhance_sandbox.render import FORMATS, RenderSpec, merge_average, render
from autoenhance_sandbox.state import AssetRef, SandboxState


class AssetService:
    """Issues and serves asset tokens for one :class:`SandboxState`."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._secret = hashlib.sha256(b"assets\x00" + state.config.api_key.encode()).digest()
        self._inflight: dict[str, asyncio.Future[None]] = {}

    # -- tokens --------------------------------------------------------------------------------

    def make_token(self, ref: AssetRef) -> str:
        payload: dict[str, Any] = {"i": ref.image_id, "k": ref.kind}
        if ref.spec is not None:
            s = ref.spec
            payload["s"] = [s.enhance, s.preview, s.watermark, s.format, s.quality, s.max_width, s.scale]
        raw = (
            base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
        )
        return f"{raw}.{self._sign(raw)}"

    def _sign(self, raw: str) -> str:
        return hmac.new(self._secret, raw.encode(), hashlib.sha256).hexdigest()[:32]

    def read_token(self, token: str) -> AssetRef:
        raw, _, signature = token.partition(".")
        if not signature or not hmac.compare_digest(signature, self._sign(raw)):
            raise S3Error(403, "AccessDenied", "Invalid or tampered asset URL.")
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        spec = RenderSpec(*data["s"]) if "s" in data else None
        return AssetRef(data["i"], data["k"], spec)

    # -- serving -------------------------------------------------------------------------------

    async def serve(self, token: str) -> FileResponse:
        """Resolve, merge/render if needed (cached), count the download, stream the file."""
        ref = self.read_token(token)
        source = self.state.asset_source(ref.image_id)
        path = source.path
        if path is None:
            assert source.merge_inputs is not None
            assert source.merge_target is not None
            target = source.merge_target
            path = self.state.root / target
            await self._once(
                f"merge:{target}",
                self._produce,
                path,
                lambda tmp: merge_average([str(p) for p in source.merge_inputs or []], tmp),
            )
            self.state.set_merged_path(ref.image_id, target)
        media_type = source.media_type
        stem = source.image_name.rsplit(".", 1)[0] or "image"
        filename = source.image_name
        if ref.spec is not None:
            spec = ref.spec
            _, media_type, ext = FORMATS[spec.format]
            key = hashlib.sha256(
                f"{ref.image_id}|{source.generation}|{path.name}|{spec.cache_key()}".encode()
            )
            rendered = self.state.root / "renders" / f"{key.hexdigest()[:40]}.{ext}"
            source_path = str(path)
            await self._once(
                f"render:{rendered.name}", self._produce, rendered, lambda tmp: render(source_path, tmp, spec)
            )
            path = rendered
            filename = f"{stem}.{ext}"
        self.state.count_download(ref.kind)
        return FileResponse(
            path,
            media_type=media_type,
            headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}"},
        )

    async def _produce(self, destination: Path, build: Callable[[str], None]) -> None:
        """Run ``build(tmp_path)`` in a thread unless ``destination`` exists; publish atomically."""
        if destination.exists():
            return
        tmp = self.state.blobs.temp_path(destination.suffix)

        def work() -> None:
            try:
                build(str(tmp))
                destination.parent.mkdir(parents=True, exist_ok=True)
                tmp.replace(destination)
            finally:
                tmp.unlink(missing_ok=True)

        try:
            await run_in_threadpool(work)
        except (OSError, ValueError, SyntaxError) as exc:
            raise S3Error(500, "InternalError", f"The sandbox could not render this asset: {exc}") from exc

    async def _once(self, key: str, func: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Share one in-flight computation among identical concurrent requests."""
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(func(*args))
            self._inflight[key] = future
            future.add_done_callback(lambda _: self._inflight.pop(key, None))
        await asyncio.shield(future)
