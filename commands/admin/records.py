"""`history [SERVICE ENV]` and `jobs`: what changed, who did it and when."""

from __future__ import annotations

from bot.errors import UsageError
from bot.grammar import format_duration
from bot.messages import Message, Table
from bot.spec import Arg, CommandSpec, Context


async def history(ctx: Context) -> Message:
    services = ctx.services
    service, env = ctx.command.optional_word("service"), ctx.command.optional_word("env")
    if service is None and env is None:
        records = await services.store.list_audit(limit=20)
        rows = [
            [f"{r.at:%m-%d %H:%M:%S}", r.member, r.text[:60], r.outcome, str(r.job_id or "")]
            for r in records
        ]
        return Message(
            text="recent commands (newest first)",
            table=Table(columns=["when (UTC)", "who", "command", "outcome", "job"], rows=rows),
        )
    if service is None or env is None:
        raise UsageError("give both SERVICE and ENV, or neither", usage=ctx.command.spec.usage)
    services.config.service(service, env)
    deploys = await services.store.list_deploys(service, env, limit=20)
    if not deploys:
        return Message(text=f"no deploys of {service} to {env} recorded yet")
    rows = []
    for d in deploys:
        took = format_duration(d.ended_at - d.started_at) if d.ended_at else "running"
        # Fleets record the version per instance instead of a revision.
        revision = d.task_definition.rsplit("/", 1)[-1] or ", ".join(
            f"{i}: {v}" for i, v in sorted(d.instances.items())
        )
        rows.append(
            [
                f"{d.started_at:%m-%d %H:%M}",
                d.kind,
                d.version,
                revision,
                d.triggered_by,
                took,
                d.outcome,
                str(d.job_id or ""),
            ]
        )
    return Message(
        text=f"deploy history of {service} in {env} (newest first)",
        table=Table(
            columns=[
                "when (UTC)",
                "kind",
                "version",
                "revision / instances",
                "by",
                "took",
                "outcome",
                "job",
            ],
            rows=rows,
        ),
    )


async def jobs(ctx: Context) -> Message:
    records = await ctx.services.store.list_jobs(limit=20)
    if not records:
        return Message(text="no jobs yet")
    now = ctx.services.clock.now()
    rows = []
    for job in records:
        end = job.ended_at or now
        rows.append(
            [
                str(job.id),
                job.status.value,
                job.title,
                job.member,
                f"{job.created_at:%m-%d %H:%M:%S}",
                format_duration(end - job.created_at),
                job.summary[:60],
            ]
        )
    return Message(
        text="jobs (newest first)",
        table=Table(
            columns=["job", "status", "what", "who", "started (UTC)", "took", "result"], rows=rows
        ),
    )


SPECS = [
    CommandSpec(
        name="history",
        usage="history [SERVICE ENV]",
        summary="recent commands, or the deploy history of a service in an environment",
        handler=history,
        permission="history",
        args=(Arg("service", optional=True), Arg("env", optional=True)),
        examples=("history", "history api staging"),
    ),
    CommandSpec(
        name="jobs",
        usage="jobs",
        summary="running and recent jobs",
        handler=jobs,
        permission="jobs",
        open_to_all=True,
    ),
]
