"""A chat adapter for in-process tests: it records every message the bot posts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from bot.messages import Message
from bot.model import Origin


@dataclass
class Posted:
    origin: Origin
    message: Message

    @property
    def text(self) -> str:
        return self.message.plain()


class RecordingChat:
    name = "local"

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        # Messages replaced by `edit`, newest last: (the announced thread, the new message).
        self.edits: list[Posted] = []
        self._changed = asyncio.Event()
        self._threads = 0

    def _add(self, origin: Origin, message: Message) -> None:
        self.posted.append(Posted(origin, message))
        self._changed.set()

    async def reply(self, origin: Origin, message: Message) -> None:
        self._add(origin, message)

    async def start_thread(self, origin: Origin, message: Message) -> Origin:
        self._threads += 1
        thread = origin.in_thread(f"t{self._threads}")
        self._add(thread, message)
        return thread

    async def announce(self, channel: str, message: Message) -> Origin:
        self._threads += 1
        origin = Origin(
            adapter=self.name, channel=channel, member="kajitori", thread=f"t{self._threads}"
        )
        self._add(origin, message)
        return origin

    async def edit(self, posted: Origin, message: Message) -> Origin:
        self.edits.append(Posted(posted, message))
        self._changed.set()
        return posted

    def texts(self, thread: str | None = None) -> list[str]:
        return [p.text for p in self.posted if thread is None or p.origin.thread == thread]

    async def wait_for(
        self, predicate: Callable[[list[Posted]], bool], timeout: float = 30.0
    ) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.posted):
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_edit(
        self, predicate: Callable[[list[Posted]], bool], timeout: float = 30.0
    ) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.edits):
                self._changed.clear()
                await self._changed.wait()
