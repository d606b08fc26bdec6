"""The arithmetic of capacity: quota headroom before a scale out, spreading new instances over
availability zones, which instances go first on a scale in, and when a usage crosses a
threshold. No AWS here; `bot/scaling.py` and the commands feed it what the ports return."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bot.errors import OperationFailed, Refused
from bot.polling import Polling
from bot.ports.capacity import (
    Instance,
    Quota,
)


def counted(count: int, noun: str) -> str:
    """`1 instance`, `13 instances`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def some_ids(ids: Sequence[str], shown: int = 3) -> str:
    """A few ids by name, a long list as its count: `i-1, i-2` or `13 instances (i-1 … i-9)`."""
    if len(ids) <= shown:
        return ", ".join(ids)
    return f"{counted(len(ids), 'instance')} ({ids[0]} … {ids[-1]})"


def state_counts(states: Sequence[str], noun: str = "instance") -> str:
    """`13 instances: 11 running, 2 pending`."""
    order: dict[str, int] = {}
    for state in states:
        order[state] = order.get(state, 0) + 1
    parts = ", ".join(f"{n} {state}" for state, n in order.items())
    return f"{counted(len(states), noun)}: {parts}" if parts else counted(0, noun)


def number(value: float) -> str:
    """64.0 -> `64`, 0.25 -> `0.25`."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Headroom:
    quota: Quota
    used: float

    @property
    def free(self) -> float:
        return max(self.quota.value - self.used, 0.0)

    def describe(self, unit: str) -> str:
        default = "" if self.quota.applied else ", AWS default"
        return (
            f"{number(self.used)} of {number(self.quota.value)} {unit} in use "
            f"({self.quota.code}{default})"
        )


def check_headroom(needed: float, headroom: Headroom, unit: str, region: str) -> str:
    """Refuse when `needed` does not fit; else the line a dry run shows."""
    if needed > headroom.free:
        raise Refused(
            f"needs {number(needed)} {unit}, {number(headroom.free)} free of "
            f"{number(headroom.quota.value)} ({headroom.quota.code}) in {region}",
            hint=f"ask AWS to raise {headroom.quota.code} ({headroom.quota.name}) "
            f"in Service Quotas, or free some {unit} first",
        )
    return (
        f"quota: needs {number(needed)} {unit}, {number(headroom.free)} free of "
        f"{number(headroom.quota.value)} ({headroom.quota.code}) in {region}"
    )


def spread(
    subnet_zones: dict[str, str], existing: Sequence[Instance], count: int
) -> dict[str, int]:
    """How many new instances go to each subnet: always to the least used availability
    zone, then the least used subnet in it, so a fleet stays balanced across zones."""
    if not subnet_zones:
        return {}
    per_subnet = Counter(i.subnet_id for i in existing if i.subnet_id in subnet_zones)
    per_zone = Counter(i.availability_zone for i in existing if i.subnet_id in subnet_zones)
    placed: Counter[str] = Counter()
    order = sorted(subnet_zones)
    for _ in range(count):
        subnet = min(
            order,
            key=lambda s: (per_zone[subnet_zones[s]], per_subnet[s], order.index(s)),
        )
        placed[subnet] += 1
        per_subnet[subnet] += 1
        per_zone[subnet_zones[subnet]] += 1
    return dict(placed)


def newest_first(instances: Sequence[Instance], count: int) -> list[Instance]:
    """The instances a scale in removes: the newest, so the long-serving ones stay."""
    return sorted(instances, key=lambda i: (i.launched_at, i.id), reverse=True)[:count]


def crossed_level(
    percent: float, thresholds: Sequence[int], previous: int, *, hysteresis: float = 5.0
) -> int:
    """The threshold level a usage is at, given the level last reported.

    Going up, the level is the highest threshold reached. Going down, a level is kept until
    the usage is `hysteresis` points below it, so a usage that wavers around 80% is
    reported once, not on every check."""
    reached = max((t for t in thresholds if percent >= t), default=0)
    if reached >= previous:
        return reached
    return max((t for t in thresholds if percent + hysteresis >= t and t <= previous), default=0)


T = TypeVar("T")


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    timeout: float,
    poll: Polling,
) -> T:
    """Call `check` until it returns something other than None; OperationFailed after
    `timeout` seconds, naming `what` was being waited for."""
    deadline = time.monotonic() + timeout
    delays = poll.delays()
    attempt = 0
    while True:
        result = await check()
        if result is not None:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            raise OperationFailed(f"gave up waiting for {what} after {number(round(timeout))}s")
        await asyncio.sleep(min(delays[min(attempt, len(delays) - 1)], left))
        attempt += 1
