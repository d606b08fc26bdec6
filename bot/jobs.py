"""Background jobs: an id, a thread for progress, locks held for the whole run, and always a
final message, whatever happens (success, failure, timeout, cancellation, a bug)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot.errors import KajitoriError
from bot.grammar import format_duration
from bot.invocation import Context, Plan
from bot.messages import Message, Tone
from bot.model import AuditRecord, JobRecord, JobStatus, LockRecord, Origin
from bot.services import Services

log = logging.getLogger(__name__)


class JobContext:
    """What a running job can do: report progress, keep durable state, read its id."""

    def __init__(self, record: JobRecord, services: Services, ctx: Context | None = None) -> None:
        self.record = record
        self.services = services
        self.ctx = ctx
        self.started = time.monotonic()

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

    async def progress(self, text: str, **fields: str) -> None:
        message = Message(text=text, tone=Tone.PROGRESS, fields=fields)
        await asyncio.gather(*(self.services.chat.reply(t, message) for t in self.record.threads))

    async def post(self, message: Message) -> None:
        await asyncio.gather(*(self.services.chat.reply(t, message) for t in self.record.threads))

    async def save_state(self, **values: Any) -> None:
        """Record a step, so that a replica taking over knows what is already done."""
        self.record.state.update(values)
        self.record.updated_at = self.services.clock.now()
        await self.services.store.put_job(self.record)


JobHook = Callable[[JobRecord], Awaitable[None]]


class JobManager:
    def __init__(
        self,
        services: Services,
        *,
        runner: str = "local",
        lock_lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self._services = services
        self._tasks: dict[int, asyncio.Task[JobStatus]] = {}
        self._runner = runner
        self._lock_lease = lock_lease

    @property
    def running(self) -> list[int]:
        return [job_id for job_id, task in self._tasks.items() if not task.done()]

    async def start(
        self, ctx: Context, plan: Plan, threads: list[Origin] | None = None
    ) -> JobRecord:
        services = self._services
        assert services.locks is not None
        job_id = await services.store.next_id("job")
        held: list[LockRecord | None] = []
        try:
            for key in plan.locks:
                held.append(
                    await services.locks.acquire(
                        key,
                        ctx.member,
                        reason=f"job {job_id}: {plan.title}",
                        lease=self._lock_lease,
                        job_id=job_id,
                    )
                )
        except BaseException:
            for lock in held:
                await services.locks.release(lock)
            raise
        now = services.clock.now()
        record = JobRecord(
            id=job_id,
            command=services.redactor.text(ctx.command.text),
            title=plan.title,
            member=ctx.member,
            origin=ctx.origin,
            created_at=now,
            updated_at=now,
            runner=self._runner,
            lease_expires=now + self._lock_lease,
            state=dict(plan.state),
        )
        await services.store.put_job(record)
        task = asyncio.create_task(
            self._run(record, ctx, plan, held, threads), name=f"job-{job_id}"
        )
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: None)
        return record

    async def wait(self, job_id: int) -> JobStatus:
        task = self._tasks.get(job_id)
        if task is not None:
            return await asyncio.shield(task)
        record = await self._services.store.get_job(job_id)
        return record.status if record else JobStatus.FAILED

    async def cancel(self, job_id: int) -> None:
        task = self._tasks.get(job_id)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def shutdown(self) -> None:
        for job_id in self.running:
            await self.cancel(job_id)

    async def _run(
        self,
        record: JobRecord,
        ctx: Context,
        plan: Plan,
        locks: list[LockRecord | None],
        threads: list[Origin] | None,
    ) -> JobStatus:
        services = self._services
        head = Message(text=f"{plan.title}: job {record.id} started by {record.member}")
        if threads is None:
            threads = [await services.chat.start_thread(ctx.origin, head)]
        record.threads = threads
        await services.store.put_job(record)
        job = JobContext(record, services, ctx)
        heartbeat = asyncio.create_task(self._heartbeat(record, locks))
        status = JobStatus.FAILED
        final: Message
        try:
            async with asyncio.timeout(plan.timeout.total_seconds()):
                result = await plan.run(job)
            status = JobStatus.SUCCEEDED
            final = result.model_copy(update={"tone": Tone.SUCCESS})
        except KajitoriError as error:
            final = Message(text=f"{plan.title} failed: {error}", tone=Tone.FAILURE)
        except TimeoutError:
            final = Message(
                text=f"{plan.title} timed out after {format_duration(plan.timeout)}",
                tone=Tone.FAILURE,
            )
        except asyncio.CancelledError:
            status = JobStatus.CANCELLED
            final = Message(text=f"{plan.title}: job {record.id} was cancelled", tone=Tone.FAILURE)
        except Exception:
            log.exception("job %s failed with an internal error", record.id)
            final = Message(
                text=f"{plan.title}: internal error, job {record.id} (details are in the logs)",
                tone=Tone.FAILURE,
            )
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        # Clean-up must happen even while this task is being cancelled.
        await asyncio.shield(self._finish(record, locks, status, final))
        return status

    async def _finish(
        self,
        record: JobRecord,
        locks: list[LockRecord | None],
        status: JobStatus,
        final: Message,
    ) -> None:
        services = self._services
        assert services.locks is not None
        for lock in locks:
            try:
                await services.locks.release(lock)
            except Exception:
                log.exception("releasing lock %s of job %s failed", lock, record.id)
        now = services.clock.now()
        record.status = status
        record.summary = services.redactor.text(final.text.splitlines()[0])[:300]
        record.ended_at = now
        record.updated_at = now
        try:
            await services.store.put_job(record)
            await services.store.add_audit(
                AuditRecord(
                    at=now,
                    member=record.member,
                    channel=record.origin.channel,
                    text=record.command,
                    outcome=f"job {status.value}",
                    job_id=record.id,
                    detail=record.summary,
                )
            )
        except Exception:
            log.exception("recording the end of job %s failed", record.id)
        await asyncio.gather(*(services.chat.reply(t, final) for t in record.threads))

    async def _heartbeat(self, record: JobRecord, locks: list[LockRecord | None]) -> None:
        services = self._services
        assert services.locks is not None
        interval = max(self._lock_lease.total_seconds() / 4, 0.05)
        while True:
            await asyncio.sleep(interval)
            for lock in locks:
                if lock is not None:
                    await services.locks.renew(lock, self._lock_lease)
            record.lease_expires = services.clock.now() + self._lock_lease
            await services.store.claim_job(
                record.id, self._runner, record.lease_expires, services.clock.now()
            )
