"""The "Autoenhance" tab: how long a DAG run's tab with 50 images takes to show, first and then cached.

Everything is real except the browser: a DAG run (``dag.test()`` on SQLite) uploads 50 photos to
the sandbox (its own process) and waits until they are enhanced; Airflow's own API server app
(``create_app(apps="all")``, the tab's plugin from the package's entry point, SimpleAuthManager)
is served by uvicorn in a second process. This process stands in for the browser: signed in with a
JWT, it gets the tab's page, then every thumbnail the page names (50 originals and 50 enhanced
previews), six at a time like a browser's connections to one host. Each request is authenticated
and authorised and checks the run's XComs, as in production. The first view fills the tab's
cache from the API; the views after it are served from the cache (the sandbox counts no request).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _common as c

c.isolated_airflow_home()

IMAGES, CACHED_VIEWS, CONNECTIONS = 50, 7, 6
DAG_ID = "bench_ui_tab"
DAG_FILE = textwrap.dedent(
    f"""
    import os

    import pendulum
    from airflow.sdk import DAG

    from autoenhance_provider.operators.order import CreateOrderOperator
    from autoenhance_provider.operators.upload import UploadImagesOperator
    from autoenhance_provider.sensors.autoenhance import OrderProcessedSensor

    with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        order = CreateOrderOperator(task_id="create_order", name="Bench listing")
        upload = UploadImagesOperator(
            task_id="upload", order_id=order.output, source=os.environ["BENCH_UI_PHOTOS"], max_concurrency=8
        )
        wait = OrderProcessedSensor(task_id="wait", order_id=order.output, poke_interval=0.5, mode="poke")
        order >> upload >> wait
    """
)


def serve(port: int) -> int:
    """In the server process: run the DAG once, then serve the API server app until killed."""
    import uvicorn

    sys.path.insert(0, str(c.REPO / "tests"))
    from airflow.api_fastapi.app import create_app

    from example_dags_support import dag_bag

    bag = dag_bag(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]))
    run = bag.get_dag(DAG_ID).test()
    print(f"RUN {json.dumps({'run_id': run.run_id, 'state': str(run.state)})}", flush=True)
    uvicorn.run(create_app(apps="all"), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


def make_photos(folder: Path, count: int) -> None:
    samples = sorted((c.REPO / "dags" / "sample_photos" / "listing-42").glob("*.jpg"))
    for index in range(count):
        shutil.copy(samples[index % len(samples)], folder / f"room-{index + 1:03d}.jpg")


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--serve":
        return serve(int(sys.argv[2]))
    args = c.parse_args(__doc__.splitlines()[0], argv)
    import requests

    from free_ports import free_port

    images = 5 if args.tiny else IMAGES
    views = 2 if args.tiny else CACHED_VIEWS
    home = Path(os.environ["AIRFLOW_HOME"])
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    dags, photos = work / "dags", work / "photos"
    dags.mkdir()
    photos.mkdir()
    (dags / "bench_ui_dag.py").write_text(DAG_FILE)
    make_photos(photos, images)
    password = "bench-ui-admin"
    (home / "bench-ui-passwords.json").write_text(json.dumps({"admin": password}))
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(work / "plugins"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "bench-ui-passwords.json"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "BENCH_UI_PHOTOS": str(photos),
    }
    port = free_port()
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    with c.sandbox_process(processing_seconds=1.0) as sandbox:
        conn = {"conn_type": "autoenhance", "host": sandbox.base_url, "password": c.BENCH_KEY}
        env["AIRFLOW_CONN_AUTOENHANCE_DEFAULT"] = json.dumps(conn)
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=env)
        log_path = work / "server.log"
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            session = requests.Session()
            session.trust_env = False
            deadline = time.monotonic() + 600
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
                try:
                    if session.get(f"{base}/api/v2/monitor/health", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the API server did not start")
                time.sleep(0.5)
            run_line = next(x for x in log_path.read_text().splitlines() if x.startswith("RUN "))
            run_id = json.loads(run_line[4:])["run_id"]
            token = session.post(
                f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            page_url = f"{base}/autoenhance-ui/run"
            params = {"dag_id": DAG_ID, "run_id": run_id}
            sessions = [requests.Session() for _ in range(CONNECTIONS)]
            for s in sessions:
                s.trust_env = False
                s.headers.update(headers)

            def view() -> tuple[float, int]:
                """The page, then every thumbnail it names (CONNECTIONS at a time); seconds, photos."""
                start = time.perf_counter()
                page = sessions[0].get(page_url, params=params, timeout=60)
                page.raise_for_status()
                sources = [
                    html.unescape(s) for s in re.findall(r'<img class="thumb" src="([^"]+)"', page.text)
                ]

                def fetch(item: tuple[int, str]) -> int:
                    index, src = item
                    response = sessions[index % CONNECTIONS].get(f"{base}/autoenhance-ui/{src}", timeout=60)
                    response.raise_for_status()
                    return len(response.content)

                with ThreadPoolExecutor(CONNECTIONS) as pool:
                    sizes = list(pool.map(fetch, enumerate(sources)))
                assert all(sizes)
                return time.perf_counter() - start, len(sources)

            before = c.request_counts(c.admin(sandbox.base_url, "stats"))
            first, shown = view()
            middle = c.request_counts(c.admin(sandbox.base_url, "stats"))
            cached = [view()[0] for _ in range(views)]
            after = c.request_counts(c.admin(sandbox.base_url, "stats"))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            shutil.rmtree(work, ignore_errors=True)
    first_calls = sum(c.diff_counts(middle, before).values())
    # Photo downloads only: the page itself reads the order again once its 15 s cache is older.
    cached_calls = sum(v for k, v in c.diff_counts(after, middle).items() if "/v3/images/" in k)
    warm = c.median(cached)
    raw.update(first=first, cached=cached, shown=shown, first_calls=first_calls, cached_calls=cached_calls)
    section = "UI tab"
    label = f"{images} images: page + {shown} thumbnails, {CONNECTIONS} at a time"
    rows.append(c.row(section, f"{label}, cached (median of {views})", f"{warm:.2f} s", "< 1 s", warm < 1.0))
    rows.append(c.row(section, f"{label}, first view (fetched from the API)", f"{first:.2f} s"))
    rows.append(
        c.row(
            section,
            "API requests: first view / photo requests per cached view",
            f"{first_calls} / {cached_calls / views:.0f}",
            "0 when cached",
            cached_calls == 0,
        )
    )
    return c.finish(args, rows, raw)


if __name__ == "__main__":
    sys.path.insert(0, str(c.REPO / "tests"))
    raise SystemExit(main())
