"""In-memory model of orders, images and brackets, and their processing timeline.

**Timeline.** Nothing ticks: every state change stores timestamps (``started_at``, ``finish_at``,
``visible_at``, ``merge_until``) and statuses are derived from the wall clock when read. That
makes 10,000 seeded orders cost nothing while idle. Only webhooks and persistence need a
background task (:mod:`autoenhance_sandbox.background`), which sleeps until the next due event.

**Image status.** ``waiting`` until the bytes are uploaded; ``processing`` for
``processing_seconds`` after each complete PUT (or reprocess); then ``processed``, or ``error``
with ``status_reason`` when the upload was not a decodable image (decided at PUT time).

**Order status rule** (derived from the order's visible, live images): ``processing`` while the
order is merging or any image is processing; else ``waiting`` if it has no images or any image is
still waiting for its upload; else ``processed`` if every image is processed; else ``error``.
``is_processing`` is true while any image is processing.

**Bracket grouping** for ``/process`` and ``/merge``: only uploaded brackets take part, in the
order of their first completed upload. Modes: ``images[].bracket_ids`` (manual),
``number_of_brackets_per_image`` = N (consecutive chunks of N), or automatic: consecutive brackets
whose names share a *stem* form a group, where the stem is the name without its extension and
without a short trailing bracket index (``kitchen_1.jpg``, ``kitchen-2.jpg``, ``kitchen (3).jpg``,
``kitchen_ev+2.jpg`` -> ``kitchen``; 3+-digit camera counters such as ``IMG_0001`` are *not*
indices). If that finds no multi-bracket group at all, brackets are grouped in threes (the
recommended -2/0/+2 EV set). Each group becomes one image named after its first bracket, which
appears after ``merge_seconds`` (``is_merging`` is true until then) and then processes like an
upload. Its pixels are the average of the group's brackets, computed on first download.

**409s:** a client-chosen ``order_id``/``image_id`` that is already live; ``/process``/``/merge``
while the order is merging or once it has (live) images; downloads of ``enhanced``/``preview``/
``watermark`` for an image that is not ``processed``, and of ``original`` before its bytes exist.
"""

from __future__ import annotations

from autoenhance_sandbox.state.brackets import BracketsMixin, auto_group, bracket_stem
from autoenhance_sandbox.state.downloads import DownloadsMixin
from autoenhance_sandbox.state.images import ImagesMixin
from autoenhance_sandbox.state.model import (
    AssetRef,
    AssetSource,
    Blob,
    Bracket,
    Image,
    Order,
    UploadSlot,
    iso,
    order_status,
)
from autoenhance_sandbox.state.orders import OrdersMixin
from autoenhance_sandbox.state.seeding import SeedingMixin
from autoenhance_sandbox.state.snapshots import SnapshotsMixin
from autoenhance_sandbox.state.uploads import UploadsMixin
from autoenhance_sandbox.state.webhooks import WebhooksMixin

__all__ = [
    "AssetRef",
    "AssetSource",
    "Blob",
    "Bracket",
    "Image",
    "Order",
    "SandboxState",
    "UploadSlot",
    "auto_group",
    "bracket_stem",
    "iso",
    "order_status",
]


class SandboxState(
    OrdersMixin,
    ImagesMixin,
    BracketsMixin,
    UploadsMixin,
    DownloadsMixin,
    SeedingMixin,
    WebhooksMixin,
    SnapshotsMixin,
):
    """All sandbox state; each resource's behaviour lives in its own mixin module (see above)."""
