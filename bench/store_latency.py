"""Latency of each store operation: SQLite (a file in WAL mode) and DynamoDB (the sandbox's,
over HTTP on loopback, in its own process so that it does not share this one's GIL).

    .venv/bin/python bench/store_latency.py [--rounds 300] [--concurrency 20]

Per operation: p50, p95 and p99 in milliseconds, one call at a time; then the same calls
`--concurrency` at a time, with the throughput. Against real DynamoDB add the network
round trip to the region (about 1-5 ms inside it); the numbers here are the client's and
the emulator's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.store.dynamodb import DynamoStore  # noqa: E402
from adapters.store.sqlite import SqliteStore  # noqa: E402
from bot.model import (  # noqa: E402
    ApprovalRequest,
    AuditRecord,
    JobRecord,
    LockRecord,
    Origin,
    RequestKind,
    RequestStatus,
)
from bot.ports.store import Store  # noqa: E402

ORIGIN = Origin(adapter="slack", channel="slack:C0DEMO", member="slack:U1", thread="1.2")
Operation = Callable[[Store, int], Awaitable[object]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def sandbox_process() -> AsyncIterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.cli",
        "sandbox",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            while b"AWS_ENDPOINT_URL" not in await process.stdout.readline():
                pass
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


def job(job_id: int) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        id=job_id,
        command="deploy api staging v2",
        title="deploy api v2 to staging",
        member="slack:U1",
        origin=ORIGIN,
        threads=[ORIGIN],
        created_at=now,
        updated_at=now,
        runner="bench",
        lease_expires=now + timedelta(minutes=2),
        state={"step": "watching", "deployment": "ecs-svc/1234567890"},
    )


def request(request_id: int) -> ApprovalRequest:
    now = datetime.now(UTC)
    return ApprovalRequest(
        id=request_id,
        kind=RequestKind.APPROVAL,
        command="deploy api production v2",
        member="slack:U1",
        origin=ORIGIN,
        env="production",
        summary="deploy api v2 to production",
        created_at=now,
        expires_at=now + timedelta(minutes=30),
    )


async def acquire_and_release(store: Store, n: int) -> None:
    now = datetime.now(UTC)
    lock = LockRecord(
        key=f"svc{n}/staging",
        owner="slack:U1",
        token=secrets.token_hex(8),
        acquired_at=now,
        expires_at=now + timedelta(minutes=2),
    )
    await store.acquire_lock(lock, now)
    await store.release_lock(lock.key, lock.token)


OPERATIONS: dict[str, Operation] = {
    "ping": lambda store, n: store.ping(),
    "first_seen (new id)": lambda store, n: store.first_seen(
        f"slack:Ev{n}-{secrets.token_hex(4)}", datetime.now(UTC) + timedelta(hours=1)
    ),
    "first_seen (retry)": lambda store, n: store.first_seen(
        "slack:EvRetry", datetime.now(UTC) + timedelta(hours=1)
    ),
    "add_audit": lambda store, n: store.add_audit(
        AuditRecord(
            at=datetime.now(UTC),
            member="slack:U1",
            channel="slack:C0DEMO",
            text="status api staging",
            outcome="ok",
        )
    ),
    "next_id": lambda store, n: store.next_id("bench"),
    "put_job": lambda store, n: store.put_job(job(n)),
    "get_job": lambda store, n: store.get_job(n),
    "claim_job (renew)": lambda store, n: store.claim_job(
        n, "bench", datetime.now(UTC) + timedelta(minutes=2), datetime.now(UTC)
    ),
    "acquire+release lock": acquire_and_release,
    "put_request": lambda store, n: store.put_request(request(n)),
    "decide_request": lambda store, n: store.decide_request(
        n, RequestStatus.APPROVED, "slack:U2", datetime.now(UTC)
    ),
    "list_audit (20)": lambda store, n: store.list_audit(20),
    "list_jobs (20)": lambda store, n: store.list_jobs(20),
    "list_jobs running": lambda store, n: store.list_jobs(20, running_only=True),
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(store: Store, rounds: int, concurrency: int) -> list[str]:
    rows = []
    for name, operation in OPERATIONS.items():
        await operation(store, 0)  # warm up
        timings = []
        for n in range(1, rounds + 1):
            started = time.perf_counter()
            await operation(store, n)
            timings.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        for batch in range(0, rounds, concurrency):
            await asyncio.gather(
                *(
                    operation(store, rounds + n)
                    for n in range(batch, min(rounds, batch + concurrency))
                )
            )
        throughput = rounds / (time.perf_counter() - started)
        rows.append(
            f"  {name:<22} p50 {statistics.median(timings):6.2f}  p95 {percentile(timings, 0.95):6.2f}"
            f"  p99 {percentile(timings, 0.99):6.2f} ms   {throughput:7.0f} ops/s at {concurrency}"
        )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

    with tempfile.TemporaryDirectory() as folder:
        sqlite = await SqliteStore.open(str(Path(folder) / "state.db"))
        try:
            print("SQLite (file, WAL):")
            print("\n".join(await measure(sqlite, args.rounds, args.concurrency)))
        finally:
            await sqlite.close()

    async with sandbox_process() as url:
        started = time.perf_counter()
        dynamo = await DynamoStore.open("kajitori-bench", region="ap-northeast-1", endpoint_url=url)
        print(
            f"DynamoDB (sandbox over HTTP; open + create table {time.perf_counter() - started:.2f} s):"
        )
        try:
            print("\n".join(await measure(dynamo, args.rounds, args.concurrency)))
        finally:
            await dynamo.close()


if __name__ == "__main__":
    asyncio.run(main())
