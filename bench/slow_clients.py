"""How fast `/healthz` answers while 1,000 slow clients hold connections open.

    .venv/bin/python bench/slow_clients.py [--slow 1000] [--requests 300] [--wait 40]

Starts the real `kajitori serve` (the demo config, SQLite store, no AWS needed for health)
and measures `GET /healthz` on a fresh connection each time: first with nothing else open,
then while `--slow` sockets are held, each having sent half a request and nothing more
(half of them stop inside the headers, half after the headers and half the body, on the
Slack, Typetalk and webhook paths). It then waits up to `--wait` seconds and counts how
many of the slow sockets the server has closed. Prints one JSON object: latency p50, p99
and max in milliseconds for both phases, failures, and the closed count with the time it
took.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from tests.conftest import demo_data
from tests.support.serve import ServeProcess

HALF_REQUESTS = (
    # Inside the headers: no blank line ever comes.
    b"POST /slack/events HTTP/1.1\r\nHost: kajitori\r\nContent-Type: application/x-www-form",
    b"GET /healthz HTTP/1.1\r\nHost: kajitori\r\nUser-Agent: slow",
    # Headers sent, then half the body announced.
    b"POST /webhooks/ci/jenkins HTTP/1.1\r\nHost: kajitori\r\nContent-Length: 1000\r\n"
    b"Content-Type: application/json\r\n\r\n" + b'{"service": "api", ' + b" " * 480,
    b"POST /typetalk/webhook?token=x HTTP/1.1\r\nHost: kajitori\r\nContent-Length: 800\r\n"
    b"Content-Type: application/json\r\n\r\n{",
)


async def healthz_latencies(url: str, count: int) -> tuple[list[float], int]:
    """`count` requests one after the other, each on its own new connection."""
    latencies: list[float] = []
    failures = 0
    timeout = aiohttp.ClientTimeout(total=10)
    for _ in range(count):
        started = time.perf_counter()
        try:
            connector = aiohttp.TCPConnector(force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.get(f"{url}/healthz") as response,
            ):
                await response.read()
                if response.status != 200:
                    failures += 1
                    continue
        except (aiohttp.ClientError, TimeoutError):
            failures += 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, failures


def summary(latencies: list[float], failures: int) -> dict[str, Any]:
    if not latencies:
        return {"answered": 0, "failures": failures}
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "answered": len(ordered),
        "failures": failures,
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(ordered[-1], 2),
    }


async def count_closed(readers: list[asyncio.StreamReader], wait: float) -> tuple[int, float]:
    """How many of the slow sockets the server closed within `wait` seconds, and when the
    last one went."""
    started = time.perf_counter()
    last = 0.0

    async def one(reader: asyncio.StreamReader) -> bool:
        nonlocal last
        try:
            async with asyncio.timeout(wait):
                while await reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        last = max(last, time.perf_counter() - started)
        return True

    closed = await asyncio.gather(*(one(r) for r in readers))
    return sum(closed), last


async def main(args: argparse.Namespace) -> dict[str, Any]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if args.server_files:
        # The server starts as a service manager would start it (systemd's default soft
        # limit is 1024); it may raise its own limit up to the hard one.
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.server_files, hard))
    config = demo_data()
    config.pop("quota_watch", None)
    with tempfile.TemporaryDirectory(prefix="kajitori-slow-") as folder:
        config["store"] = f"sqlite:///{folder}/state.db"
        # No AWS is needed for health; an endpoint nobody answers keeps every call local.
        env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_DEFAULT_REGION": "ap-northeast-1"}
        serve = ServeProcess(config, env, Path(folder))
        await serve.start()
        # This process holds the slow sockets: it may open as many files as it can.
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        try:
            await healthz_latencies(serve.url, 20)  # warm up
            idle = await healthz_latencies(serve.url, args.requests)
            readers: list[asyncio.StreamReader] = []
            writers: list[asyncio.StreamWriter] = []
            opened = time.perf_counter()
            for index in range(args.slow):
                reader, writer = await asyncio.open_connection("127.0.0.1", serve.port)
                writer.write(HALF_REQUESTS[index % len(HALF_REQUESTS)])
                readers.append(reader)
                writers.append(writer)
            await asyncio.gather(*(w.drain() for w in writers), return_exceptions=True)
            opening = time.perf_counter() - opened
            held = await healthz_latencies(serve.url, args.requests)
            closed, last = await count_closed(readers, args.wait)
            for writer in writers:
                writer.close()
            for writer in writers:
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        finally:
            await serve.stop()
    return {
        "slow_connections": args.slow,
        "opening_seconds": round(opening, 2),
        "healthz_idle": summary(*idle),
        "healthz_with_slow_connections": summary(*held),
        "slow_closed_by_server": closed,
        "seconds_until_last_closed": round(last, 1),
        "wait_seconds": args.wait,
    }


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--slow", type=int, default=1000)
    cli.add_argument("--requests", type=int, default=300)
    cli.add_argument("--wait", type=float, default=40.0)
    cli.add_argument(
        "--server-files",
        type=int,
        default=0,
        help="the soft limit on open files the server starts with (default: as inherited)",
    )
    print(json.dumps(asyncio.run(main(cli.parse_args())), indent=2))
