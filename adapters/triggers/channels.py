"""Where a trigger's words go: the threads its announcement started in its channels.

A trigger (`github:acme/api`, `ci:jenkins`) has no chat of its own. The threads of its
announcement travel in its origin, so that what is said to it (a job's progress and result)
lands under that announcement, in Slack, Typetalk or both.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

from bot.config import Config
from bot.messages import Message
from bot.model import Origin
from bot.notifier import Notifier

_THREADS = "threads"


def threads_of(origin: Origin) -> list[Origin]:
    raw = origin.extra.get(_THREADS)
    if not raw:
        return []
    return [Origin.model_validate(item) for item in json.loads(raw)]


def trigger_origin(member: str, threads: Iterable[Origin]) -> Origin:
    """A trigger as the member who typed the command, in its own channel (its member id)."""
    source = member.split(":", 1)[0]
    dumped = json.dumps([t.model_dump(mode="json") for t in threads])
    return Origin(adapter=source, channel=member, member=member, extra={_THREADS: dumped})


class TriggerChannels:
    """The chat port for a trigger's origin: whatever is said to the trigger goes to the
    threads its announcement started in the trigger's channels (Slack, Typetalk or both)."""

    def __init__(self, name: str, notifier: Notifier, config: Config) -> None:
        self.name = name
        self._notifier = notifier
        self._config = config

    async def reply(self, origin: Origin, message: Message) -> None:
        await asyncio.gather(*(self._notifier.reply(t, message) for t in threads_of(origin)))

    async def start_thread(self, origin: Origin, message: Message) -> Origin:
        await self.reply(origin, message)
        return origin

    async def edit(self, posted: Origin, message: Message) -> Origin:
        await asyncio.gather(*(self._notifier.edit(t, message) for t in threads_of(posted)))
        return posted

    async def announce(self, channel: str, message: Message) -> Origin:
        """`channel` is a trigger's own (`ci:jenkins`): say it in all that trigger's channels."""
        triggers = [t for t in self._config.triggers if t.member == channel]
        if not triggers:
            raise ValueError(f"no trigger acts as {channel}")
        channels = list(dict.fromkeys(c for t in triggers for c in t.channels))
        threads = await announce_in(self._notifier, channels, message)
        return trigger_origin(channel, threads)


async def announce_in(notifier: Notifier, channels: list[str], message: Message) -> list[Origin]:
    announced = await asyncio.gather(*(notifier.announce(c, message) for c in channels))
    return [thread for thread in announced if thread is not None]
