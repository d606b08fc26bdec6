"""`history [SERVICE ENV] [--all] [--limit N] [--before ID]` and `jobs`: what changed, who
asked, who approved, from where, and how it ended.

History is read from the job records (deploys, rollbacks, restarts, scale jobs: every
change runs as a job), the deploy records (versions and task definitions) and the audit
trail (locks and unlocks; with `--all`, every command, reads and refusals included).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from bot.errors import UsageError
from bot.grammar import format_duration, tokenize
from bot.ids import JOB, parse_ref
from bot.messages import Message, Table
from bot.model import AuditRecord, DeployRecord, JobRecord
from bot.ports.ecs import task_definition_name
from bot.spec import Arg, ArgKind, CommandSpec, Context

DEFAULT_LIMIT = 20
MAX_LIMIT = 500
# How many job and audit records one `history` reads to pick its rows from.
SCAN = 1000
DETAIL_WIDTH = 160
LOCK_COMMANDS = ("lock", "unlock")


@dataclass(frozen=True)
class HistoryQuery:
    service: str | None
    env: str | None
    all: bool
    limit: int
    before: int | None

    @property
    def key(self) -> str | None:
        return f"{self.service}/{self.env}" if self.service and self.env else None


def parse_history(ctx: Context) -> HistoryQuery:
    usage = ctx.command.spec.usage
    raw = str(ctx.command.args.get("options") or "")
    words = [t.value for t in tokenize(raw)]
    positional: list[str] = []
    everything = False
    limit = DEFAULT_LIMIT
    before: int | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--all":
            everything = True
        elif word in ("--limit", "--before"):
            if i + 1 >= len(words):
                raise UsageError(f"{word} needs a value", usage=usage)
            value = words[i + 1]
            i += 1
            if word == "--limit":
                if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
                    raise UsageError(
                        f"--limit takes a number from 1 to {MAX_LIMIT}, not {value!r}", usage=usage
                    )
                limit = int(value)
            else:
                before = parse_ref(value, JOB, usage=usage)
        elif word.startswith("--"):
            raise UsageError(
                f"unknown option {word} for `history` (options: --all, --limit N, --before ID)",
                usage=usage,
            )
        else:
            positional.append(word)
        i += 1
    if len(positional) == 1 or len(positional) > 2:
        raise UsageError("give both SERVICE and ENV, or neither", usage=usage)
    service, env = (positional[0], positional[1]) if positional else (None, None)
    if service is not None and env is not None:
        config = ctx.services.config
        environment = config.environment(env)
        if service not in environment.databases:
            config.service(service, env)
        ctx.services.access.check_permission(ctx.member, "history", env)
    return HistoryQuery(service, env, everything, limit, before)


def _one_line(text: str, width: int = DETAIL_WIDTH) -> str:
    flat = " · ".join(line.strip() for line in text.splitlines() if line.strip())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _audit_target(record: AuditRecord) -> str | None:
    if record.target:
        return record.target
    words = record.text.split()
    if len(words) >= 3 and words[0] in LOCK_COMMANDS:
        return f"{words[1]}/{words[2]}"
    return None


def _deploy_detail(deploy: DeployRecord) -> str:
    # Fleets record the version per instance instead of a revision.
    revision = (
        task_definition_name(deploy.task_definition)
        if deploy.task_definition
        else ", ".join(f"{i}: {v}" for i, v in sorted(deploy.instances.items())) or "?"
    )
    took = format_duration(deploy.ended_at - deploy.started_at) if deploy.ended_at else "running"
    was = f"{deploy.previous_version} → " if deploy.previous_version else ""
    text = f"{was}{deploy.version} ({revision}), {deploy.outcome}, {took}"
    extra = deploy.detail
    if extra.startswith("approved by "):
        extra = extra.split("; ", 1)[1] if "; " in extra else ""
    if extra and not extra.startswith("took "):
        text += f": {extra}"
    return text


def _job_row(job: JobRecord, deploy: DeployRecord | None) -> tuple[datetime, list[str]]:
    outcome = job.status.value
    if deploy is not None and deploy.outcome not in (job.status.value, "running"):
        outcome += f" ({deploy.outcome})"
    detail = _deploy_detail(deploy) if deploy is not None else (job.summary or job.result)
    return job.created_at, [
        f"{job.created_at:%m-%d %H:%M:%S}",
        job.ref,
        job.title,
        _who(job.person, job.member),
        job.approved_by or "",
        job.origin.channel,
        outcome,
        _one_line(detail),
    ]


def _audit_row(record: AuditRecord) -> tuple[datetime, list[str]]:
    return record.at, [
        f"{record.at:%m-%d %H:%M:%S}",
        f"J{record.job_id}" if record.job_id else "",
        _one_line(record.text, 80),
        _who(record.person, record.member),
        "",
        record.channel,
        record.outcome,
        _one_line(record.detail),
    ]


async def _deploys_by_job(ctx: Context, jobs: list[JobRecord]) -> dict[int, DeployRecord]:
    keys = sorted(
        # Any job may have left a deploy record (ECS, fleets, Auto Scaling, restarts).
        {key for job in jobs for key in job.target_keys}
    )
    store = ctx.services.store
    pairs = [key.split("/", 1) for key in keys]
    lists = await asyncio.gather(
        *(store.list_deploys(service, env, limit=SCAN) for service, env in pairs)
    )
    return {d.job_id: d for records in lists for d in records if d.job_id is not None}


def _who(person: str, member: str) -> str:
    """`alice (typetalk:12345)`: the person and the id they used; the id alone when it
    belongs to no person (or the record predates people)."""
    return f"{person} ({member})" if person and person != member else member


async def history(ctx: Context) -> Message:
    query = parse_history(ctx)
    store = ctx.services.store
    jobs, audit = await asyncio.gather(store.list_jobs(limit=SCAN), store.list_audit(limit=SCAN))
    key = query.key
    cutoff: datetime | None = None
    if query.before is not None:
        anchor = await store.get_job(query.before)
        if anchor is None:
            raise UsageError(f"there is no job J{query.before}", usage=ctx.command.spec.usage)
        cutoff = anchor.created_at
        jobs = [j for j in jobs if j.id < query.before]
        audit = [a for a in audit if a.at < cutoff]
    if key is not None:
        jobs = [j for j in jobs if key in j.target_keys]
    if query.all:
        # Every command as it came in, except the lines that record a job's end (the job's
        # own row says how it ended).
        audit = [a for a in audit if not a.outcome.startswith("job ")]
    else:
        audit = [a for a in audit if a.text.split(" ", 1)[0] in LOCK_COMMANDS and a.outcome == "ok"]
    if key is not None:
        audit = [a for a in audit if _audit_target(a) == key]
    deploys = await _deploys_by_job(ctx, jobs)
    rows = [_job_row(j, deploys.get(j.id)) for j in jobs]
    rows += [_audit_row(a) for a in audit]
    rows.sort(key=lambda r: r[0], reverse=True)
    shown = [row for _, row in rows[: query.limit]]
    where = f"{query.service} in {query.env}" if key else "every service"
    what = "every command" if query.all else "changes and locks"
    if not shown:
        before = f" before job J{query.before}" if query.before is not None else ""
        return Message(
            text=f"nothing recorded yet for {where}{before} ({what}): no deploys, "
            "rollbacks, scale jobs or locks"
            + ("" if query.all else "; `--all` adds every command, reads and refusals")
        )
    more = ""
    if len(rows) > query.limit:
        oldest = next((row[1] for row in reversed(shown) if row[1].startswith("J")), None)
        more = f"; older: `--limit {min(query.limit * 2, MAX_LIMIT)}`" + (
            f" or `--before {oldest}`" if oldest else ""
        )
    return Message(
        text=f"history of {where}, {what}, newest first ({len(shown)} shown{more})",
        table=Table(
            columns=[
                "when (UTC)",
                "job",
                "what",
                "by",
                "approved by",
                "channel",
                "outcome",
                "detail",
            ],
            rows=shown,
        ),
    )


async def jobs(ctx: Context) -> Message:
    records = await ctx.services.store.list_jobs(limit=20)
    if not records:
        return Message(text="no jobs yet: deploys, rollbacks and scale jobs show here")
    now = ctx.services.clock.now()
    rows = []
    for job in records:
        end = job.ended_at or now
        result = job.result or job.summary
        if job.status.value == "running":
            result = "running"
        rows.append(
            [
                job.ref,
                job.status.value,
                job.title,
                _who(job.person, job.member),
                job.approved_by or "",
                f"{job.created_at:%m-%d %H:%M:%S}",
                format_duration(end - job.created_at),
                " · ".join(line for line in result.splitlines() if line.strip()),
            ]
        )
    return Message(
        text="jobs (newest first); `cancel JOB` stops a running one",
        table=Table(
            columns=[
                "job",
                "status",
                "what",
                "who",
                "approved by",
                "started (UTC)",
                "took",
                "result",
            ],
            rows=rows,
        ),
    )


SPECS = [
    CommandSpec(
        name="history",
        usage="history [SERVICE ENV] [--all] [--limit N] [--before ID]",
        summary="deploys, rollbacks, scale jobs and locks: who asked, who approved, where "
        "from, how it ended",
        handler=history,
        permission="history",
        args=(Arg("options", ArgKind.REST, optional=True),),
        examples=("history api staging", "history --all --limit 50", "history --before J40"),
        details=(
            "Newest first, 20 rows unless --limit N (at most 500); --before ID pages back "
            "from a job id; --all adds every command, reads and refusals included."
        ),
    ),
    CommandSpec(
        name="jobs",
        usage="jobs",
        summary="running and recent jobs, with who approved them and their whole result",
        handler=jobs,
        permission="jobs",
        open_to_all=True,
    ),
]
