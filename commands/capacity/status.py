"""`status [SERVICE] [ENV]`: what runs, and everything that decides whether to touch it now.

`status SERVICE ENV` shows one service: the version it runs (tag and image digest), its
counts, the rollout, who deployed it and when, the lock (whose, why, which job, until
when), the jobs running on it and the requests waiting for an answer. `status ENV` is one
line per service and database of the environment; `status` alone, of every environment,
read concurrently. `status SERVICE` shows that service in every environment.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import AwsScope, Service
from bot.errors import KajitoriError, Refused
from bot.grammar import format_duration
from bot.messages import Message, Table
from bot.model import ApprovalRequest, DeployRecord, JobRecord, LockRecord
from bot.ports.ecs import (
    EcsServiceState,
    ecr_registry,
    image_repository,
    task_definition_name,
)
from bot.services import Services
from bot.spec import Arg, CommandSpec, Context
from commands.capacity.fleet import service_status

log = logging.getLogger(__name__)

# How much deploy history `status` reads to say who deployed what runs now.
DEPLOYS_READ = 50
# How many recent jobs it reads for what last changed a fleet or a group.
JOBS_READ = 200


@dataclass(frozen=True)
class Activity:
    """What the store knows about every service: locks, running jobs, pending requests."""

    now: datetime
    locks: dict[str, LockRecord]
    jobs: list[JobRecord]
    requests: list[ApprovalRequest]

    def lock(self, key: str) -> LockRecord | None:
        lock = self.locks.get(key)
        return lock if lock is not None and lock.expires_at > self.now else None

    def jobs_on(self, key: str) -> list[JobRecord]:
        return [j for j in self.jobs if key in j.target_keys]

    def requests_on(self, key: str) -> list[ApprovalRequest]:
        return [r for r in self.requests if key in r.targets and r.expires_at > self.now]


async def read_activity(services: Services) -> Activity:
    store = services.store
    locks, jobs, requests = await asyncio.gather(
        store.list_locks(),
        store.list_jobs(limit=JOBS_READ, running_only=True),
        store.list_pending_requests(),
    )
    return Activity(
        now=services.clock.now(),
        locks={lock.key: lock for lock in locks},
        jobs=jobs,
        requests=requests,
    )


def _ago(now: datetime, then: datetime) -> str:
    return f"{format_duration(max(now - then, timedelta(0)))} ago"


def describe_lock(lock: LockRecord | None, jobs: list[JobRecord], now: datetime) -> str:
    if lock is None:
        return "none"
    reason = f": {lock.reason}" if lock.reason else ""
    if lock.job_id is not None:
        job = next((j for j in jobs if j.id == lock.job_id), None)
        what = f" ({job.title})" if job is not None else ""
        return f"held by job J{lock.job_id}{what} for {lock.owner}, until it ends"
    return (
        f"{lock.owner}{reason} (by hand, since {lock.acquired_at:%H:%M}, until "
        f"{lock.expires_at:%H:%M} UTC)"
    )


def describe_job(job: JobRecord, now: datetime) -> str:
    approved = f", approved by {job.approved_by}" if job.approved_by else ""
    return f"{job.ref} {job.title} ({job.member}{approved}, started {_ago(now, job.created_at)})"


def describe_request(request: ApprovalRequest) -> str:
    return (
        f"{request.ref} {request.summary} ({request.kind.value} asked by {request.member}, "
        f"expires {request.expires_at:%H:%M} UTC)"
    )


def activity_fields(activity: Activity, key: str) -> dict[str, str]:
    jobs = activity.jobs_on(key)
    requests = activity.requests_on(key)
    return {
        "lock": describe_lock(activity.lock(key), activity.jobs, activity.now),
        "running jobs": "; ".join(describe_job(j, activity.now) for j in jobs) or "none",
        "pending requests": "; ".join(describe_request(r) for r in requests) or "none",
    }


def _deployed(records: list[DeployRecord], state: EcsServiceState) -> str:
    """Who put the running revision in place, when, from the deploy history."""
    for record in records:
        if record.task_definition == state.task_definition and record.outcome == "succeeded":
            job = f" (job J{record.job_id})" if record.job_id else ""
            approved = ""
            if record.detail.startswith("approved by "):
                approved = f", {record.detail.split(';', 1)[0]}"
            when = record.ended_at or record.started_at
            return (
                f"{record.version} by {record.triggered_by}{approved} at "
                f"{when:%Y-%m-%d %H:%M} UTC, {record.kind}{job}"
            )
    for record in records:
        if record.previous_task_definition == state.task_definition:
            return f"before job J{record.job_id} (not deployed by kajitori since)"
    return "not recorded (no deploy of this revision by kajitori)"


def describe_rollout(state: EcsServiceState) -> str:
    primary = state.primary
    if primary is None:
        return "no deployment"
    when = primary.updated_at or primary.created_at
    at = f" at {when:%Y-%m-%d %H:%M:%S} UTC" if when else ""
    text = f"{primary.rollout_state or primary.status} ({primary.id}{at})"
    if len(state.deployments) > 1:
        text += "; " + ", ".join(
            f"{d.status} {task_definition_name(d.task_definition)} {d.running}/{d.desired}"
            for d in state.deployments
        )
    return text


async def _digest(
    services: Services, scope: AwsScope, state: EcsServiceState, repo: str | None
) -> str:
    """The running image's digest from ECR; what went wrong when it cannot be read."""
    if "@" in state.image:
        return state.image.rsplit("@", 1)[1]
    registry = ecr_registry(state.image)
    where, registry_id = (scope.in_region(registry[1]), registry[0]) if registry else (scope, None)
    try:
        image = await services.ecs.find_image(
            where, repo or image_repository(state.image), state.image_tag, registry_id
        )
    except KajitoriError as error:
        return f"unknown ({error.message})"
    return image.digest if image is not None else "unknown (the tag is no longer in ECR)"


async def _account(ctx: Context, scope: AwsScope) -> str:
    """The account read, for the record: its failure must not hide the service's own state
    (or the error that matters when both fail)."""
    try:
        return await ctx.services.accounts.account(scope)
    except KajitoriError as error:
        return f"unknown ({error.message})"
    except Exception as error:
        return f"unknown ({ctx.services.explain_failure(error) or type(error).__name__})"


async def ecs_detail(ctx: Context, name: str, env_name: str, activity: Activity) -> Message:
    services = ctx.services
    env = services.config.environment(env_name)
    service = services.config.service(name, env_name)
    assert service.ecs is not None
    state, records = await asyncio.gather(
        services.ecs.describe_service(env.scope, service.ecs),
        services.store.list_deploys(name, env_name, limit=DEPLOYS_READ),
    )
    # The service's ARN names the account it is in: STS is asked only where it does not.
    account = state.account or await _account(ctx, env.scope)
    digest = await _digest(services, env.scope, state, service.ecs.repository)
    fields = {
        "version": f"{state.image_tag} ({digest})",
        "task definition": state.revision,
        "tasks": f"desired {state.desired}, running {state.running}, pending {state.pending}",
        "rollout": describe_rollout(state),
        "deployed": _deployed(records, state),
        **activity_fields(activity, f"{name}/{env_name}"),
        # Which account was read: with a role per environment, not always the same one.
        "account": account,
    }
    return Message(
        text=f"{name} in {env_name} (ECS {state.cluster}/{state.service})", fields=fields
    )


def _last_change(activity: Activity, recent: list[JobRecord], key: str) -> str:
    for job in recent:
        if key in job.target_keys and job.status.finished:
            when = job.ended_at or job.updated_at
            approved = f", approved by {job.approved_by}" if job.approved_by else ""
            return (
                f"{job.ref} {job.title} by {job.member}{approved}, {job.status.value} at "
                f"{when:%Y-%m-%d %H:%M} UTC"
            )
    return "none recorded"


async def other_detail(
    ctx: Context, name: str, env_name: str, service: Service, activity: Activity
) -> Message:
    scope = ctx.services.config.environment(env_name).scope
    message, recent, account = await asyncio.gather(
        service_status(ctx, name, env_name, service),
        ctx.services.store.list_jobs(limit=JOBS_READ),
        _account(ctx, scope),
    )
    key = f"{name}/{env_name}"
    fields = {
        **message.fields,
        "last change": _last_change(activity, recent, key),
        **activity_fields(activity, key),
        "account": account,
    }
    return message.model_copy(update={"fields": fields})


# -- the overview: one line per service ------------------------------------------------


def _short_lock(lock: LockRecord | None) -> str:
    if lock is None:
        return ""
    if lock.job_id is not None:
        return f"J{lock.job_id}"
    return f"{lock.owner} until {lock.expires_at:%H:%M}"


async def _service_row(
    services: Services, env_name: str, name: str, service: Service
) -> tuple[str, str, str, str]:
    """(kind, what runs, counts, state) of one service."""
    scope = services.config.environment(env_name).scope
    if service.ecs is not None:
        state = await services.ecs.describe_service(scope, service.ecs)
        primary = state.primary
        rollout = (primary.rollout_state or primary.status) if primary else "no deployment"
        if len(state.deployments) > 1:
            rollout += f" ({len(state.deployments)} deployments)"
        counts = f"{state.running}/{state.desired} tasks"
        if state.pending:
            counts += f", {state.pending} pending"
        return "ECS", f"{state.image_tag} ({state.revision})", counts, rollout
    if service.fleet is not None:
        instances = await services.ec2.fleet_instances(scope, name, env_name)
        types = ", ".join(
            f"{n} × {t}" for t, n in Counter(i.instance_type for i in instances).items()
        )
        states = Counter(i.state for i in instances)
        running = states.get("running", 0)
        others = ", ".join(f"{n} {s}" for s, n in states.items() if s != "running")
        counts = f"{running} running" + (f", {others}" if others else "")
        return "EC2 fleet", types or "no instances", counts, ""
    assert service.asg is not None
    group = await services.autoscaling.group(scope, service.asg.name)
    counts = f"{group.in_service}/{group.desired} in service (min {group.min_size}, max {group.max_size})"
    return "Auto Scaling", group.instance_type or "", counts, ""


async def _database_row(
    services: Services, env_name: str, cluster_id: str
) -> tuple[str, str, str, str]:
    scope = services.config.environment(env_name).scope
    cluster = await services.rds.cluster(scope, cluster_id)
    classes = ", ".join(
        f"{n} × {c}" for c, n in Counter(m.instance_class for m in cluster.members).items()
    )
    pending = sorted({m.pending_class for m in cluster.members if m.pending_class})
    state = ", ".join(f"{n} {s}" for s, n in Counter(m.status for m in cluster.members).items())
    if pending:
        state += f"; pending {', '.join(pending)}"
    return cluster.engine, classes, f"{len(cluster.members)} instances", state


async def _row(
    services: Services,
    activity: Activity,
    env_name: str,
    name: str,
    read: asyncio.Future[tuple[str, str, str, str]] | None,
) -> list[str]:
    key = f"{name}/{env_name}"
    if read is None:
        kind, runs, counts, state = "database", "", "", "no cluster in the config"
    else:
        try:
            kind, runs, counts, state = await read
        except Exception as error:
            # One service AWS cannot describe must not hide the others.
            log.warning("status of %s failed: %r", key, error)
            reason = error.message if isinstance(error, KajitoriError) else type(error).__name__
            kind, runs, counts, state = "?", "", "", f"⚠ could not read: {reason}"
    jobs = " ".join(j.ref for j in activity.jobs_on(key))
    requests = " ".join(r.ref for r in activity.requests_on(key))
    return [name, kind, runs, counts, state, _short_lock(activity.lock(key)), jobs, requests]


async def overview(ctx: Context, envs: list[str], only: str | None = None) -> Message:
    services = ctx.services
    config = services.config
    activity = await read_activity(services)
    rows: list[tuple[str, asyncio.Future[list[str]]]] = []
    for env_name in envs:
        env = config.environment(env_name)
        for name, service in env.services.items():
            if only is None or name == only:
                read = asyncio.ensure_future(_service_row(services, env_name, name, service))
                rows.append(
                    (
                        env_name,
                        asyncio.ensure_future(_row(services, activity, env_name, name, read)),
                    )
                )
        for name, database in env.databases.items():
            if only is None or name == only:
                db_read = (
                    asyncio.ensure_future(_database_row(services, env_name, database.cluster))
                    if database.cluster
                    else None
                )
                rows.append(
                    (
                        env_name,
                        asyncio.ensure_future(_row(services, activity, env_name, name, db_read)),
                    )
                )
    results = await asyncio.gather(*(future for _, future in rows))
    table_rows = [[env_name, *row] for (env_name, _), row in zip(rows, results, strict=True)]
    columns = ["env", "name", "kind", "runs", "count", "state", "lock", "jobs", "requests"]
    if len(envs) == 1:
        columns = columns[1:]
        table_rows = [row[1:] for row in table_rows]
    where = envs[0] if len(envs) == 1 else "every environment"
    head = f"status of {only} in {where}" if only else f"status of {where}"
    note = "`status SERVICE ENV` for one service: version, who deployed it, lock, jobs, requests"
    return Message(text=head, table=Table(columns=columns, rows=table_rows, note=note))


async def status(ctx: Context) -> Message:
    command = ctx.command
    config = ctx.services.config
    first, second = command.optional_word("service"), command.optional_word("env")
    access = ctx.services.access
    visible = [e for e in config.environments if access.allows(ctx.member, "status", e)]
    if first is not None and second is not None:
        if first in config.environment(second).databases:
            return await overview(ctx, [second], only=first)
        service = config.service(first, second)
        activity = await read_activity(ctx.services)
        if service.ecs is not None:
            return await ecs_detail(ctx, first, second, activity)
        return await other_detail(ctx, first, second, service, activity)
    if first is None:
        if not visible:
            raise Refused(f"{ctx.member} may see the status of no environment")
        return await overview(ctx, visible)
    if first in config.environments:
        access.check_permission(ctx.member, "status", first)
        return await overview(ctx, [first])
    holding = [
        e
        for e in visible
        if first in config.environments[e].services or first in config.environments[e].databases
    ]
    if not holding:
        envs = ", ".join(config.environments)
        raise Refused(
            f"{first!r} is neither an environment ({envs}) nor a service or database of one",
            hint="usage: status [SERVICE] [ENV]",
        )
    return await overview(ctx, holding, only=first)


SPECS = [
    CommandSpec(
        name="status",
        usage="status [SERVICE] [ENV]",
        summary="one service (version, who deployed it, lock, jobs, requests), one "
        "environment, or everything",
        handler=status,
        permission="status",
        args=(Arg("service", optional=True), Arg("env", optional=True)),
        examples=("status api staging", "status staging", "status"),
        details=(
            "`status SERVICE ENV`: the version running (image tag and digest), desired, "
            "running and pending counts, the rollout, who deployed it and when, the lock, "
            "running jobs and pending requests on it. `status ENV`: one line per service "
            "and database. `status`: every environment, read concurrently. "
            "`status SERVICE`: that service in every environment."
        ),
    )
]
