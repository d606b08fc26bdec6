"""Slow and greedy clients against the real `kajitori serve` on loopback: a thousand sockets
that each send half a request and hold on, more sockets than the connection cap, and bodies
larger than an endpoint takes. Health checks keep being answered throughout, and the slow
sockets are closed once their time is up."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import demo_data
from tests.support.serve import ServeProcess

SLOW = 1000
HEADERS_CUT = b"POST /webhooks/github HTTP/1.1\r\nHost: kajitori\r\nX-GitHub-Event: rel"
BODY_CUT = (
    b"POST /webhooks/ci/jenkins HTTP/1.1\r\nHost: kajitori\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n" + b'{"service": "api", '
)


@pytest.fixture(autouse=True)
def enough_open_files() -> None:
    """This process holds a thousand sockets besides its own files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * SLOW if hard == resource.RLIM_INFINITY else min(hard, 4 * SLOW)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@contextlib.asynccontextmanager
async def serving(folder: Path, server: dict[str, Any]) -> AsyncIterator[ServeProcess]:
    config = demo_data()
    config.pop("quota_watch", None)
    config["store"] = f"sqlite:///{folder}/state.db"
    config["server"] = server
    # Health needs no AWS; an endpoint nobody answers keeps any call on this machine.
    process = ServeProcess(config, {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, folder)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def healthz(url: str) -> int:
    """One health check on a connection of its own, as a load balancer makes them."""
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=5),
        ) as session,
        session.get(f"{url}/healthz") as response,
    ):
        await response.read()
        return response.status


async def hold(port: int, half: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(half)
    await writer.drain()
    return reader, writer


async def what_the_server_said(reader: asyncio.StreamReader, within: float) -> bytes | None:
    """Everything the server sent until it closed the connection; None if it did not."""
    received = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return received


def still_open(readers: list[asyncio.StreamReader]) -> int:
    return sum(1 for reader in readers if not reader.at_eof())


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@pytest.mark.timeout(180)
async def test_healthz_answers_while_a_thousand_slow_clients_hold_half_requests(
    tmp_path: Path,
) -> None:
    limits = {"header_timeout": "15s", "body_timeout": "15s"}
    async with serving(tmp_path, limits) as server:
        held = [await hold(server.port, HEADERS_CUT if n % 2 else BODY_CUT) for n in range(SLOW)]
        readers = [reader for reader, _ in held]
        writers = [writer for _, writer in held]
        try:
            answers = [await healthz(server.url) for _ in range(5)]
            await asyncio.sleep(0)
            open_while_answered = still_open(readers)

            said = await asyncio.gather(*(what_the_server_said(r, 60) for r in readers))
        finally:
            await close_all(writers)

    assert answers == [200] * 5
    assert open_while_answered == SLOW
    # Every slow socket was closed by the server once its time was up.
    assert [n for n, answer in enumerate(said) if answer is None] == []
    # Half a body: told why. Half the headers: there is no request to answer.
    bodies = [answer for n, answer in enumerate(said) if n % 2 == 0]
    headers = [answer for n, answer in enumerate(said) if n % 2]
    assert all(a is not None and a.startswith(b"HTTP/1.1 408 ") for a in bodies)
    assert all(b"did not arrive within 15 s" in (a or b"") for a in bodies)
    assert set(headers) == {b""}


@pytest.mark.timeout(120)
async def test_past_the_connection_cap_the_oldest_waiting_connection_makes_room(
    tmp_path: Path,
) -> None:
    # Timeouts long enough that only the cap can close anything during the test.
    limits = {"max_connections": 50, "header_timeout": "5m", "body_timeout": "5m"}
    async with serving(tmp_path, limits) as server:
        held = [await hold(server.port, HEADERS_CUT) for _ in range(200)]
        readers = [reader for reader, _ in held]
        writers = [writer for _, writer in held]
        try:
            answers = [await healthz(server.url) for _ in range(5)]
            oldest = await asyncio.gather(*(what_the_server_said(r, 10) for r in readers[:150]))
            newest_open = still_open(readers[-45:])
        finally:
            await close_all(writers)
        log = server.log()

    assert answers == [200] * 5
    assert oldest == [b""] * 150
    assert newest_open == 45
    assert "connection cap (50) reached: closed" in log


async def raw_exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await what_the_server_said(reader, 10)
    finally:
        await close_all([writer])
    assert answer is not None, "the server kept the connection open"
    return answer


async def test_each_endpoint_refuses_a_body_larger_than_it_takes_without_reading_it(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, {"max_body_bytes": 256 * 1024}) as server:
        # Announced as 2 MiB and never sent: answered at once, and the connection ends.
        webhook = await raw_exchange(
            server.port,
            b"POST /webhooks/github HTTP/1.1\r\nHost: k\r\nContent-Length: 2097152\r\n\r\n{",
        )
        health = await raw_exchange(
            server.port,
            b"POST /healthz HTTP/1.1\r\nHost: k\r\nConnection: close\r\nContent-Length: 4096\r\n\r\n"
            + b"x" * 4096,
        )
        chunked = await raw_exchange(
            server.port,
            b"GET /readyz HTTP/1.1\r\nHost: k\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        async with aiohttp.ClientSession() as session:
            big = b'{"pad": "' + b"x" * (300 * 1024) + b'"}'
            async with session.post(f"{server.url}/typetalk/webhook", data=big) as response:
                typetalk = (response.status, await response.json())
        assert await healthz(server.url) == 200

    assert webhook.startswith(b"HTTP/1.1 413 ")
    assert b"body too large: 2097152 bytes, at most 262144 here" in webhook
    assert health.startswith(b"HTTP/1.1 413 ")
    assert b"at most 1024 here" in health
    assert chunked.startswith(b"HTTP/1.1 411 ")
    assert typetalk == (413, {"error": f"body too large: {len(big)} bytes, at most 262144 here"})
