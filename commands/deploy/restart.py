"""`restart SERVICE ENV`: the same version, fresh processes, watched like a deploy.

ECS: a new deployment of the revision the service runs (`forceNewDeployment`), rolled out
with the circuit breaker on. Fleets: a rolling restart through SSM with the deploy's
batches and health checks (`commands.deploy.fleet`). Auto Scaling groups: an instance
refresh of the current launch template version (`commands.deploy.asg`). A restart asks for
confirmation on every environment, and for approval on protected ones.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from bot.config import AwsScope
from bot.errors import OperationFailed
from bot.grammar import format_duration
from bot.jobs.context import JobContext, JobInterrupted
from bot.jobs.locks import LockKey
from bot.messages import Message, Tone
from bot.plan import Check, Plan
from bot.ports.ecs import task_definition_name
from bot.services import Services
from bot.spec import Arg, CommandSpec, Context
from commands.deploy import asg, fleet
from commands.deploy.rollout import RolloutEnd, RolloutWatcher, breaker_reason

ECS_KIND = "ecs_restart"
JOB_DEADLINE_MARGIN = timedelta(minutes=1)


async def restart(ctx: Context) -> Plan:
    command = ctx.command
    name, env = command.word("service"), command.word("env")
    service = ctx.services.config.service(name, env)
    if service.kind == "fleet":
        return await fleet.plan_restart(ctx)
    if service.kind == "asg":
        return await asg.plan_restart(ctx)
    return await _plan_ecs_restart(ctx)


async def _plan_ecs_restart(ctx: Context) -> Plan:
    command = ctx.command
    services = ctx.services
    name, env = command.word("service"), command.word("env")
    environment = services.config.environment(env)
    service = services.config.service(name, env)
    assert service.ecs is not None
    target = service.ecs
    state = await services.ecs.describe_service(environment.scope, target)
    where = f"{target.cluster}/{target.service}"
    return Plan(
        title=f"restart {name} in {env}",
        changes=[
            f"ECS service {where}: a new deployment of {state.revision} ({state.image_tag}), "
            f"{state.desired} tasks replaced by fresh ones (forceNewDeployment), circuit "
            "breaker with rollback on",
        ],
        run=run_ecs_restart,
        locks=[LockKey(name, env)],
        destructive=True,
        timeout=service.timeout + JOB_DEADLINE_MARGIN,
        checks=[
            Check(
                f"ECS service {where} is {state.status}: {state.running}/{state.desired} "
                f"running {state.revision} ({state.image_tag})"
            ),
            Check(f"rollout timeout {format_duration(service.timeout)}"),
        ],
        state={
            "kind": ECS_KIND,
            "service": name,
            "env": env,
            "region": environment.region,
            "revision": state.revision,
            "version": state.image_tag,
            "timeout": service.timeout.total_seconds(),
        },
        kind=ECS_KIND,
    )


async def run_ecs_restart(job: JobContext) -> Message:
    """Start the new deployment (once: its id is recorded) and watch it to its end."""
    services = job.services
    state = job.state
    name, env, region = str(state["service"]), str(state["env"]), str(state["region"])
    scope = AwsScope(env, region)
    service = services.config.service(name, env)
    assert service.ecs is not None
    target = service.ecs
    deployment_id = state.get("deployment")
    if deployment_id is None:
        if job.resumed_from is not None and state.get("updating"):
            raise JobInterrupted(
                "the replica running it stopped while it asked ECS for the new deployment",
                hint=f"see `status {name} {env}`; run `{job.record.command}` again if needed",
            )
        if job.resumed_from is not None:
            raise JobInterrupted(
                "the replica running it stopped before it began; nothing was changed",
                hint=f"run `{job.record.command}` again",
            )
        await job.save_state(updating=True)
        deployment_id = await services.ecs.force_new_deployment(scope, target)
        await job.save_state(deployment=deployment_id)
        await job.progress(
            f"ECS deployment {deployment_id} started: fresh tasks of {state['revision']}"
        )
    watcher = RolloutWatcher(
        services.ecs,
        scope,
        target,
        str(deployment_id),
        report=job.progress,
        timing=services.polling,
        started=job.started,
    )
    timeout = float(state.get("timeout") or 900)
    try:
        async with asyncio.timeout(max(timeout - (time.monotonic() - job.started), 0)):
            result = await watcher.watch()
    except TimeoutError:
        raise OperationFailed(
            f"timed out waiting for the restart: {watcher.status_line()}",
            hint=f"ECS carries on by itself; follow it with `status {name} {env}`",
        ) from None
    took = format_duration(job.elapsed())
    if result.end is RolloutEnd.COMPLETED:
        done = result.deployment
        counts = f": {done.running}/{done.desired} fresh tasks running" if done else ""
        return Message(
            text=f"restarted {name} in {env} in {took}{counts} "
            f"({task_definition_name(done.task_definition) if done else state['revision']}, "
            f"{state['version']})",
            tone=Tone.SUCCESS,
        )
    reason = (
        breaker_reason(result.reason) if result.end is RolloutEnd.ROLLED_BACK else result.reason
    )
    raise OperationFailed(f"the restart of {name} in {env} did not finish after {took}: {reason}")


async def precheck_ecs_restart(services: Services, state: dict[str, Any]) -> list[str]:
    """Before a stored restart runs: the service still runs the revision it was planned on."""
    env = str(state["env"])
    service = services.config.service(str(state["service"]), env)
    assert service.ecs is not None
    now = await services.ecs.describe_service(AwsScope(env, str(state["region"])), service.ecs)
    if now.revision != state["revision"]:
        return [
            f"{state['service']} in {env} now runs {now.revision} ({now.image_tag}); the plan "
            f"was made when it ran {state['revision']} ({state['version']})"
        ]
    return []


RUNNERS = {ECS_KIND: run_ecs_restart}
PRECHECKS = {ECS_KIND: precheck_ecs_restart}

SPECS = [
    CommandSpec(
        name="restart",
        usage="restart SERVICE ENV [--dry-run] [--yes]",
        summary="restart a service with the version it runs (ECS, fleets, Auto Scaling groups)",
        handler=restart,
        permission="restart",
        args=(Arg("service"), Arg("env")),
        flags=frozenset({"--dry-run", "--yes"}),
        examples=("restart api staging", "restart web staging --dry-run"),
        details=(
            "ECS: a new deployment of the same revision. Fleets: the deploy command again, "
            "batch by batch, with the version each instance runs. Auto Scaling: an instance "
            "refresh of the current launch template. Asks for confirmation (`approve ID`)."
        ),
    ),
]
