"""`cancel JOB`: stop a job, by the member who started it or an approver.

A job that can simply stop stops where it is, and the answer says where that is. A job
whose feature knows better (a deploy that already changed the ECS service) asks first,
through a confirmation, what should happen to what it started. A job running on another
replica is asked to stop through the store; that replica looks every few seconds.
"""

from __future__ import annotations

from bot.errors import Refused
from bot.ids import JOB, parse_ref
from bot.messages import Message, Tone
from bot.plan import Plan
from bot.spec import Arg, CommandSpec, Context


async def cancel(ctx: Context) -> Message | Plan:
    services = ctx.services
    job_id = parse_ref(ctx.command.word("job"), JOB, usage=ctx.command.spec.usage)
    record = await services.store.get_job(job_id)
    if record is None:
        raise Refused(f"there is no job J{job_id}", hint="`jobs` lists the recent jobs")
    if record.status.finished:
        raise Refused(
            f"job {record.ref} ({record.title}) already ended {record.status.value}: "
            f"{record.summary}"
        )
    if record.member != ctx.member and not services.access.is_approver(ctx.member):
        roles = ", ".join(services.config.approvals.approvers)
        raise Refused(
            f"only {record.member} (who started job {record.ref}) or an approver (role "
            f"{roles}) can cancel it"
        )
    if ctx.jobs.context(job_id) is None:
        now = services.clock.now()
        if record.lease_expires is not None and record.lease_expires <= now:
            raise Refused(
                f"job {record.ref} ({record.title}) is run by nobody: its runner "
                f"{record.runner} stopped renewing it at {record.lease_expires:%H:%M:%S} UTC "
                "without ending it, so there is nothing left to stop here",
                hint="a `kajitori serve` replica takes such jobs over; see where AWS stands "
                "with `status`",
            )
    canceller = ctx.registry.cancellers.get(record.kind)
    if canceller is not None:
        plan = await canceller(ctx, record)
        if plan is not None:
            return plan
    if not await ctx.jobs.ask_to_stop(job_id, by=ctx.member):
        raise Refused(
            f"job {record.ref} ({record.title}) was asked to stop already; the replica running "
            f"it ({record.runner}) stops it within {ctx.jobs.stop_check_seconds:.0f} s",
            hint="`jobs` shows when it has ended",
        )
    # Here it has stopped; another replica looks every few seconds: wait about that long.
    ended = await ctx.jobs.ended(job_id, ctx.jobs.stop_check_seconds * 2 + 1)
    if ended is None:
        return Message(
            text=f"job {record.ref} ({record.title}) runs on another replica "
            f"({record.runner}): it was asked to stop, and stops within "
            f"{ctx.jobs.stop_check_seconds:.0f} s; its thread says where it stopped",
            tone=Tone.WARNING,
        )
    result = ended.result or f"job {record.ref} stopped"
    return Message(text=result, tone=Tone.WARNING)


SPECS = [
    CommandSpec(
        name="cancel",
        usage="cancel JOB",
        summary="stop a running job (yours, or any if you are an approver)",
        handler=cancel,
        permission="cancel",
        args=(Arg("job"),),
        open_to_all=True,
        examples=("cancel J4",),
        details=(
            "The job stops where it is and the answer says where that is. A deploy or "
            "rollback that already changed the ECS service asks first: `approve` rolls the "
            "service back to the revision that ran before, `deny` lets ECS finish while the "
            "job keeps watching."
        ),
    )
]
