"""The quota watcher against the sandbox: one post per crossing of 80%, 90% and 100%."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.config import QuotaWatch
from commands.capacity.quota_watch import QuotaWatcher
from tests.capacity.conftest import BotFactory
from tests.capacity.helpers import client
from tests.support.chat import RecordingChat


def watching(data: dict[str, Any]) -> None:
    data["quota_watch"] = {"interval": "1h", "channels": ["local:ops"]}


def announced(chat: RecordingChat) -> list[str]:
    return [p.text for p in chat.posted if p.origin.channel == "local:ops"]


async def launch_t3_medium(bot: Any) -> None:
    ec2 = await client(bot, "ec2")
    await ec2.run_instances(
        LaunchTemplate={"LaunchTemplateName": "web-staging"}, MinCount=1, MaxCount=1
    )


async def test_watcher_posts_once_per_crossing(
    bot_with: BotFactory, sandbox: Any, chat: RecordingChat
) -> None:
    async with bot_with(watching) as bot:
        watcher = bot.quota_watch
        assert watcher is not None
        assert await watcher.check() == []  # 12 of 64 vCPUs

        sandbox.set_quota("ec2", "L-1216C47A", 14)  # 86%
        posted = await watcher.check()
        assert [m.text.splitlines()[0] for m in posted] == [
            "EC2 On-Demand Standard vCPUs in ap-northeast-1 passed 80%: 12 of 14 used "
            "(86%, L-1216C47A)"
        ]
        assert await watcher.check() == []
        assert await watcher.check() == []

        sandbox.set_quota("ec2", "L-1216C47A", 13)  # 92%
        assert [m.text.split(":")[0] for m in await watcher.check()] == [
            "EC2 On-Demand Standard vCPUs in ap-northeast-1 passed 90%"
        ]
        assert await watcher.check() == []

        sandbox.set_quota("ec2", "L-1216C47A", 16)  # 75%: under, but within the hysteresis
        assert await watcher.check() == []
        await launch_t3_medium(bot)  # 14 of 16: still the 80% level, already reported
        assert await watcher.check() == []
        await launch_t3_medium(bot)  # 16 of 16
        assert [m.text.split(":")[0] for m in await watcher.check()] == [
            "EC2 On-Demand Standard vCPUs in ap-northeast-1 passed 100%"
        ]

        sandbox.set_quota("ec2", "L-1216C47A", 64)  # well below: the levels reset
        assert await watcher.check() == []
        sandbox.set_quota("ec2", "L-1216C47A", 18)  # 89%: a new crossing of 80%
        assert [m.text.split(":")[0] for m in await watcher.check()] == [
            "EC2 On-Demand Standard vCPUs in ap-northeast-1 passed 80%"
        ]
        assert len(announced(chat)) == 4
        assert all("L-1216C47A" in text for text in announced(chat))


async def test_a_restarted_or_second_watcher_does_not_repeat_a_post(
    bot_with: BotFactory, sandbox: Any, chat: RecordingChat
) -> None:
    async with bot_with(watching) as bot:
        watch = QuotaWatch(channels=["local:ops"])
        ports = bot.services
        first = QuotaWatcher(bot.services, ports.quotas, watch)
        second = QuotaWatcher(bot.services, ports.quotas, watch)
        sandbox.set_hosted_zone_limit("example.internal.", 9)  # 8 records: 89%
        results = await asyncio.gather(first.check(), second.check())
        assert sorted(len(r) for r in results) == [0, 1]
        restarted = QuotaWatcher(bot.services, ports.quotas, watch)
        assert await restarted.check() == []
        assert announced(chat) == [
            "records in example.internal in Route 53 passed 80%: 8 of 9 used (89%)\n"
            "ask AWS to raise this limit, or free some of it"
        ]
