"""Whole bots on a store of the test's choosing: SQLite (a file) or DynamoDB (the sandbox's,
a fresh table per test), and a second bot ("replica") on the same store."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.bootstrap import Bot, build_bot
from bot.config import Settings, parse_config
from bot.polling import Polling
from tests.conftest import demo_data
from tests.support.chat import RecordingChat

REGION = "ap-northeast-1"
BotFactory = Callable[..., Awaitable[Bot]]


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return f"dynamodb://kajitori-guard-{secrets.token_hex(4)}?region={REGION}"


@pytest.fixture
async def make_bot(sandbox: Any) -> AsyncIterator[BotFactory]:
    """Builds bots with the demo config changed by `change` (on the given store); all are
    closed at the end."""
    built: list[Bot] = []

    async def make(
        store: str = "sqlite://:memory:",
        *,
        chat: RecordingChat | None = None,
        change: Callable[[dict[str, Any]], None] | None = None,
        runner: str = "test",
    ) -> Bot:
        data = demo_data()
        data["store"] = store
        if change is not None:
            change(data)
        bot = await build_bot(
            parse_config(data),
            Settings(aws_endpoint_url=sandbox.url),
            chats=[chat or RecordingChat()],
            runner=runner,
            polling=Polling(first=0.05, longest=0.2),
        )
        built.append(bot)
        return bot

    try:
        yield make
    finally:
        for bot in built:
            await bot.close()
