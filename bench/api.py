"""HTTP API benchmark: ``POST /jobs`` throughput and latency, and progress → SSE delay.

One API process (``conveyor api``, auth on, rate limit off) on a private embedded
Valkey; this process is the load generator (64 concurrent keep-alive clients on
a minimal HTTP/1.1 client on uvloop, so the client is not the bottleneck).

    .venv/bin/python bench/api.py --clients 64 --seconds 10

``POST /jobs`` is measured twice: closed loop (each client sends its next request
when the last is answered: the most the server does, and by Little's law 64
clients at a p99 under 50 ms need well over 1,280 req/s) and open loop (requests
sent at ``--rate`` per second whatever the answers, latency counted from when
each was due: what users at that rate see). The last part runs one worker and
follows ``diag.sleep`` jobs (one progress report every ``--step-ms``) with SSE
clients; the delay is the SSE client's receive time minus the event's ``ts``,
stamped in the worker when ``ctx.progress()`` ran. ``--parts`` picks parts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from conveyor import Settings
from conveyor.services import apikeys
from conveyor.store import open_store
from conveyor.testing import WorkerProcess, embedded_broker, wait_until

T = TypeVar("T")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0–1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client(
    port: int,
    request: bytes,
    stop_at: float,
    latencies: list[float],
    statuses: dict[int, int],
    interval: float | None = None,
    offset: float = 0.0,
) -> None:
    """One keep-alive connection: back-to-back requests, or one per ``interval`` (open loop).

    In the open loop a request's latency counts from when it was due, not when it
    was sent, so a slow server is not hidden by a client that waited for it.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    due = time.perf_counter() + offset
    try:
        while time.perf_counter() < stop_at:
            if interval is not None:
                pause = due - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                started = due
                due += interval
            else:
                started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def submit_load(
    port: int, key: str, clients: int, seconds: float, rate: float | None = None
) -> dict[str, float]:
    """``clients`` connections posting ``diag.noop`` jobs for ``seconds``.

    ``rate`` None: closed loop (each client sends its next request when the last is
    answered: the most the server does). A rate: open loop, ``rate`` requests per
    second spread evenly over the clients.
    """
    body = json.dumps({"type": "diag.noop", "payload": {}}).encode()
    request = (
        f"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    begin = time.perf_counter()
    stop_at = begin + seconds
    interval = None if rate is None else clients / rate
    await asyncio.gather(
        *(
            _client(
                port,
                request,
                stop_at,
                latencies,
                statuses,
                interval,
                0.0 if interval is None else interval * i / clients,
            )
            for i in range(clients)
        )
    )
    elapsed = time.perf_counter() - begin
    return {
        "requests": len(latencies),
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * pct(latencies, 0.50),
        "p99_ms": 1000 * pct(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
        "non_202": sum(n for s, n in statuses.items() if s != 202),
    }


async def _follow(url: str, key: str, delays: list[float]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(timeout=120) as http,
        http.stream("GET", url, headers=headers) as reply,
    ):
        async for line in reply.aiter_lines():
            if not line.startswith("data:"):
                continue
            now = time.time()
            event = json.loads(line[5:])
            if event.get("type") == "progress":
                delays.append(now - event["ts"])


async def sse_delay(
    base: str, key: str, jobs: int, followers: int, steps: int, step_ms: float
) -> dict[str, float]:
    """Submit ``jobs`` progress-reporting jobs, follow each with ``followers`` SSE clients."""
    delays: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        ids = []
        for _ in range(jobs):
            reply = await http.post(
                "/api/v1/jobs",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "type": "diag.sleep",
                    "payload": {"seconds": steps * step_ms / 1000, "steps": steps},
                },
            )
            ids.append(reply.json()["id"])
    await asyncio.gather(
        *(
            _follow(f"{base}/api/v1/jobs/{job_id}/events", key, delays)
            for job_id in ids
            for _ in range(followers)
        )
    )
    return {
        "events": len(delays),
        "p50_ms": 1000 * statistics.median(delays),
        "p99_ms": 1000 * pct(delays, 0.99),
        "max_ms": 1000 * max(delays),
    }


def main() -> None:
    """Start the broker and the API, run both measurements, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1500.0, help="open-loop offered load")
    parser.add_argument(
        "--parts", default="closed,open,sse", help="comma-separated: closed, open, sse"
    )
    parser.add_argument("--sse-jobs", type=int, default=2)
    parser.add_argument("--sse-followers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--step-ms", type=float, default=25.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="conveyor-bench-api-"))
    with embedded_broker(home / "broker") as url:
        settings = Settings(redis_url=url, home=home)
        store = open_store(settings)
        store.upgrade()
        key = apikeys.create_key(store.engine, "bench", ["submit", "read"]).secret
        port = free_port()
        env = dict(
            os.environ,
            REDIS_URL=url,
            CONVEYOR_HOME=str(home),
            CONVEYOR_API_RATE_LIMIT="off",
        )
        log = open(home / "api.log", "wb")  # noqa: SIM115 - closed below
        api = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "api", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _up(base), timeout=60, what="API up")
            # Warm up (imports, connection pools), then measure.
            _run(submit_load(port, key, args.clients, 2.0))
            proc = psutil.Process(api.pid)
            parts = set(args.parts.split(","))
            if "closed" in parts:
                closed = _with_cpu(proc, lambda: submit_load(port, key, args.clients, args.seconds))
                print(json.dumps({"post_jobs_closed_loop": closed}, indent=2), flush=True)
            if "open" in parts:
                offered = _with_cpu(
                    proc, lambda: submit_load(port, key, args.clients, args.seconds, args.rate)
                )
                label = f"post_jobs_at_{args.rate:g}_per_s"
                print(json.dumps({label: offered}, indent=2), flush=True)
            if "sse" not in parts:
                return
            with WorkerProcess(
                url, profile="processing", concurrency=2, env={"CONVEYOR_HOME": str(home)}
            ):
                # The submit test left a backlog of noops: drop it so progress jobs start now.
                import redis

                client = redis.Redis.from_url(url)
                client.delete("processing")
                client.close()
                delay = _run(
                    sse_delay(
                        base, key, args.sse_jobs, args.sse_followers, args.steps, args.step_ms
                    )
                )
            print(json.dumps({"progress_to_sse": delay}, indent=2), flush=True)
        finally:
            api.terminate()
            api.wait(timeout=15)
            log.close()
            store.close()


def _with_cpu(
    proc: psutil.Process, run: Callable[[], Coroutine[Any, Any, dict[str, float]]]
) -> dict[str, float]:
    """Run a load and add the API process's CPU time per request (noise-robust capacity)."""
    before = proc.cpu_times()
    load_before = os.getloadavg()[0]
    figures = _run(run())
    after = proc.cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    figures["api_cpu_ms_per_request"] = 1000 * cpu / max(1, figures["requests"])
    figures["machine_load_avg_1m"] = max(load_before, os.getloadavg()[0])
    return figures


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop where it is installed (a cheaper client), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
