"""The quota watcher: on an interval, read every limit `limits` shows and post to the
configured channels when a usage crosses a threshold (80%, 90%, 100%) - once per crossing.

The level last reported per limit is kept in the store, written with a conditional swap, so
that a restart does not repeat a post and two replicas watching together post it once."""

from __future__ import annotations

import asyncio
import logging

from bot.config import QuotaWatch
from bot.messages import Message, Tone
from bot.ports.capacity import ROUTE53_SCOPE, LimitUsage, QuotaPort
from bot.services import Services
from commands.capacity.sizing import crossed_level, number

log = logging.getLogger(__name__)

_KEY = "quota-watch/"


def crossing_message(row: LimitUsage, level: int) -> Message:
    code = f", {row.code}" if row.code else ""
    where = "Route 53" if row.scope == ROUTE53_SCOPE else row.scope
    text = (
        f"{row.name} in {where} passed {level}%: {number(row.used)} of "
        f"{number(row.limit)} used ({row.percent:.0f}%{code})"
    )
    hint = (
        f"ask AWS to raise {row.code} in Service Quotas before the next scale out"
        if row.code
        else "ask AWS to raise this limit, or free some of it"
    )
    return Message(text=f"{text}\n{hint}", tone=Tone.FAILURE if level >= 100 else Tone.WARNING)


class QuotaWatcher:
    def __init__(
        self, services: Services, quotas: QuotaPort, watch: QuotaWatch, *, hysteresis: float = 5.0
    ) -> None:
        self._services = services
        self._quotas = quotas
        self._watch = watch
        self._hysteresis = hysteresis

    async def check(self) -> list[Message]:
        """Read the limits once; post and return a message for each new crossing."""
        store = self._services.store
        thresholds = sorted(self._watch.thresholds)
        envs = self._services.config.environments.values()
        report = await self._quotas.limits([env.scope for env in envs])
        for failure in report.failures:
            log.warning("quota watch could not read %s", failure)
        posted: list[Message] = []
        for row in sorted(report.rows, key=lambda r: r.key):
            key = _KEY + row.key
            stored = await store.get_value(key)
            previous = int(stored) if stored and stored.isdigit() else 0
            level = crossed_level(row.percent, thresholds, previous, hysteresis=self._hysteresis)
            if level == previous:
                continue
            if not await store.swap_value(key, stored, str(level)):
                continue  # another replica recorded this change first, and posts it
            if level > previous:
                message = crossing_message(row, level)
                await asyncio.gather(
                    *(self._services.chat.announce(c, message) for c in self._watch.channels)
                )
                posted.append(message)
        return posted

    async def run(self) -> None:
        interval = self._watch.interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except Exception:
                log.exception("the quota check failed; trying again in %ss", number(interval))
