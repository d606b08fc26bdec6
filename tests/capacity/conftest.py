"""A bot built from the demo config with changes, for tests that need other settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from adapters.bootstrap import Bot, build_bot
from bot.config import Settings, parse_config
from tests.conftest import demo_data
from tests.support.chat import RecordingChat

BotFactory = Callable[[Callable[[dict[str, Any]], None]], AbstractAsyncContextManager[Bot]]


@pytest.fixture
def bot_with(sandbox: Any, chat: RecordingChat) -> BotFactory:
    """`async with bot_with(change) as bot:` where `change` edits the demo config's data."""

    @asynccontextmanager
    async def build(change: Callable[[dict[str, Any]], None]) -> AsyncIterator[Bot]:
        data = demo_data()
        data["store"] = "sqlite://:memory:"
        change(data)
        settings = Settings(aws_endpoint_url=sandbox.url)
        built = await build_bot(parse_config(data), settings, chats=[chat], runner="test")
        try:
            yield built
        finally:
            await built.close()

    return build
