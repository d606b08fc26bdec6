"""One notifier in front of every chat adapter: the core never knows which chat it talks to."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.messages import Message
from bot.model import Origin
from bot.ports.chat import ChatAdapter
from bot.redaction import Redactor

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, redactor: Redactor, adapters: Iterable[ChatAdapter]) -> None:
        self._adapters = {adapter.name: adapter for adapter in adapters}
        self._redactor = redactor

    def with_adapters(self, adapters: Iterable[ChatAdapter]) -> Notifier:
        """A notifier that also speaks through `adapters` (which may use this one)."""
        return Notifier(self._redactor, [*self._adapters.values(), *adapters])

    def adapter_for(self, name: str) -> ChatAdapter | None:
        return self._adapters.get(name)

    def _clean(self, message: Message) -> Message:
        return self._redactor.message(message)

    async def reply(self, origin: Origin, message: Message) -> None:
        adapter = self._adapters.get(origin.adapter)
        if adapter is None:
            log.warning("no chat adapter %r for a reply: %s", origin.adapter, message.text[:80])
            return
        try:
            await adapter.reply(origin, self._clean(message))
        except Exception:
            log.exception("reply through %s failed", origin.adapter)

    async def start_thread(self, origin: Origin, message: Message) -> Origin:
        adapter = self._adapters.get(origin.adapter)
        if adapter is None:
            return origin
        try:
            return await adapter.start_thread(origin, self._clean(message))
        except Exception:
            log.exception("starting a thread through %s failed", origin.adapter)
            return origin

    async def announce(self, channel: str, message: Message) -> Origin | None:
        """Post to `channel` (`slack:C0123`, `typetalk:topic/42`); None if it cannot be reached."""
        name = channel.split(":", 1)[0]
        adapter = self._adapters.get(name)
        if adapter is None:
            log.warning("no chat adapter for channel %s", channel)
            return None
        try:
            return await adapter.announce(channel, self._clean(message))
        except Exception:
            log.exception("announcing in %s failed", channel)
            return None

    async def edit(self, posted: Origin, message: Message) -> bool:
        """Replace an announced message (see `ChatAdapter.edit`); False if it failed."""
        adapter = self._adapters.get(posted.adapter)
        if adapter is None:
            log.warning("no chat adapter %r to edit a message", posted.adapter)
            return False
        try:
            await adapter.edit(posted, self._clean(message))
        except Exception:
            log.exception("editing a message through %s failed", posted.adapter)
            return False
        return True
