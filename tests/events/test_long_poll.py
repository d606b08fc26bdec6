"""A long poll of SQS that gets no answer in time is routine: one warning, no traceback, no
message lost; and SQS's clients wait longer than the longest long poll."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from adapters.aws.clients import AwsClients
from adapters.aws.events import SqsEventQueue

REGION = "ap-northeast-1"
QUEUE = f"https://sqs.{REGION}.amazonaws.com/123456789012/kajitori-events"


@pytest.fixture
async def silent_sqs() -> AsyncIterator[str]:
    """An endpoint that takes requests and never answers them."""
    answered = asyncio.Event()

    async def never(_request: web.Request) -> web.Response:
        await answered.wait()
        return web.Response(status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", never)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        answered.set()
        await runner.cleanup()


async def test_an_unanswered_long_poll_is_one_warning_without_traceback(
    silent_sqs: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    clients = AwsClients(endpoint_url=silent_sqs, max_attempts=1, long_poll_read_timeout=0.3)
    queue = SqsEventQueue(clients, REGION)
    try:
        with caplog.at_level(logging.WARNING):
            messages = await queue.receive(
                QUEUE, max_messages=10, wait_seconds=0, visibility_seconds=30
            )
    finally:
        await clients.close()
    assert messages == []
    warnings = [r for r in caplog.records if r.name == "adapters.aws.events"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING and warnings[0].exc_info is None
    assert "kajitori-events" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_sqs_clients_wait_longer_than_the_longest_long_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    clients = AwsClients(endpoint_url="http://127.0.0.1:9")
    try:
        sqs = await clients.client("sqs", REGION)
        ecs = await clients.client("ecs", REGION)
        # SQS answers a long poll after up to 20 s when no message comes.
        assert sqs.meta.config.read_timeout >= 20 + 10
        assert ecs.meta.config.read_timeout == 20
    finally:
        await clients.close()
