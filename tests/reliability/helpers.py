"""The real HTTP server in this process on a loopback port, and a reader for its metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from adapters.bootstrap import Bot, build_web_app
from bot.config import Settings
from bot.jobs.context import JobContext
from bot.messages import Message
from bot.model import JobRecord, Origin
from bot.plan import Plan

ALICE = Origin(adapter="local", channel="local", member="local:alice")


@contextlib.asynccontextmanager
async def serving(
    bot: Bot, settings: Settings | None = None, *, app: web.Application | None = None
) -> AsyncIterator[str]:
    """`app` (by default the bot's whole web application) on a free loopback port."""
    app = app or build_web_app(bot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition, by name and labels."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def start_job(
    bot: Bot, run: Callable[[JobContext], Awaitable[Message]], title: str = "test job"
) -> JobRecord:
    """A job through the real job manager, with a body of the test's own."""
    return await bot.jobs.start(
        Plan(title=title, changes=[], run=run, kind="test", state={}),
        origin=ALICE,
        command="jobs",
    )
