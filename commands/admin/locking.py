"""`lock SERVICE ENV [REASON...]` and `unlock SERVICE ENV`."""

from __future__ import annotations

from bot.errors import Refused
from bot.grammar import format_duration
from bot.jobs.locks import LockKey, describe_holder
from bot.messages import Message, Tone
from bot.model import JobStatus
from bot.spec import Arg, ArgKind, CommandSpec, Context


async def lock(ctx: Context) -> Message:
    services = ctx.services
    command = ctx.command
    name, env = command.word("service"), command.word("env")
    services.config.service(name, env)
    reason = command.args.get("reason") or ""
    key = LockKey(name, env)
    lease = services.config.locks.lease
    holder = await ctx.locks.holder(key)
    acquired = None
    if holder is not None and holder.owner == ctx.member and holder.job_id is None:
        # A new reason for a lock one holds: one conditional write, never free meanwhile.
        acquired = await ctx.locks.relock(holder, reason=str(reason), lease=lease)
    if acquired is None:
        acquired = await ctx.locks.acquire(key, ctx.member, reason=str(reason), lease=lease)
        assert acquired is not None
    why = f": {reason}" if reason else ""
    return Message(
        text=f"🔒 {key} locked by {ctx.member}{why} for {format_duration(lease)} "
        f"(until {acquired.expires_at:%H:%M} UTC). Only {ctx.member} can change it until "
        f"`unlock {name} {env}`.",
        tone=Tone.SUCCESS,
    )


async def unlock(ctx: Context) -> Message:
    services = ctx.services
    command = ctx.command
    name, env = command.word("service"), command.word("env")
    services.config.service(name, env)
    key = LockKey(name, env)
    holder = await ctx.locks.holder(key)
    if holder is None:
        return Message(text=await _not_locked(ctx, str(key)))
    if holder.owner != ctx.member and not services.access.is_approver(ctx.member):
        raise Refused(
            f"{key} is locked by {describe_holder(holder, services.clock.now())}; only "
            f"{holder.owner} or an approver can unlock it",
            hint=f"ask {holder.owner}, or wait until the lease ends at "
            f"{holder.expires_at:%H:%M} UTC"
            if holder.job_id is None
            else f"ask {holder.owner} or an approver to `cancel J{holder.job_id}`",
        )
    # The job may run on another replica: its record says whether it still runs (a lease
    # its replica renews); the lock of a job whose replica is gone may be broken.
    job = await services.store.get_job(holder.job_id) if holder.job_id is not None else None
    if (
        job is not None
        and job.status is JobStatus.RUNNING
        and (job.lease_expires is None or job.lease_expires > services.clock.now())
    ):
        raise Refused(
            f"{key} is held by running job {job.ref} ({job.title}, started by {job.member}); "
            "a job's lock is released when the job ends",
            hint=f"to stop the job: `cancel {job.ref}` ({job.member} or an approver); "
            "`jobs` shows where it stands",
        )
    if holder.job_id is None:
        # A job its owner started under this manual lock runs without a lock of its own:
        # releasing it now would let a second change of the service start beside that job.
        now = services.clock.now()
        under = [
            j
            for j in await services.store.list_jobs(limit=100, running_only=True)
            if str(key) in j.target_keys and (j.lease_expires is None or j.lease_expires > now)
        ]
        if under:
            job = under[0]
            raise Refused(
                f"{key} covers running job {job.ref} ({job.title}, started by {job.member}); "
                "it stays locked until that job ends",
                hint=f"wait for {job.ref} (`jobs` shows where it stands), or `cancel {job.ref}`",
            )
    await ctx.locks.release(holder)
    broke = f" (held by {holder.owner})" if holder.owner != ctx.member else ""
    return Message(text=f"🔓 {key} unlocked by {ctx.member}{broke}", tone=Tone.SUCCESS)


async def _not_locked(ctx: Context, key: str) -> str:
    """ "not locked", and what held it last when that was a job that just ended, so that
    the answer agrees with the refusal someone saw a moment ago."""
    recent = await ctx.services.store.list_jobs(limit=20)
    last = next((j for j in recent if key in [lock.key for lock in j.locks]), None)
    if last is None or last.status.value == "running" or last.ended_at is None:
        return f"{key} is not locked"
    return (
        f"{key} is not locked: job {last.ref} ({last.title}) held it and released it when "
        f"it ended {last.status.value} at {last.ended_at:%H:%M:%S} UTC"
    )


SPECS = [
    CommandSpec(
        name="lock",
        usage="lock SERVICE ENV [REASON...]",
        summary="hold a service in an environment so nobody else changes it",
        handler=lock,
        permission="lock",
        args=(Arg("service"), Arg("env"), Arg("reason", ArgKind.REST, optional=True)),
        examples=("lock api staging testing the new cache",),
    ),
    CommandSpec(
        name="unlock",
        usage="unlock SERVICE ENV",
        summary="release a lock you hold (approvers can release any)",
        handler=unlock,
        permission="lock",
        args=(Arg("service"), Arg("env")),
    ),
]
