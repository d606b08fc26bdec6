"""Background jobs: an id, a thread for progress, locks held for the whole run, and always a
final message, whatever happens (success, failure, timeout, cancellation, a bug).

Jobs are durable. The replica running a job (its `runner`) renews the job's lease every
quarter of the lease and its locks every half, and the job writes each step it completes into its record
(`JobContext.save_state`). When a replica stops without ending its jobs (it was killed, its
machine died), another replica's takeover pass finds each running job whose lease has run
out, claims it with a conditional write, renews its locks with the tokens the record keeps,
says so in the job's thread, and either resumes it through the resumer registered for the
job's kind (a deploy goes on watching its rollout) or, where no resumer can go on safely,
ends it as `interrupted`. Every write a runner makes is conditional on it still being the
runner, so a replica that stalled past its lease cannot overwrite its successor's record.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from bot.errors import failure_reply
from bot.grammar import format_duration
from bot.jobs.context import JobCancelled, JobContext, JobInterrupted, JobLost
from bot.jobs.locks import DeployLocks
from bot.logs import current_job_id
from bot.messages import Message, Tone
from bot.model import AuditRecord, JobRecord, JobStatus, LockRecord, Origin, Outcome
from bot.plan import JobBody, Plan
from bot.services import Services

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# A lock's lease is twice its job's, so renewing it every other beat (every half job lease)
# still leaves it at least one and a half job leases at any time: more than the job's lease
# plus a takeover pass (`jobs.takeover_interval` under half a lease), so a job whose replica
# died is taken over, and its locks renewed, before anyone else can take its service. One
# conditional write per lock is saved every other beat.
LOCK_RENEWED_EVERY = 2
# How often a replica looks for stops asked on another replica (`cancel` there) for the jobs
# it runs, in one read for all of them, at most: with a short lease, every beat.
STOP_CHECK_SECONDS = 5.0
# How many running jobs one takeover pass looks at.
TAKEOVER_BATCH = 100
# How much of its recorded state an interrupted job shows in its final message.
STATE_PREVIEW = 300
# How much of a job's final message its record keeps (`jobs` shows it whole).
RESULT_LIMIT = 2000
# The end of a job (its record, its locks, its audit line) is written again after these
# pauses while the store fails: under sustained faults botocore stops retrying once its retry
# quota is spent, and a job left "running" in the store would be taken over and resumed.
END_WRITE_PAUSES = (0.2, 0.5, 1.0, 2.0, 4.0)


def _since(seconds: float) -> str:
    return format_duration(timedelta(seconds=max(seconds, 0)))


def stop_key(job_id: int) -> str:
    """Where a stop asked for a job on another replica than its own is kept."""
    return f"stop:{job_id}"


class JobManager:
    def __init__(
        self,
        services: Services,
        locks: DeployLocks,
        resumers: Mapping[str, JobBody],
        *,
        runner: str = "local",
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self._services = services
        self._locks = locks
        # By a plan's kind: what takes a job over when the replica running it stopped.
        self._resumers = dict(resumers)
        self._tasks: dict[int, asyncio.Task[JobStatus]] = {}
        self._contexts: dict[int, JobContext] = {}
        self._runner = runner
        self._lease = lease
        # A lock outlives its job's lease, so that a job whose replica died is taken over
        # (and its locks renewed) before anyone else can take the service.
        self._lock_lease = lease * 2
        self._takes_over = False
        self._closing = False
        # Reads the stops asked elsewhere for this replica's jobs while any runs, and the jobs
        # it has told already.
        self._stop_reader: asyncio.Task[None] | None = None
        self._told_to_stop: set[int] = set()

    @property
    def runner(self) -> str:
        return self._runner

    @property
    def lease(self) -> timedelta:
        return self._lease

    @property
    def running(self) -> list[int]:
        return [job_id for job_id, task in self._tasks.items() if not task.done()]

    def context(self, job_id: int) -> JobContext | None:
        """The running job of this replica, None when it runs elsewhere or ended."""
        return self._contexts.get(job_id)

    async def start(
        self,
        plan: Plan,
        *,
        origin: Origin,
        command: str,
        threads: list[Origin] | None = None,
        approved_by: str | None = None,
    ) -> JobRecord:
        """Take the plan's locks and run it in the background, as `origin.member` asked
        with `command` (and `approved_by` approved or confirmed)."""
        services = self._services
        job_id = await services.store.next_id("job")
        held: list[LockRecord | None] = []
        try:
            for key in plan.locks:
                held.append(
                    await self._locks.acquire(
                        key,
                        origin.member,
                        reason=plan.title,
                        lease=self._lock_lease,
                        job_id=job_id,
                    )
                )
        except BaseException:
            for lock in held:
                await self._locks.release(lock)
            raise
        now = services.clock.now()
        record = JobRecord(
            id=job_id,
            command=services.redactor.text(command),
            title=plan.title,
            member=origin.member,
            person=services.access.person_of(origin.member),
            approved_by=approved_by,
            origin=origin,
            created_at=now,
            updated_at=now,
            runner=self._runner,
            lease_expires=now + self._lease,
            state=dict(plan.state),
            kind=plan.kind,
            deadline=now + plan.timeout,
            locks=[lock for lock in held if lock is not None],
            targets=plan.targets,
        )
        await services.store.put_job(record)
        job = JobContext(record, services, jobs=self)
        self._spawn(job, self._run(job, plan.run, origin=origin, threads=threads))
        return record

    def _spawn(self, job: JobContext, work: Awaitable[JobStatus]) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(f"job-{job.id}")
        self._tasks[job.id] = task
        self._contexts[job.id] = job
        task.add_done_callback(lambda _t: self._contexts.pop(job.id, None))
        if self._stop_reader is None or self._stop_reader.done():
            self._stop_reader = asyncio.create_task(self._read_stops(), name="job-stop-requests")

    async def wait(self, job_id: int) -> JobStatus:
        task = self._tasks.get(job_id)
        if task is not None:
            return await asyncio.shield(task)
        record = await self._services.store.get_job(job_id)
        return record.status if record else JobStatus.FAILED

    async def cancel(self, job_id: int, *, by: str | None = None) -> None:
        """Stop a job of this replica where it is, as cancelled (by `by`)."""
        task = self._tasks.get(job_id)
        job = self._contexts.get(job_id)
        if job is not None and by is not None:
            job.cancelled_by = by
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def ask_to_stop(self, job_id: int, *, by: str, action: str = "cancel") -> bool:
        """Stop the job wherever it runs: `cancel` stops it where it is, another action goes
        to the job (`JobContext.request_stop`). A job of this replica is told at once; one
        of another replica through the store, which that replica reads every few seconds.
        False when a stop was asked of the other replica already."""
        job = self._contexts.get(job_id)
        if job is None:
            return await self._services.store.swap_value(stop_key(job_id), None, f"{action} {by}")
        if action == "cancel":
            await self.cancel(job_id, by=by)
        else:
            job.request_stop(by, action)
        return True

    async def ended(self, job_id: int, within: float) -> JobRecord | None:
        """The job's record once it has ended, wherever it ran; None when it has not ended
        within `within` seconds (or does not exist)."""
        task = self._tasks.get(job_id)
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=within)  # the job runs on
            return await self._services.store.get_job(job_id) if done else None
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        delay = 0.05
        while True:
            record = await self._services.store.get_job(job_id)
            if record is None or record.status.finished:
                return record
            left = until - loop.time()
            if left <= 0:
                return None
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    @property
    def stop_check_seconds(self) -> float:
        """At most how long a stop asked on another replica waits to be seen."""
        return min(self._lease.total_seconds() / 4, STOP_CHECK_SECONDS)

    async def abandon(self, job_id: int) -> None:
        """Stop waiting for a job because this process stops: it is not cancelled, it is
        left where it stands and ends `interrupted`, saying so."""
        job = self._contexts.get(job_id)
        if job is not None:
            job.abandoned = True
        await self.cancel(job_id)

    async def shutdown(self) -> None:
        """Stop every job of this replica. A replica that takes over jobs hands over those
        that can be resumed (another replica, or this one once restarted, goes on with
        them); every other job is cancelled and says so."""
        self._closing = True
        if self._stop_reader is not None:
            self._stop_reader.cancel()
        resumers = self._resumers
        for job_id in self.running:
            job = self._contexts.get(job_id)
            if self._takes_over and job is not None and job.record.kind in resumers:
                await self._hand_over(job)
            else:
                await self.abandon(job_id)

    # -- running a job -----------------------------------------------------------------

    async def _run(
        self,
        job: JobContext,
        body: JobBody,
        *,
        origin: Origin | None = None,
        threads: list[Origin] | None = None,
    ) -> JobStatus:
        services = self._services
        record = job.record
        # Set in this task only: its log lines, and those of the tasks it starts, carry the id.
        current_job_id.set(record.id)
        status = JobStatus.FAILED
        final: Message | None = None
        heartbeat: asyncio.Task[None] | None = None
        try:
            if origin is not None:
                log.info("job started: %s", record.title)
                if threads is None:
                    head = Message(
                        text=f"{record.title}: job {record.ref} started by {record.member}"
                    )
                    job.open_thread(services.chat.start_thread(origin, head))
                else:
                    record.threads = threads
                    await job.write()
            heartbeat = asyncio.create_task(self._heartbeat(job, asyncio.current_task()))
            left = (record.deadline - services.clock.now()) if record.deadline else None
            async with asyncio.timeout(left.total_seconds() if left is not None else None):
                result = await body(job)
            status = JobStatus.SUCCEEDED
            final = result.model_copy(update={"tone": Tone.SUCCESS})
        except JobLost:
            pass
        except JobInterrupted as error:
            status = JobStatus.INTERRUPTED
            final = Message(
                text=f"{record.title}: job {record.ref} interrupted: {error}", tone=Tone.FAILURE
            )
        except JobCancelled as error:
            status = JobStatus.CANCELLED
            record.cancelled_by = job.cancelled_by
            final = Message(text=f"{record.title}: job {record.ref} {error}", tone=Tone.FAILURE)
        except TimeoutError:
            limit = (record.deadline - record.created_at) if record.deadline else job.elapsed()
            final = Message(
                text=f"{record.title} timed out after {format_duration(limit)}",
                tone=Tone.FAILURE,
            )
        except asyncio.CancelledError:
            if not job.handed_over:
                status, final = self._stopped(job)
        except Exception as error:
            outcome, text = failure_reply(error, services.explain_failure)
            if outcome is Outcome.ERROR:
                log.exception("job %s failed with an internal error", record.id)
                text = f"{record.title}: internal error, job {record.ref} (details are in the logs)"
            else:
                log.warning("job %s failed: %s", record.id, text, exc_info=True)
                text = f"{record.title} failed: {text}"
            final = Message(text=text, tone=Tone.FAILURE)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
        if final is None or job.handed_over:
            log.warning("job %s goes on elsewhere; this replica stopped running it", record.id)
            await job.opened()  # its head still goes out: the thread is where it goes on
            return JobStatus.RUNNING
        services.metrics.job_finished(status.value, job.elapsed().total_seconds())
        # Clean-up must happen even while this task is being cancelled.
        await asyncio.shield(self._finish(job, status, final))
        log.info("job %s: %s", status.value, record.summary)
        return status

    def _stopped(self, job: JobContext) -> tuple[JobStatus, Message]:
        """How a job stopped from outside ends: cancelled by a member, or left where it
        stands because this process stops (never recorded as cancelled: it was not)."""
        record = job.record
        where = f"\nlast progress: {job.last_progress}" if job.last_progress else ""
        if job.abandoned:
            text = (
                f"{record.title}: job {record.ref} interrupted: kajitori stopped before the "
                "job ended; what it had started in AWS goes on by itself" + where
            )
            return JobStatus.INTERRUPTED, Message(text=text, tone=Tone.WARNING)
        record.cancelled_by = job.cancelled_by
        by = f" by {job.cancelled_by}" if job.cancelled_by else ""
        return JobStatus.CANCELLED, Message(
            text=f"{record.title}: job {record.ref} was cancelled{by}{where}", tone=Tone.FAILURE
        )

    async def _finish(self, job: JobContext, status: JobStatus, final: Message) -> None:
        services = self._services
        record = job.record
        now = services.clock.now()
        record.status = status
        record.result = services.redactor.text(final.plain())[:RESULT_LIMIT]
        record.summary = services.redactor.text(final.text.splitlines()[0])[:300]
        record.ended_at = now
        try:
            if not await _persistently(job.store_record):
                # Taken over while ending: the locks and the last word are the new runner's.
                log.warning("job %s was taken over while it ended here", record.id)
                return
        except Exception:
            log.exception("recording the end of job %s failed", record.id)
        for lock in record.locks:
            try:
                await _persistently(functools.partial(self._locks.release, lock))
            except Exception:
                log.exception("releasing lock %s of job %s failed", lock.key, record.id)
        audit = AuditRecord(
            at=now,
            member=record.member,
            channel=record.origin.channel,
            text=record.command,
            outcome=f"job {status.value}",
            job_id=record.id,
            detail=record.summary,
        )
        try:
            await _persistently(lambda: services.store.add_audit(audit))
        except Exception:
            log.exception("recording the end of job %s failed", record.id)
        await job.post(final)

    async def _heartbeat(self, job: JobContext, task: asyncio.Task[Any] | None) -> None:
        """Renew the job's lease and its locks; stop the job if another replica took it."""
        services = self._services
        record = job.record
        interval = max(self._lease.total_seconds() / 4, 0.05)
        beats = 0
        while True:
            await asyncio.sleep(interval)
            beats += 1
            now = services.clock.now()
            lease = now + self._lease
            try:
                owned = await services.store.claim_job(record.id, self._runner, lease, now)
            except Exception as error:
                # The lease still runs; the next beat tries again.
                log.warning("renewing the lease of job %s failed: %r", record.id, error)
                continue
            if not owned:
                log.warning("job %s was taken over by another replica", record.id)
                job.handed_over = True
                if task is not None:
                    task.cancel()
                return
            services.metrics.lease_renewed("job")
            record.lease_expires = lease
            if beats % LOCK_RENEWED_EVERY:
                continue
            for lock in record.locks:
                try:
                    renewed = await self._locks.renew(lock, self._lock_lease)
                    services.metrics.lease_renewed("lock")
                    if not renewed:
                        log.warning("job %s lost its lock %s", record.id, lock.key)
                except Exception as error:
                    log.warning("renewing lock %s failed: %r", lock.key, error)

    async def _read_stops(self) -> None:
        """While jobs run here, look every few seconds for stops asked on other replicas:
        one read for all of them, however many run."""
        while self.running:
            await asyncio.sleep(self.stop_check_seconds)
            # A job already told to stop has it in hand.
            self._told_to_stop &= set(self.running)
            jobs = [
                job
                for job_id in self.running
                if (job := self._contexts.get(job_id)) is not None
                and job_id not in self._told_to_stop
                and job.cancel_action is None
            ]
            if not jobs:
                continue
            try:
                asked = await self._services.store.get_values([stop_key(j.id) for j in jobs])
            except Exception as error:
                log.warning("reading the stop requests of %d jobs failed: %r", len(jobs), error)
                continue
            for job in jobs:
                if asked.get(stop_key(job.id)):
                    self._stop_asked(job, asked[stop_key(job.id)])

    def _stop_asked(self, job: JobContext, asked: str) -> None:
        """Act on a stop asked on another replica."""
        self._told_to_stop.add(job.id)
        action, _, by = asked.partition(" ")
        log.info("job %s: %s asked by %s on another replica", job.id, action, by)
        if action == "cancel":
            job.cancelled_by = by or None
            task = self._tasks.get(job.id)
            if task is not None:
                task.cancel()
            return
        job.request_stop(by, action)

    async def _hand_over(self, job: JobContext) -> None:
        """Stop a resumable job here, so that another replica takes it over at once."""
        task = self._tasks.get(job.id)
        job.handed_over = True
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        record = job.record
        record.lease_expires = self._services.clock.now()
        try:
            await job.write()
        except Exception:
            log.exception("handing over job %s failed", job.id)
            return
        await job.post(
            Message(
                text=f"replica {self._runner} is stopping: job {job.record.ref} goes on with the next "
                "replica that takes it over",
                tone=Tone.WARNING,
            )
        )

    # -- taking over jobs of replicas that stopped ---------------------------------------

    async def take_over_forever(self, interval: timedelta) -> None:
        """The takeover loop every serving replica runs."""
        self._takes_over = True
        seconds = max(interval.total_seconds(), 0.05)
        while not self._closing:
            try:
                await self.take_over_expired()
            except Exception:
                log.exception("looking for jobs to take over failed")
            await asyncio.sleep(seconds)

    async def take_over_expired(self) -> list[int]:
        """Claim every running job whose lease has run out and resume or interrupt it.
        Returns the ids of the jobs this replica took over."""
        services = self._services
        taken: list[int] = []
        running = set(self.running)
        for record in await services.store.list_jobs(limit=TAKEOVER_BATCH, running_only=True):
            now = services.clock.now()
            if self._closing or record.id in running:
                continue
            if record.lease_expires is not None and record.lease_expires > now:
                continue
            if not await services.store.claim_job(record.id, self._runner, now + self._lease, now):
                continue  # another replica was quicker
            claimed = await services.store.get_job(record.id)
            if claimed is None or claimed.runner != self._runner:
                continue
            job = JobContext(
                claimed,
                services,
                jobs=self,
                # Timings go on from the job's start, not from the takeover.
                started=time.monotonic() - (now - claimed.created_at).total_seconds(),
                resumed_from=record.runner,
            )
            self._spawn(job, self._take_over(job, record))
            taken.append(record.id)
        return taken

    async def _take_over(self, job: JobContext, before: JobRecord) -> JobStatus:
        services = self._services
        record = job.record
        current_job_id.set(record.id)
        now = services.clock.now()
        stopped = (now - before.lease_expires).total_seconds() if before.lease_expires else 0
        resume = self._resumers.get(record.kind) if record.kind else None
        log.warning(
            "taking over job %s from %s (lease ended %.1fs ago): %s",
            record.id,
            before.runner,
            stopped,
            "resuming" if resume else "interrupting",
        )
        if not record.threads:
            # It stopped before it had a thread: start one where the command came from.
            head = Message(text=f"{record.title}: job {record.ref} started by {record.member}")
            record.threads = [await services.chat.start_thread(record.origin, head)]
        lost: list[str] = []
        for lock in list(record.locks):
            try:
                renewed = await self._locks.renew(lock, self._lock_lease)
            except Exception:
                log.exception("renewing lock %s of job %s failed", lock.key, record.id)
                renewed = True  # the heartbeat tries again
            if not renewed:
                record.locks.remove(lock)
                lost.append(lock.key)
        note = f"; ⚠️ its lock {', '.join(lost)} was taken by someone else meanwhile" if lost else ""
        what = "resuming it" if resume else "it cannot be resumed safely"
        await job.post(
            Message(
                text=f"job {record.ref} taken over by replica {self._runner} after its runner "
                f"{before.runner} stopped ({_since(stopped)} past its lease); {what}{note}",
                tone=Tone.WARNING,
            )
        )
        return await self._run(job, resume or self._interrupt)

    async def _interrupt(self, job: JobContext) -> Message:
        done = {k: v for k, v in job.state.items() if k != "kind"}
        steps = ", ".join(f"{k}: {v}" for k, v in done.items())
        if len(steps) > STATE_PREVIEW:
            steps = steps[: STATE_PREVIEW - 1] + "…"
        recorded = f"; it had recorded {steps}" if steps else ""
        raise JobInterrupted(
            f"the replica running it stopped before it ended, and it cannot be resumed "
            f"safely elsewhere{recorded}",
            hint=f"check what it changed, then run `{job.record.command}` again if needed",
        )


async def _persistently(write: Callable[[], Awaitable[_T]]) -> _T:
    """`write()`, tried again after each of END_WRITE_PAUSES while it fails; the last
    failure is raised."""
    for pause in END_WRITE_PAUSES:
        try:
            return await write()
        except Exception as error:
            log.warning("a store write failed, trying again in %s s: %r", pause, error)
            await asyncio.sleep(pause)
    return await write()
