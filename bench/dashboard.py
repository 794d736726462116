"""Dashboard benchmark: time to first byte of its pages with 1 M jobs in the store.

.venv/bin/python bench/dashboard.py [--rows 1000000] [--backends sqlite,postgresql] [--runs 20]

For each back end the job table is bulk-loaded as in ``bench/store.py`` (2 % failed,
spread over 30 days), the API is served by uvicorn on a loopback port, an admin
key signs in through the sign-in form, and each page is fetched ``--runs`` times
after one warm-up: median and worst time to the first byte of the answer. The
target is ≤ 100 ms for the jobs page.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

from conveyor import Conveyor, Settings
from conveyor.api import create_app
from conveyor.services import apikeys
from conveyor.store import open_store
from conveyor.testing import embedded_broker, wait_until
from store import bulk_load, database

PAGES = {
    "jobs": "/jobs",
    "jobs, failed": "/jobs?status=failed",
    "jobs, page 2": None,  # the jobs page's own "older" link
    "jobs, last 1h": "/jobs?window=1h",
    "overview": "/",
}
console = Console(width=160)


def first_byte_ms(client: httpx.Client, path: str, runs: int) -> tuple[float, float]:
    """(median, worst) milliseconds to the first byte of ``GET path``."""
    timings = []
    for attempt in range(runs + 1):
        began = time.perf_counter()
        with client.stream("GET", path) as reply:
            chunks = reply.iter_raw()
            next(chunks)
            elapsed = (time.perf_counter() - began) * 1000
            assert reply.status_code == 200, (path, reply.status_code)
            for _ in chunks:
                pass
        if attempt:  # the first is a warm-up
            timings.append(elapsed)
    return statistics.median(timings), max(timings)


def older_link(client: httpx.Client) -> str:
    """The jobs page's link to its next (older) page."""
    html = client.get("/jobs").text
    start = html.index('href="/jobs?cursor=') + len('href="')
    return html[start : html.index('"', start)].replace("&amp;", "&")


def measure(settings: Settings, rows: int, runs: int) -> dict[str, tuple[float, float]]:
    """Load ``rows`` jobs, serve the API, and time each page."""
    store = open_store(settings)
    store.upgrade()
    load_s = bulk_load(store, rows)
    console.print(f"{settings.database_url}: {rows:,} rows loaded in {load_s:.1f}s")
    secret = apikeys.create_key(store.engine, "ops", ["admin"]).secret
    server = uvicorn.Server(
        uvicorn.Config(create_app(Conveyor(settings)), port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30, what="uvicorn started")
    port = server.servers[0].sockets[0].getsockname()[1]
    results = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            signed_in = client.post("/login", data={"api_key": secret, "next": "/jobs"})
            assert signed_in.status_code == 303, signed_in.text
            for name, path in PAGES.items():
                results[name] = first_byte_ms(client, path or older_link(client), runs)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
    return results


def main() -> None:
    """Parse the arguments, measure every back end, print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    table = Table("back end", "rows", "page", "first byte median", "first byte worst")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with embedded_broker(tmp / "broker") as broker_url:
            for backend in args.backends.split(","):
                with database(backend, tmp) as url:
                    settings = Settings(redis_url=broker_url, home=tmp, database_url=url)
                    for name, (median, worst) in measure(settings, args.rows, args.runs).items():
                        table.add_row(
                            backend, f"{args.rows:,}", name, f"{median:.1f} ms", f"{worst:.1f} ms"
                        )
    console.print(table)


if __name__ == "__main__":
    main()
