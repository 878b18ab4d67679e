"""The tab's HTML: server-rendered pages, every value escaped, one small script (links to a new tab).

Pure functions of :class:`OrderView` records (no Airflow, no network), so they are cheap to test
and to time. Photos are ``<img loading="lazy">`` elements pointing at the app's own photo route,
sized in the markup (no layout shift while they arrive).
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple

from autoenhance_provider.records import ImageStatus
from autoenhance_provider.ui import FULL_WIDTH, THUMB_WIDTH

#: The order statuses are listed in, errors first ("what needs me" before "what is fine").
STATUS_ORDER = (
    ImageStatus.ERROR,
    ImageStatus.EXPIRED,
    ImageStatus.UNKNOWN,
    ImageStatus.PROCESSING,
    ImageStatus.WAITING,
    ImageStatus.PROCESSED,
)
_RANK = {status.value: rank for rank, status in enumerate(STATUS_ORDER)}
#: Displayed size of a thumbnail (CSS pixels); the image itself is THUMB_WIDTH wide (sharp on 2x screens).
DISPLAY_WIDTH = THUMB_WIDTH // 2
DISPLAY_HEIGHT = DISPLAY_WIDTH * 3 // 4


class ImageView(NamedTuple):
    """One image of an order, as the tab shows it."""

    image_id: str
    name: str
    status: str  # an ImageStatus value
    reason: str | None = None


class OrderView(NamedTuple):
    """One order a run touched: what the API said about it, or why it could not be read."""

    order_id: str
    name: str = ""
    status: str = ""
    web_url: str | None = None
    images: tuple[ImageView, ...] = ()
    tasks: tuple[str, ...] = ()  # which task instances published it ("upload [shoot-a]")
    error: str | None = None  # the order could not be read: the reason, without secrets


#: ``photo_url(image_id, kind, size)`` -> the URL of the app's photo route for this page's run.
PhotoURL = Callable[[str, str, str], str]

_CSS = (
    'body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:12px;color:#1f2328}',
    "h1{font-size:18px;margin:0 0 4px}.summary{color:#59636e;margin:0 0 12px}",
    ".order{border:1px solid #d1d9e0;border-radius:8px;margin:0 0 16px;padding:10px 12px}",
    ".order h2{font-size:16px;margin:0}.meta{color:#59636e;font-size:12px;margin:2px 0 6px}",
    ".counts span{display:inline-block;border-radius:10px;padding:0 8px;margin:0 4px 4px 0;"
    "font-size:12px;background:#eef1f4}",
    ".s-error,.s-expired{background:#ffebe9!important;color:#a40e26}",
    ".s-processed{background:#dafbe1!important;color:#116329}",
    ".s-processing,.s-waiting{background:#fff8c5!important;color:#7d4e00}",
    "table{border-collapse:collapse;width:100%}",
    "td,th{padding:4px 6px;text-align:left;vertical-align:top;border-top:1px solid #eef1f4}",
    "th{font-size:12px;color:#59636e;font-weight:600}",
    "img.thumb{width:WIDTHpx;height:HEIGHTpx;object-fit:contain;background:#f6f8fa;border-radius:4px;"
    "display:block}",
    ".none{width:WIDTHpx;height:HEIGHTpx;display:flex;align-items:center;justify-content:center;"
    "background:#f6f8fa;color:#8c959f;font-size:12px;border-radius:4px}",
    ".status{font-weight:600;border-radius:10px;padding:0 8px}",
    ".reason{color:#a40e26;font-size:12px;max-width:28em;margin-top:4px}.error-row{background:#fffafa}",
    ".problem{color:#a40e26}.empty{color:#59636e;font-size:15px}a{color:#0969da}",
)
STYLE = "".join(_CSS).replace("WIDTH", str(DISPLAY_WIDTH)).replace("HEIGHT", str(DISPLAY_HEIGHT))


#: The page's only script. Airflow shows the tab in a frame sandboxed without ``allow-popups``, so a
#: ``target="_blank"`` link in it does nothing; this opens such links from the Airflow page that
#: holds the frame (same origin), on the user's click. Allowed by its hash in the page's CSP.
NEW_TAB_SCRIPT = (
    'document.addEventListener("click",function(e){'
    'var l=e.target.closest&&e.target.closest("a[data-new-tab]");if(!l)return;'
    'try{var d=window.parent.document,a=d.createElement("a");a.href=l.href;a.target="_blank";'
    'a.rel="noopener noreferrer";d.body.appendChild(a);a.click();a.remove();e.preventDefault();}'
    "catch(x){}});"
)
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(NEW_TAB_SCRIPT.encode()).digest()).decode()


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def sort_images(images: Sequence[ImageView]) -> list[ImageView]:
    """Errors first, then what is still running, then what is done; by name within each."""
    return sorted(images, key=lambda i: (_RANK.get(i.status, 2), i.name.lower(), i.image_id))


def status_counts(images: Sequence[ImageView]) -> list[tuple[str, int]]:
    counts = Counter(i.status for i in images)
    return sorted(counts.items(), key=lambda item: _RANK.get(item[0], 2))


def page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}"
        f"<script>{NEW_TAB_SCRIPT}</script></body></html>\n"
    )


def _photo(image: ImageView, kind: str, photo_url: PhotoURL) -> str:
    status = image.status
    if kind == "original" and status == ImageStatus.WAITING.value:
        return '<div class="none">not uploaded yet</div>'
    if kind == "enhanced" and status != ImageStatus.PROCESSED.value:
        text = {"error": "no enhanced image", "expired": "expired"}.get(status, "not enhanced yet")
        return f'<div class="none">{_e(text)}</div>'
    src = photo_url(image.image_id, kind, "thumb")
    return (
        f'<img class="thumb" src="{_e(src)}" alt="{_e(kind)}: {_e(image.name)}" loading="lazy" '
        f'decoding="async" width="{DISPLAY_WIDTH}" height="{DISPLAY_HEIGHT}">'
    )


def _image_row(image: ImageView, photo_url: PhotoURL) -> str:
    failed = image.status in (ImageStatus.ERROR.value, ImageStatus.EXPIRED.value)
    reason = f'<div class="reason">{_e(image.reason)}</div>' if image.reason else ""
    links = []
    if image.status == ImageStatus.PROCESSED.value:
        full = photo_url(image.image_id, "enhanced", "full")
        links.append(
            f'<a href="{_e(full)}" target="_blank" rel="noopener noreferrer" data-new-tab>'
            f"Full preview ({FULL_WIDTH} px)</a>"
        )
    return (
        f'<tr class="image{" error-row" if failed else ""}" data-image-id="{_e(image.image_id)}" '
        f'data-status="{_e(image.status)}">'
        f'<td>{_e(image.name)}<div class="meta"><small>{_e(image.image_id)}</small></div></td>'
        f'<td><span class="status s-{_e(image.status)}">{_e(image.status)}</span>{reason}</td>'
        f"<td>{_photo(image, 'original', photo_url)}</td><td>{_photo(image, 'enhanced', photo_url)}</td>"
        f"<td>{' '.join(links)}</td></tr>"
    )


def order_card(order: OrderView, photo_url: PhotoURL) -> str:
    """One order: name, id, counts by status, links, and its images (errors first)."""
    title = order.name or order.order_id
    links = (
        f' &middot; <a href="{_e(order.web_url)}" target="_blank" rel="noopener noreferrer" data-new-tab>'
        "Open in Autoenhance</a>"
        if order.web_url
        else ""
    )
    tasks = f" &middot; tasks: {_e(', '.join(order.tasks))}" if order.tasks else ""
    head = (
        f'<h2>{_e(title)}</h2><div class="meta">order <code>{_e(order.order_id)}</code>'
        f"{' &middot; status <b>' + _e(order.status) + '</b>' if order.status else ''}{tasks}{links}</div>"
    )
    if order.error is not None:
        return (
            f'<section class="order" data-order-id="{_e(order.order_id)}">{head}'
            f'<p class="problem">Could not read this order: {_e(order.error)}</p></section>'
        )
    counts = "".join(
        f'<span class="s-{_e(status)}">{_e(status)} {count}</span>'
        for status, count in status_counts(order.images)
    )
    rows = "".join(_image_row(image, photo_url) for image in sort_images(order.images))
    table = (
        "<table><thead><tr><th>Image</th><th>Status</th><th>Original</th><th>Enhanced (preview)</th>"
        f"<th></th></tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else '<p class="empty">No images in this order yet.</p>'
    )
    return (
        f'<section class="order" data-order-id="{_e(order.order_id)}">{head}'
        f'<div class="counts">{len(order.images)} image(s): {counts}</div>{table}</section>'
    )


def run_page(dag_id: str, run_id: str, orders: Sequence[OrderView], photo_url: PhotoURL) -> str:
    """The DAG run's tab: one card per order the run touched."""
    if not orders:
        body = (
            f'<h1>Autoenhance</h1><p class="empty">No Autoenhance order in run <code>{_e(run_id)}</code> '
            "of this DAG (yet): none of its tasks has created or used one.</p>"
        )
        return page(f"Autoenhance - {run_id}", body)
    images = [image for order in orders for image in order.images]
    failed = sum(1 for i in images if i.status in (ImageStatus.ERROR.value, ImageStatus.EXPIRED.value))
    summary = f"{len(orders)} order(s) &middot; {len(images)} image(s)" + (
        f' &middot; <span class="problem">{failed} failed</span>' if failed else ""
    )
    cards = "".join(order_card(order, photo_url) for order in orders)
    body = (
        f"<h1>Autoenhance orders of <code>{_e(dag_id)}</code> / <code>{_e(run_id)}</code></h1>"
        f'<p class="summary">{summary}</p>{cards}'
    )
    return page(f"Autoenhance - {run_id}", body)


def task_page(
    task_label: str, orders: Sequence[OrderView], photo_url: PhotoURL, *, provider_task: bool
) -> str:
    """A task instance's tab: its order (a mapped task's overview: each instance's), or a plain
    sentence saying it has none."""
    if not orders:
        if provider_task:
            text = f"Task <code>{_e(task_label)}</code> has not created or used an Autoenhance order (yet)."
        else:
            text = f"Task <code>{_e(task_label)}</code> is not an Autoenhance task: it has no order."
        return page(f"Autoenhance - {task_label}", f'<h1>Autoenhance</h1><p class="empty">{text}</p>')
    cards = "".join(order_card(order, photo_url) for order in orders)
    title = "Autoenhance order" if len(orders) == 1 else "Autoenhance orders"
    body = f"<h1>{title} of <code>{_e(task_label)}</code></h1>{cards}"
    return page(f"Autoenhance - {task_label}", body)


def message_page(title: str, text: str) -> str:
    return page(title, f'<h1>{_e(title)}</h1><p class="empty">{_e(text)}</p>')
