"""The terminal as a chat: replies and job progress are printed as lines."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.messages import Message, Tone
from bot.model import Origin

_MARKS = {
    Tone.SUCCESS: "✅ ",
    Tone.FAILURE: "❌ ",
    Tone.WARNING: "⚠️  ",
    Tone.PROGRESS: "… ",
    Tone.INFO: "",
}


def member_named(text: str) -> str | None:
    """`as bob` or `as local:bob`: the member id the shell switches to; None for other text."""
    word, _, rest = text.strip().partition(" ")
    if word.lower() != "as":
        return None
    name = rest.strip()
    return name if ":" in name or not name else f"local:{name}"


def render(message: Message) -> str:
    return _MARKS[message.tone] + message.plain()


class ShellChat:
    def __init__(self, out: TextIO | None = None, *, name: str = "local") -> None:
        # `name` other than local: the terminal stands in for a chat that is not connected
        # (the shell shows what would go to Slack channels when no Slack token is set).
        self.name = name
        self._out = out or sys.stdout

    def write(self, text: str, prefix: str = "") -> None:
        for line in text.splitlines() or [""]:
            self._out.write(f"{prefix}{line}\n")
        self._out.flush()

    async def reply(self, origin: Origin, message: Message) -> None:
        prefix = f"[{origin.thread}] " if origin.thread else ""
        private = "(only you can see this) " if message.private else ""
        self.write(private + render(message), prefix)

    async def start_thread(self, origin: Origin, message: Message) -> Origin:
        thread = (
            message.text.split(": job ", 1)[-1].split()[0] if ": job " in message.text else "job"
        )
        return origin.in_thread(f"job {thread}")

    async def announce(self, channel: str, message: Message) -> Origin:
        origin = Origin(adapter=self.name, channel=channel, member="kajitori", thread=channel)
        await self.reply(origin, message)
        return origin

    async def edit(self, posted: Origin, message: Message) -> Origin:
        # A terminal cannot change what it printed: the new version is printed, marked.
        prefix = f"[{posted.thread}] " if posted.thread else ""
        self.write("(updated) " + render(message), prefix)
        return posted
