"""`promote JOB` / `abort JOB`: a person's decision for a rollout waiting at its canary.

The waiting job polls a value in the store (`canary:JOB`), so that a press on any replica
(a typed command, or a Slack button handled by another replica) reaches it. Only the
member who started the job or an approver decides; the first decision wins.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

from bot.errors import Refused
from bot.grammar import format_duration
from bot.ids import JOB, job_ref, parse_ref
from bot.jobs.context import JobContext
from bot.messages import Button, Message, Tone
from bot.model import JobStatus
from bot.polling import Polling
from bot.spec import Arg, CommandSpec, Context

PROMOTE = "promote"
ABORT = "abort"


def decision_key(job_id: int) -> str:
    return f"canary:{job_id}"


@dataclass(frozen=True)
class CanaryDecision:
    verdict: str  # promote | abort
    by: str  # a member, or "bake time" when the bake time passed

    @property
    def promoted(self) -> bool:
        return self.verdict == PROMOTE


def decision_buttons(job_id: int) -> list[Button]:
    return [
        Button(action=PROMOTE, request_id=job_ref(job_id), label="Promote"),
        Button(action=ABORT, request_id=job_ref(job_id), label="Abort"),
    ]


async def wait_for_decision(
    job: JobContext, *, what: str, bake: timedelta | None, polling: Polling
) -> CanaryDecision:
    """Wait for `promote`/`abort` on this job, or for the bake time to pass (promote).

    The job's state says it waits (`awaiting`), so that `promote` can tell a job that
    waits from one that does not; the decision itself lives under `decision_key`."""
    store = job.services.store
    key = decision_key(job.id)
    deadline = None if bake is None else time.monotonic() + bake.total_seconds()
    if job.state.get("awaiting") != what:
        await job.save_state(awaiting=what, awaiting_since=time.time())
        how = (
            f"promotes by itself in {format_duration(bake)} unless aborted"
            if bake is not None
            else "waits for a person"
        )
        await job.post(
            Message(
                text=f"{what}: job {job_ref(job.id)} {how}. `promote {job_ref(job.id)}` goes "
                f"on, `abort {job_ref(job.id)}` stops here (the requester {job.member} or an "
                "approver).",
                tone=Tone.WARNING,
                buttons=decision_buttons(job.id),
            )
        )
    elif bake is not None:
        # Taken over: the bake time runs from when the wait began.
        since = float(job.state.get("awaiting_since") or time.time())
        deadline = since + bake.total_seconds() - (time.time() - time.monotonic())
    delay = min(polling.first, 1.0)
    while True:
        value = await store.get_value(key)
        if value:
            verdict, _, by = value.partition(" ")
            await job.save_state(awaiting=None)
            return CanaryDecision(verdict, by)
        if deadline is not None and time.monotonic() >= deadline:
            # A decision made at the last moment still wins over the bake time.
            if await store.swap_value(key, None, f"{PROMOTE} bake-time"):
                await job.save_state(awaiting=None)
                return CanaryDecision(PROMOTE, "bake time")
            continue
        await asyncio.sleep(delay)
        delay = min(delay * polling.factor, max(polling.longest, delay), 1.0)


def _job_id(ctx: Context) -> int:
    return parse_ref(ctx.command.word("job"), JOB, usage=ctx.command.spec.usage)


async def _decide(ctx: Context, verdict: str) -> Message:
    job_id = _job_id(ctx)
    services = ctx.services
    record = await services.store.get_job(job_id)
    if record is None:
        raise Refused(f"there is no job {job_ref(job_id)}", hint="`jobs` lists the running jobs")
    if record.status is not JobStatus.RUNNING:
        raise Refused(f"job {job_id} is not running (it {record.status.value})")
    if not record.state.get("awaiting"):
        raise Refused(
            f"job {job_id} ({record.title}) is not waiting for a decision",
            hint="promote and abort answer a rollout that waits at its canary or checkpoint",
        )
    member = ctx.member
    if member != record.member and not services.access.is_approver(member):
        roles = ", ".join(services.config.approvals.approvers)
        raise Refused(
            f"only {record.member} (who started job {job_id}) or a member with role "
            f"{roles} can {verdict} it"
        )
    key = decision_key(job_id)
    # An empty value is a decision already acted on (an Auto Scaling job waits again at
    # its next checkpoint).
    before = await services.store.get_value(key)
    if before or not await services.store.swap_value(key, before, f"{verdict} {member}"):
        current = before or await services.store.get_value(key) or ""
        done, _, by = current.partition(" ")
        raise Refused(f"job {job_id} was already told to {done} by {by}")
    said = "goes on past its canary" if verdict == PROMOTE else "stops after its canary"
    return Message(
        text=f"job {job_id} ({record.title}) {said}: {verdict} by {member}",
        tone=Tone.SUCCESS if verdict == PROMOTE else Tone.WARNING,
    )


async def promote(ctx: Context) -> Message:
    return await _decide(ctx, PROMOTE)


async def abort(ctx: Context) -> Message:
    return await _decide(ctx, ABORT)


SPECS = [
    CommandSpec(
        name="promote",
        usage="promote JOB",
        summary="let a rollout waiting at its canary (or checkpoint) go on to the rest",
        handler=promote,
        permission="promote",
        args=(Arg("job"),),
        open_to_all=True,
        examples=("promote 42",),
        details="The member who started the job, or an approver. A Slack button does the same.",
    ),
    CommandSpec(
        name="abort",
        usage="abort JOB",
        summary="stop a rollout waiting at its canary: the rest keeps the running version",
        handler=abort,
        permission="promote",
        args=(Arg("job"),),
        open_to_all=True,
        examples=("abort 42",),
        details="The member who started the job, or an approver. `rollback` undoes the canary.",
    ),
]
