"""What a running job can do: report progress in its threads, keep durable state, say its id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from bot.errors import KajitoriError
from bot.messages import Message, Tone
from bot.model import JobRecord, JobStatus, Origin
from bot.services import Services

log = logging.getLogger(__name__)


class JobInterrupted(KajitoriError):
    """A job taken over from a replica that stopped cannot go on safely: it ends
    `interrupted`, and the message says what was done and what was not."""


class JobCancelled(KajitoriError):
    """A job stopped because a member cancelled it; the message says where things stand."""


T = TypeVar("T")


class JobLost(Exception):
    """This replica no longer runs the job: another one has taken it over."""


class JobControl(Protocol):
    """What a job may know of the other jobs of its replica (a cancel acts on another job)."""

    def context(self, job_id: int) -> JobContext | None: ...
    async def wait(self, job_id: int) -> JobStatus: ...
    async def ask_to_stop(self, job_id: int, *, by: str, action: str = "cancel") -> bool: ...
    async def ended(self, job_id: int, within: float) -> JobRecord | None: ...


class JobContext:
    """What a running job can do: report progress, keep durable state, read its id."""

    def __init__(
        self,
        record: JobRecord,
        services: Services,
        *,
        jobs: JobControl | None = None,
        started: float | None = None,
        resumed_from: str | None = None,
    ) -> None:
        self.record = record
        self.services = services
        self.jobs = jobs
        self.started = time.monotonic() if started is None else started
        # The runner this job was taken over from, when this replica resumed it.
        self.resumed_from = resumed_from
        # Set when this replica gave the job up (another one took it over, or this one is
        # stopping and hands it on): the job must stop here without recording an ending.
        self.handed_over = False
        # Set by `cancel J4`: who cancelled, and what they chose the job should do about
        # what it started (a deploy: "rollback"); None: stop where it is.
        self.cancelled_by: str | None = None
        self.cancel_action: str | None = None
        self._stop = asyncio.Event()
        # Set when this process stops and nobody takes the job over: it is not cancelled,
        # it is left where it stands (what it started in AWS goes on by itself).
        self.abandoned = False
        # The last progress line, which says where the job stood when it stopped.
        self.last_progress = ""
        # The head message on its way (`open_thread`), and the progress reported meanwhile.
        self._opening: asyncio.Task[None] | None = None
        # One write of the record at a time, each of it as it is when its turn comes: a write
        # sent earlier (the thread's, retried while the store fails) never lands after a later
        # one (the job's end) with an older record.
        self._writing = asyncio.Lock()
        self._early: list[Message] = []

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def member(self) -> str:
        return self.record.member

    @property
    def state(self) -> dict[str, Any]:
        return self.record.state

    def elapsed(self) -> timedelta:
        return timedelta(seconds=time.monotonic() - self.started)

    def request_stop(self, by: str, action: str) -> None:
        """Ask the job to stop doing `action` about what it started (see `unless_stopped`)."""
        self.cancelled_by = by
        self.cancel_action = action
        self._stop.set()

    async def unless_stopped(self, work: Awaitable[T]) -> T | None:
        """`work`'s result, or None when a member asked the job to stop first."""
        if self._stop.is_set():
            return None
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, stop):
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pending
        if task.done() and not task.cancelled():
            return task.result()
        return None

    def open_thread(self, head: Awaitable[Origin]) -> None:
        """Start the job's thread (`head` posts its first message) while the job already
        works: in a busy channel the head waits its turn for the channel's pace, and the
        work must not wait with it. Progress reported meanwhile follows the head, in order;
        anything else the job says waits for the head."""
        self._opening = asyncio.ensure_future(self._open(head))

    async def _open(self, head: Awaitable[Origin]) -> None:
        record = self.record
        try:
            record.threads = [await head]
        except Exception:
            log.exception(
                "job %s could not start its thread; it answers where it was asked", self.id
            )
            record.threads = [record.origin]
        else:
            try:
                await self.write()
            except JobLost:
                pass  # the heartbeat stops the job
            except Exception:
                log.exception("recording the thread of job %s failed", self.id)
        while self._early:
            try:
                await self._tell(self._early.pop(0))
            except Exception:
                log.exception("a progress line of job %s could not be sent", self.id)

    async def opened(self) -> None:
        """Wait until the job's thread exists (at once, when it was not being opened)."""
        if self._opening is not None:
            await asyncio.shield(self._opening)

    async def progress(self, text: str, **fields: str) -> None:
        self.last_progress = text
        message = Message(text=text, tone=Tone.PROGRESS, fields=fields)
        if self._opening is not None and not self._opening.done():
            self._early.append(message)  # it follows the head, and the job goes on
            return
        await self._tell(message)

    async def post(self, message: Message) -> None:
        await self.opened()
        await self._tell(message)

    async def _tell(self, message: Message) -> None:
        await asyncio.gather(*(self.services.chat.reply(t, message) for t in self.record.threads))

    async def save_state(self, **values: Any) -> None:
        """Record a step, so that a replica taking over knows what is already done.

        Raises JobLost when another replica has taken the job over: the step it records
        must not be followed by the next one here."""
        self.record.state.update(values)
        await self.write()

    async def write(self) -> None:
        if not await self.store_record():
            self.handed_over = True
            raise JobLost(f"job {self.id} is no longer run by {self.record.runner}")

    async def store_record(self) -> bool:
        """Write the record as it is now (after the writes already under way); False when
        another replica runs the job."""
        async with self._writing:
            self.record.updated_at = self.services.clock.now()
            return await self.services.store.update_job(self.record)
