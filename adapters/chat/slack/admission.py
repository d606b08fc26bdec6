"""Acknowledgements first: the work behind Slack's requests waits for the acknowledgements.

Acknowledging is cheap and has a deadline: Slack gives up after 3 seconds and retries,
which only adds load. The work behind a request (the store, AWS, posting the answer) is not
cheap. So new work starts only while no request is waiting for its acknowledgement, or once
it has waited `patience` seconds (it never starves), and at most `limit` at a time, in the
order it came. A slot is held until the work ends or for `hold` seconds, whichever comes
first, so that a slow command (an SQL query, opening a tunnel) never keeps quick ones
waiting for long. Waiters are admitted one by one, never woken all at once.

The work waiting is bounded too: each piece holds its request until it runs, and
acknowledging costs less than the work, so a stream of requests faster than the work would
otherwise grow without end. Once `backlog` pieces wait or run, or a new piece would wait
`max_wait` seconds or more (the oldest waiting piece has waited that long, or, at the pace
work has been starting over the last few seconds, the pieces waiting ahead would take that
long to start), a slash command is refused in its acknowledgement, with the reason, instead
of waiting (`has_room`). A burst the work catches up with in seconds is taken on whole.
Past that bound, a member with no work waiting or running is still taken on, and waits their
turn: one member's flood cannot get everyone else's commands refused (the work beyond the
bound is at most one piece per member).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator

# How far back the pace at which work starts is measured, and how much of it must be seen
# before it counts (a burst from idle is taken on before any pace is known).
PACE_WINDOW = 5.0
PACE_SEEN = 1.0


class Admission:
    def __init__(
        self,
        limit: int = 8,
        hold: float = 1.0,
        patience: float = 2.0,
        backlog: int = 10_000,
        max_wait: float = 10.0,
    ) -> None:
        self._limit = limit
        self._backlog = backlog
        self._max_wait = max_wait
        # Pieces of work inside `slot()`: waiting for it or running.
        self._pending = 0
        self._hold = hold
        self._patience = patience
        self._busy = 0
        self._acknowledging = 0
        self._waiting: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        # When recent pieces of work started (within PACE_WINDOW).
        self._started: deque[float] = deque()
        # Pieces of work waiting or running, by the member who asked for them.
        self._members: Counter[str] = Counter()

    @contextlib.contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Around the handling of one incoming request, until its acknowledgement is ready."""
        self._acknowledging += 1
        try:
            yield
        finally:
            self._acknowledging -= 1
            if self._acknowledging == 0 and self._waiting:
                self._admit()

    def has_room(self, member: str | None = None) -> bool:
        """Fewer than `backlog` pieces of work wait or run, and one more would not wait
        `max_wait` seconds: none has waited that long, and at the pace work started lately
        those ahead would not take that long either. Or else `member` has no work waiting or
        running."""
        return self._within_bounds() or (member is not None and not self._members[member])

    def _within_bounds(self) -> bool:
        if self._pending >= self._backlog:
            return False
        if not self._waiting:
            return True
        now = asyncio.get_running_loop().time()
        queued_at = self._waiting[0][0] - self._patience
        if now - queued_at >= self._max_wait:
            return False
        pace = self._pace(now)
        return pace is None or len(self._waiting) < pace * self._max_wait

    def _note_start(self, now: float) -> None:
        self._started.append(now)
        self._forget_starts(now)

    def _forget_starts(self, now: float) -> None:
        while self._started and self._started[0] < now - PACE_WINDOW:
            self._started.popleft()

    def _pace(self, now: float) -> float | None:
        """Pieces of work started a second, lately; None until enough has been seen."""
        self._forget_starts(now)
        started = self._started
        if not started or now - started[0] < PACE_SEEN:
            return None
        return len(started) / (now - started[0])

    @property
    def pending(self) -> int:
        return self._pending

    @contextlib.asynccontextmanager
    async def slot(self, member: str | None = None) -> AsyncIterator[None]:
        """Wait for a turn, then hold it while the work runs; `member`: who asked for it."""
        self._pending += 1
        if member is not None:
            self._members[member] += 1
        try:
            async with self._held():
                yield
        finally:
            self._pending -= 1
            if member is not None:
                self._members[member] -= 1
                if not self._members[member]:
                    del self._members[member]

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        await self._enter()
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self._busy -= 1
                self._admit()

        timer = asyncio.get_running_loop().call_later(self._hold, give_back)
        try:
            yield
        finally:
            timer.cancel()
            give_back()

    async def _enter(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._waiting and self._busy < self._limit and self._acknowledging == 0:
            self._busy += 1
            self._note_start(loop.time())
            return
        admitted: asyncio.Future[None] = loop.create_future()
        self._waiting.append((loop.time() + self._patience, admitted))
        self._admit()
        try:
            await admitted
        except asyncio.CancelledError:
            if admitted.done() and not admitted.cancelled():
                # Admitted, then cancelled before it could start: the slot goes to the next.
                self._busy -= 1
                self._admit()
            raise

    def _admit(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._waiting and self._busy < self._limit:
            deadline, admitted = self._waiting[0]
            if admitted.done():  # cancelled while it waited
                self._waiting.popleft()
                continue
            if self._acknowledging and deadline > now:
                break
            self._waiting.popleft()
            self._busy += 1
            self._note_start(now)
            admitted.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiting and self._busy < self._limit:
            # Held back by acknowledgements only: admit the oldest when its patience runs out.
            self._timer = loop.call_at(self._waiting[0][0], self._admit)
