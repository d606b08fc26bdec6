"""The status line of a job's head message, kept current while the job runs.

Progress can come faster than Slack lets one message be edited (about once a second), so
progress updates are coalesced: the newest line wins and is sent at most once per interval.
The final line is sent at once and always after any progress update still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.messages import Message

log = logging.getLogger(__name__)

# (channel id, head message ts, head message, the status line as it is when sent)
SendStatus = Callable[[str, str, Message, Callable[[], str]], Awaitable[None]]


@dataclass
class _Head:
    message: Message
    line: str = ""
    sent_at: float = float("-inf")
    flush: asyncio.Task[None] | None = None
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)
    sent_line: str | None = None

    def newest(self) -> str:
        """The line to send, read as late as possible: the newest state wins."""
        self.sent_line = self.line
        return self.line


class StatusLines:
    def __init__(self, send: SendStatus, min_interval: float = 1.0) -> None:
        self._send = send
        self._interval = min_interval
        self._heads: dict[tuple[str, str], _Head] = {}

    def progress(self, channel: str, ts: str, head: Message, line: str) -> None:
        key = (channel, ts)
        state = self._heads.get(key)
        if state is None:
            state = self._heads[key] = _Head(message=head)
        state.line = line
        if state.flush is None or state.flush.done():
            state.flush = asyncio.create_task(self._flush(key, state), name=f"slack-status-{ts}")

    async def final(self, channel: str, ts: str, head: Message, line: str) -> None:
        state = self._heads.pop((channel, ts), None)
        if state is not None and state.flush is not None and not state.flush.done():
            state.flush.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.flush
        await self._deliver(channel, ts, head, lambda: line)

    async def close(self) -> None:
        heads, self._heads = list(self._heads.values()), {}
        for head in heads:
            if head.flush is not None and not head.flush.done():
                head.flush.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await head.flush

    async def _flush(self, key: tuple[str, str], head: _Head) -> None:
        while True:
            wait = head.sent_at + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            async with head.sending:
                await self._deliver(key[0], key[1], head.message, head.newest)
                head.sent_at = time.monotonic()
            if head.line == head.sent_line:
                return

    async def _deliver(self, channel: str, ts: str, head: Message, line: Callable[[], str]) -> None:
        try:
            await self._send(channel, ts, head, line)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("updating the status line of message %s in %s failed", ts, channel)
