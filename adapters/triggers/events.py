"""The SQS intake: long-polls each queue an EventBridge rule feeds, hands every message to
the events feature, and deletes a message only once it is done with (posted, a duplicate,
or dropped on purpose). A message whose posting failed stays, and SQS offers it again after
its visibility timeout."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from bot.config import EventsConfig
from bot.ports.events import EventQueue, EventSink, QueuedMessage

log = logging.getLogger(__name__)

_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


class QueuePoller:
    def __init__(self, sink: EventSink, queue: EventQueue, config: EventsConfig) -> None:
        self._sink = sink
        self._queue = queue
        self._config = config
        self.counts: Counter[str] = Counter()
        # Seconds spent per step (receive, handle, delete): where a replica's time goes.
        self.seconds: dict[str, float] = {"receive": 0.0, "handle": 0.0, "delete": 0.0}

    async def run(self) -> None:
        """Poll every queue until cancelled."""
        await asyncio.gather(*(self.poll_forever(url) for url in self._config.queues))

    async def poll_forever(self, url: str) -> None:
        failures = 0
        while True:
            try:
                await self.poll_once(url)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = _BACKOFF[min(failures, len(_BACKOFF) - 1)]
                failures += 1
                log.exception("reading events from %s failed; again in %.0fs", url, delay)
                await asyncio.sleep(delay)

    async def poll_once(self, url: str, *, wait_seconds: int | None = None) -> int:
        """One receive and what follows; returns how many messages came."""
        wait = wait_seconds if wait_seconds is not None else int(self._config.wait.total_seconds())
        started = time.perf_counter()
        messages = await self._queue.receive(
            url,
            max_messages=10,
            wait_seconds=wait,
            visibility_seconds=int(self._config.visibility_timeout.total_seconds()),
        )
        received = time.perf_counter()
        done: list[str] = []
        # One at a time, in the order received: an alarm's ALARM and OK in one batch stay in
        # order.
        for message in messages:
            if await self._take(message):
                done.append(message.receipt)
        await self._sink.flush()
        handled = time.perf_counter()
        if done:
            await self._queue.delete(url, done)
        self.seconds["receive"] += received - started
        self.seconds["handle"] += handled - received
        self.seconds["delete"] += time.perf_counter() - handled
        return len(messages)

    async def _take(self, message: QueuedMessage) -> bool:
        try:
            taken = await self._sink.take(message.body, receive_count=message.receive_count)
        except Exception:
            log.exception("handling message %s from %s failed", message.message_id, message.queue)
            taken = False
        self.counts["done" if taken else "kept"] += 1
        return taken
