"""Memory: upload and download one big file through AutoenhanceHook; peak RSS must stay flat.

Each measurement runs in a fresh child process: it imports the provider, warms the hook up with
a small transfer, resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), transfers the
file and reports ``VmHWM`` (peak RSS) minus the RSS at the reset. The upload source is a sparse
file (zeros, no disk space); the download is the same object fetched back as ``original`` into a
file. The sandbox runs in its own process and streams both ways to disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import _common as c

c.isolated_airflow_home()

MIB = 1024 * 1024
SIZES = (64 * MIB, 256 * MIB, 1024 * MIB)
TARGET_MIB = 64


def reset_peak() -> int:
    """Reset VmHWM to the current RSS (Linux >= 4.0); returns the RSS in KiB."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return c.proc_status_kib("VmRSS")


def child(direction: str, size: int, order_id: str, image_id: str | None, workdir: Path) -> dict[str, Any]:
    from autoenhance_provider.hooks.autoenhance import AutoenhanceHook

    hook = AutoenhanceHook(retry_limit=0)
    warm = workdir / f"warm-{uuid.uuid4().hex[:6]}.jpg"
    warm.write_bytes(c.jpeg_of_size(64 * 1024))
    created = hook.create_image(warm.name, order_id=order_id, content_type="image/jpeg")
    hook.upload_file(created["upload_url"], warm, "image/jpeg")
    hook.download_image(created["image_id"], workdir / "warm-back.jpg", kind="original")
    result: dict[str, Any] = {"warm_image_id": created["image_id"]}
    if direction == "upload":
        source = workdir / f"big-{uuid.uuid4().hex[:6]}.png"
        with source.open("wb") as handle:
            # starts like a PNG (downloads are verified as images; a bad PNG header fails fast in
            # the sandbox's image probe, where a JPEG marker scan would read the whole GiB)
            handle.write(b"\x89PNG\r\n\x1a\n")
            handle.truncate(size)  # sparse: the rest reads as zeros and takes no disk space
        created = hook.create_image(source.name, order_id=order_id, content_type="image/png")
        base = reset_peak()
        start = time.perf_counter()
        hook.upload_file(created["upload_url"], source, "image/png")
        result["image_id"] = created["image_id"]
    else:
        assert image_id
        target = workdir / "big-download.bin"
        base = reset_peak()
        start = time.perf_counter()
        info = hook.download_image(image_id, target, kind="original")
        assert info["bytes"] == size == target.stat().st_size, (info, size)
        target.unlink()
    seconds = time.perf_counter() - start
    peak = c.proc_status_kib("VmHWM")
    hook.close()
    result.update(growth_kib=peak - base, base_kib=base, peak_kib=peak, seconds=seconds)
    return result


def run_child(
    direction: str, size: int, order_id: str, image_id: str | None, workdir: Path
) -> dict[str, Any]:
    command = [c.python(), __file__, "--child", direction, str(size), order_id, image_id or "-", str(workdir)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=dict(os.environ), timeout=900, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{direction} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv)
    sizes = (8 * MIB,) if args.tiny else SIZES
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="autoenhance-bench-memory-") as tmp,
        c.sandbox_process(processing_seconds=3600) as sandbox,
    ):
        c.point_connection_at(sandbox.base_url)
        order_id = c.admin(sandbox.base_url, "seed", {"orders": 1, "images_per_order": 0})["order_ids"][0]
        for size in sizes:
            up = run_child("upload", size, order_id, None, Path(tmp))
            down = run_child("download", size, order_id, up["image_id"], Path(tmp))
            raw[str(size)] = {"upload": up, "download": down}
            for direction, data in (("upload", up), ("download", down)):
                growth = data["growth_kib"] / 1024
                print(f"  {direction} {size // MIB} MiB: +{growth:.1f} MiB", file=sys.stderr, flush=True)
                rows.append(
                    c.row(
                        "memory (peak RSS growth)",
                        f"{direction} {size // MIB} MiB through the hook",
                        f"+{growth:.1f} MiB ({size / 1e6 / data['seconds']:.0f} MB/s)",
                        f"<= {TARGET_MIB} MiB",
                        growth <= TARGET_MIB,
                    )
                )
            # Free the sandbox's disk before the next size.
            import requests

            for image_id in (up["image_id"], up["warm_image_id"], down["warm_image_id"]):
                requests.delete(
                    f"{sandbox.base_url}/v3/images/{image_id}", headers={"x-api-key": c.BENCH_KEY}, timeout=60
                )
    return c.finish(args, rows, raw)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, direction, size, order_id, image_id, workdir = sys.argv
        out = child(direction, int(size), order_id, None if image_id == "-" else image_id, Path(workdir))
        print(json.dumps(out), flush=True)
        raise SystemExit(0)
    raise SystemExit(main())
