"""Bots that read the sandbox's event queue (the demo's rule, queue and alarms), posting to
a recording chat: staging's events to `local:staging`, production's to `local:production`,
the rest to `local:other`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import boto3
import pytest

from adapters.bootstrap import Bot, build_bot
from bot.clock import Clock
from bot.config import Config, Settings, parse_config
from bot.polling import Polling
from bot.ports.store import Store
from tests.conftest import demo_data
from tests.support.chat import Posted, RecordingChat

REGION = "ap-northeast-1"


def events_data(**events: Any) -> dict[str, Any]:
    data = demo_data()
    data["store"] = "sqlite://:memory:"
    data["environments"]["staging"]["channel"] = "local:staging"
    data["environments"]["production"]["channel"] = "local:production"
    data["events"].update(
        {
            "default_channel": "local:other",
            "wait": "1s",
            "remediate": [
                {
                    "alarm": f"api-5xx-{env}",
                    "suggest": [f"scale out api {env} +2", f"rollback api {env}"],
                }
                for env in ("staging", "production")
            ],
        }
    )
    data["events"].update(events)
    return data


def events_config(**events: Any) -> Config:
    return parse_config(events_data(**events))


def client(sandbox: Any, service: str, region: str = REGION) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=sandbox.url)


BotMaker = Callable[..., Any]


@pytest.fixture
async def make_bot(sandbox: Any) -> AsyncIterator[BotMaker]:
    built: list[Bot] = []

    async def make(
        config: Config | None = None,
        chat: RecordingChat | None = None,
        *,
        runner: str = "events-test",
        store: Store | None = None,
        clock: Clock | None = None,
    ) -> Bot:
        bot = await build_bot(
            config or events_config(),
            Settings(aws_endpoint_url=sandbox.url, aws_region=REGION),
            chats=[chat or RecordingChat()],
            runner=runner,
            store=store,
            clock=clock,
            polling=Polling(first=0.05, longest=0.5),
        )
        built.append(bot)
        return bot

    yield make
    for bot in built:
        await bot.close()


def in_channel(channel: str, needle: str) -> Callable[[list[Posted]], bool]:
    return lambda posted: any(p.origin.channel == channel and needle in p.text for p in posted)
