"""The chat port: how the core talks back to people, whatever the chat."""

from __future__ import annotations

from typing import Protocol

from bot.messages import Message
from bot.model import Origin


class ChatAdapter(Protocol):
    name: str  # the `Origin.adapter` and channel prefix it serves: slack, typetalk, local

    async def reply(self, origin: Origin, message: Message) -> None:
        """Post into the thread or reply chain of `origin` (privately when message.private)."""

    async def start_thread(self, origin: Origin, message: Message) -> Origin:
        """Post the head message of a job and return where its progress goes."""

    async def announce(self, channel: str, message: Message) -> Origin:
        """Post a new message in `channel`; return the thread for follow-ups."""

    async def edit(self, posted: Origin, message: Message) -> Origin:
        """Replace the message that `announce` posted (`posted` is what it returned) with
        `message`; a chat that cannot edit posts `message` in that message's thread.
        Return where follow-ups go."""
