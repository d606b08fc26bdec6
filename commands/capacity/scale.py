"""`scale out SERVICE ENV COUNT|+N|-N` and `scale up TARGET ENV SIZE [--now]`.

Every scale out checks the quota first and refuses before any change when it would not fit.
A plan is resolved when it is made: absolute counts (`from 2 to 4`), instance ids, instance
types and classes. An approved or confirmed plan runs exactly so, and only while the service
still is as it was planned against (its precheck); otherwise nothing runs. Scale in (fewer
tasks or instances) asks for confirmation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot.config import AsgTarget, AwsScope, Database, EcsTarget, Environment, Service
from bot.errors import KajitoriError, OperationFailed, Refused
from bot.grammar import CountChange
from bot.jobs.context import JobContext
from bot.jobs.locks import LockKey
from bot.messages import Message
from bot.plan import Check, JobBody, Plan, Precheck
from bot.polling import Polling
from bot.ports.capacity import (
    EC2_STANDARD_VCPUS,
    FARGATE_VCPUS,
    DbInstance,
    Instance,
    Quota,
    is_standard_on_demand,
)
from bot.services import Services
from bot.spec import Arg, ArgKind, CommandSpec, Context
from commands.capacity.fleet import Fleet, to_remove
from commands.capacity.sizing import (
    Headroom,
    check_headroom,
    counted,
    number,
    some_ids,
    wait_until,
)

NOW_FLAG = "--now"
# How long one database instance may take to change its class.
DATABASE_TIMEOUT = timedelta(minutes=45)


def _target_count(name: str, env: str, current: int, change: CountChange, unit: str) -> int:
    target = change.target(current)
    if target < 0:
        raise Refused(f"{name} in {env} has {current} {unit}; {change} would leave {target}")
    return target


def _title(name: str, env: str, current: int, target: int) -> str:
    verb = "scale out" if target > current else "scale in"
    return f"{verb} {name} in {env} from {current} to {target}"


async def _ec2_vcpus(ports: Services, scope: AwsScope, vcpus: float, what: str) -> list[Check]:
    """The headroom check for `vcpus` more On-Demand Standard vCPUs; Refused when short."""
    if vcpus <= 0:
        return []

    async def read_quota() -> Quota | str:
        try:
            return await ports.quotas.quota(scope, "ec2", EC2_STANDARD_VCPUS)
        except Refused as error:
            return error.message

    quota, used = await asyncio.gather(read_quota(), ports.quotas.standard_vcpus_in_use(scope))
    if isinstance(quota, str):
        # Without the quota (a missing permission) the change may still be needed urgently.
        return [Check.not_run(f"the On-Demand Standard vCPU quota in {scope.region}: {quota}")]
    return [
        Check(check_headroom(vcpus, Headroom(quota, used), "vCPUs", scope.region) + f" for {what}")
    ]


async def _instance_vcpus(ports: Services, scope: AwsScope, instance_type: str) -> int:
    types = await ports.ec2.instance_types(scope, [instance_type])
    if instance_type not in types:
        raise Refused(f"unknown instance type {instance_type!r} in {scope}")
    return types[instance_type].vcpus


def _plan(
    name: str,
    env: str,
    *,
    kind: str,
    state: dict[str, Any],
    title: str,
    changes: list[str],
    checks: list[Check],
    destructive: bool,
    timeout: timedelta,
) -> Plan:
    return Plan(
        title=title,
        changes=changes,
        run=RUNNERS[kind],
        kind=kind,
        state={"service": name, "env": env, **state},
        locks=[LockKey(name, env)],
        destructive=destructive,
        timeout=timeout,
        checks=checks,
    )


def _where(services: Services, state: dict[str, Any]) -> tuple[str, str, Environment, Service]:
    """The service (or database) a plan's state names, as the config has it now."""
    name, env_name = str(state["service"]), str(state["env"])
    env = services.config.environment(env_name)
    return name, env_name, env, services.config.service(name, env_name)


# scale out: ECS


async def _wait_reporting(
    job: JobContext,
    read: Callable[[], Awaitable[tuple[str, bool]]],
    *,
    what: str,
    timeout: float,
    poll: Polling,
) -> None:
    """Poll `read` (a progress line and whether the wait is over) until it is over, posting
    each line that differs from the last one posted."""
    last: str | None = None

    async def settled() -> bool | None:
        nonlocal last
        line, done = await read()
        if line != last:
            last = line
            await job.progress(line)
        return True if done else None

    await wait_until(settled, what=what, timeout=timeout, poll=poll)


async def _fargate_vcpus(ports: Services, scope: AwsScope, vcpus: float, what: str) -> list[Check]:
    """The headroom check for `vcpus` more Fargate vCPUs; Refused when short."""
    try:
        quota = await ports.quotas.quota(scope, "fargate", FARGATE_VCPUS)
    except Refused as error:
        return [Check.not_run(f"the Fargate vCPU quota in {scope.region}: {error.message}")]
    used = await ports.quotas.fargate_vcpus_in_use(scope)
    headroom = check_headroom(vcpus, Headroom(quota, used), "Fargate vCPUs", scope.region)
    return [Check(f"{headroom} for {what}")]


async def _scale_ecs(
    ctx: Context, name: str, env: Environment, target: EcsTarget, service: Service
) -> Plan | Message:
    ports = ctx.services
    env_name = ctx.command.word("env")
    scope = env.scope
    state = await ports.ecs.describe_capacity(scope, target)
    current = state.desired
    count = _target_count(name, env_name, current, ctx.command.count("count"), "tasks")
    if count == current:
        return Message(text=f"{name} in {env_name} already wants {counted(current, 'task')}")
    checks: list[Check] = []
    if count > current and state.launch_type == "FARGATE" and state.task_vcpus:
        added = count - current
        checks = await _fargate_vcpus(
            ports,
            scope,
            added * state.task_vcpus,
            f"{added} × {number(state.task_vcpus)} vCPU tasks",
        )

    return _plan(
        name,
        env_name,
        kind="scale-ecs",
        state={"from": current, "to": count},
        title=_title(name, env_name, current, count),
        changes=[f"ECS {target.cluster}/{target.service}: desired count {current} → {count}"],
        checks=checks,
        destructive=count < current,
        timeout=service.timeout,
    )


async def run_scale_ecs(job: JobContext) -> Message:
    ports = job.services
    name, env_name, env, service = _where(ports, job.state)
    target = service.ecs
    assert target is not None
    scope = env.scope
    current, count = int(job.state["from"]), int(job.state["to"])
    await ports.ecs.set_desired_count(scope, target, count)
    await job.progress(f"desired count {current} → {count}; waiting for tasks")

    async def read() -> tuple[str, bool]:
        now = await ports.ecs.describe_capacity(scope, target)
        done = now.running == count and now.pending == 0 and now.desired == count
        return f"running {now.running} of {count}, pending {now.pending}", done

    await _wait_reporting(
        job,
        read,
        what=f"{count} running tasks of {target.cluster}/{target.service}",
        timeout=service.timeout.total_seconds(),
        poll=ports.polling,
    )
    return Message(text=f"{name} in {env_name} runs {counted(count, 'task')} (was {current})")


async def _still_fits(check: Awaitable[list[Check]]) -> list[str]:
    """A quota check run again before a stored plan runs: its refusal, as a difference."""
    try:
        await check
    except Refused as error:
        return [error.message]
    return []


async def precheck_scale_ecs(ports: Services, state: dict[str, Any]) -> list[str]:
    name, env_name, env, service = _where(ports, state)
    assert service.ecs is not None
    now = await ports.ecs.describe_capacity(env.scope, service.ecs)
    if now.desired != state["from"]:
        return [
            f"{name} in {env_name} now wants {now.desired} tasks; the plan was made when it "
            f"wanted {state['from']}"
        ]
    added = int(state["to"]) - int(state["from"])
    if added > 0 and now.launch_type == "FARGATE" and now.task_vcpus:
        return await _still_fits(
            _fargate_vcpus(ports, env.scope, added * now.task_vcpus, f"{added} tasks")
        )
    return []


# scale out: Auto Scaling


async def _scale_asg(
    ctx: Context, name: str, env: Environment, target: AsgTarget, service: Service
) -> Plan | Message:
    ports = ctx.services
    env_name = ctx.command.word("env")
    scope = env.scope
    group = await ports.autoscaling.group(scope, target.name)
    current = group.desired
    count = _target_count(name, env_name, current, ctx.command.count("count"), "instances")
    if count == current:
        return Message(text=f"{name} in {env_name} already wants {counted(current, 'instance')}")
    numbers = f"min {group.min_size}, max {group.max_size}, desired {group.desired}"
    if count < group.min_size:
        raise Refused(
            f"{group.name} keeps at least {group.min_size} instances ({numbers}); "
            f"{count} is below its min",
            hint="lower the group's min size in AWS first",
        )
    raise_max: int | None = None
    changes = [f"Auto Scaling group {group.name}: desired {current} → {count}"]
    if count > group.max_size:
        if not target.raise_max:
            raise Refused(
                f"{group.name} allows at most {group.max_size} instances ({numbers}); "
                f"{count} is beyond its max",
                hint="raise the group's max size, or set `asg.raise_max: true` for "
                f"{name} in the config",
            )
        raise_max = count
        changes.append(f"max size {group.max_size} → {count} (asg.raise_max)")
    checks: list[Check] = []
    if count > current:
        instance_type = group.instance_type
        if instance_type is None:
            checks = [Check.not_run(f"the vCPU quota: {group.name} names no instance type")]
        elif not is_standard_on_demand(instance_type):
            checks = [
                Check.not_run(
                    f"the vCPU quota: {instance_type} is outside the On-Demand Standard "
                    f"bucket ({EC2_STANDARD_VCPUS}) this check reads"
                )
            ]
        else:
            per_instance = await _instance_vcpus(ports, scope, instance_type)
            checks = await _ec2_vcpus(
                ports,
                scope,
                (count - current) * per_instance,
                f"{count - current} × {instance_type}",
            )

    return _plan(
        name,
        env_name,
        kind="scale-asg",
        state={
            "group": group.name,
            "from": current,
            "to": count,
            "raise_max": raise_max,
            "min_size": group.min_size,
            "max_size": group.max_size,
        },
        title=_title(name, env_name, current, count),
        changes=changes,
        checks=checks,
        destructive=count < current,
        timeout=service.timeout,
    )


async def run_scale_asg(job: JobContext) -> Message:
    ports = job.services
    name, env_name, env, service = _where(ports, job.state)
    scope = env.scope
    group = str(job.state["group"])
    current, count = int(job.state["from"]), int(job.state["to"])
    raise_max = job.state.get("raise_max")
    await ports.autoscaling.set_capacity(scope, group, count, raise_max)
    await job.progress(f"desired capacity {current} → {count}; waiting for instances")

    async def read() -> tuple[str, bool]:
        now = await ports.autoscaling.group(scope, group)
        done = now.in_service == count and len(now.instances) == count
        line = f"in service {now.in_service} of {count} ({counted(len(now.instances), 'instance')})"
        return line, done

    await _wait_reporting(
        job,
        read,
        what=f"{count} instances in service in {group}",
        timeout=service.timeout.total_seconds(),
        poll=ports.polling,
    )
    raised = f", max {raise_max}" if raise_max is not None else ""
    return Message(
        text=f"{name} in {env_name} has {counted(count, 'instance')} in service "
        f"(was {current}{raised})"
    )


async def precheck_scale_asg(ports: Services, state: dict[str, Any]) -> list[str]:
    name, env_name, env, _ = _where(ports, state)
    group = await ports.autoscaling.group(env.scope, str(state["group"]))
    planned = (state["from"], state["min_size"], state["max_size"])
    now = (group.desired, group.min_size, group.max_size)
    if now != planned:
        return [
            f"{group.name} ({name} in {env_name}) now has desired {now[0]}, min {now[1]}, "
            f"max {now[2]}; the plan was made at desired {planned[0]}, min {planned[1]}, "
            f"max {planned[2]}"
        ]
    added = int(state["to"]) - int(state["from"])
    instance_type = group.instance_type
    if added > 0 and instance_type is not None and is_standard_on_demand(instance_type):
        per_instance = await _instance_vcpus(ports, env.scope, instance_type)
        return await _still_fits(
            _ec2_vcpus(ports, env.scope, added * per_instance, f"{added} × {instance_type}")
        )
    return []


# scale out: EC2 fleet


async def _scale_fleet(
    ctx: Context, name: str, env: Environment, service: Service
) -> Plan | Message:
    assert service.fleet is not None
    ports = ctx.services
    env_name = ctx.command.word("env")
    scope = env.scope
    fleet = Fleet(ports, scope, name, env_name, service.fleet)
    members = await fleet.members()
    current = len(members)
    count = _target_count(name, env_name, current, ctx.command.count("count"), "instances")
    if count == current:
        return Message(text=f"{name} in {env_name} already has {counted(current, 'instance')}")
    if count > service.fleet.max_instances:
        raise Refused(
            f"{name} in {env_name} may have at most {service.fleet.max_instances} instances "
            f"(fleet.max_instances); {count} is beyond it"
        )
    if count < current:
        return _fleet_scale_in(
            ctx, name, fleet=fleet, members=members, count=count, service=service
        )
    template = await fleet.template()
    instance_type = template.instance_type
    if instance_type is None:
        raise Refused(f"launch template {template.name} sets no instance type")
    per_instance = await _instance_vcpus(ports, scope, instance_type)
    adding = count - current
    placement = await fleet.placement(template, members, adding)
    where = fleet.describe_placement(placement)
    changes = [
        f"launch {adding} × {instance_type} from launch template {template.name} "
        f"v{template.version}" + (f" ({where})" if where else ""),
        f"register them with {service.fleet.target_group} and wait until healthy",
    ]
    if is_standard_on_demand(instance_type):
        checks = await _ec2_vcpus(
            ports, scope, adding * per_instance, f"{adding} × {instance_type}"
        )
    else:
        checks = [
            Check.not_run(
                f"the vCPU quota: {instance_type} is outside the On-Demand Standard "
                f"bucket ({EC2_STANDARD_VCPUS}) this check reads"
            )
        ]

    return _plan(
        name,
        env_name,
        kind="scale-fleet-out",
        state={
            "from": current,
            "to": count,
            "instances": sorted(m.id for m in members),
            "instance_type": instance_type,
            "launch_template": template.name,
            "template_version": template.version,
        },
        title=_title(name, env_name, current, count),
        changes=changes,
        checks=checks,
        destructive=False,
        timeout=service.timeout,
    )


def _fleet(ports: Services, job: JobContext | None, state: dict[str, Any]) -> Fleet:
    name, env_name, env, service = _where(ports, state)
    assert service.fleet is not None
    fleet = Fleet(ports, env.scope, name, env_name, service.fleet)
    fleet.job = job
    return fleet


async def run_scale_fleet_out(job: JobContext) -> Message:
    fleet = _fleet(job.services, job, job.state)
    name, env_name = fleet.service, fleet.env
    now = await fleet.members()
    missing = int(job.state["to"]) - len(now)
    if missing <= 0:
        return Message(text=f"{name} in {env_name} already has {counted(len(now), 'instance')}")
    launched = await fleet.launch(missing, now)
    return Message(
        text=f"{name} in {env_name} scaled out from {len(now)} to {len(now) + len(launched)}: "
        f"{some_ids(launched)} healthy in {fleet.target.target_group}"
    )


async def _fleet_differences(fleet: Fleet, state: dict[str, Any]) -> list[str]:
    """The fleet's instances (and their types, when the plan recorded them) against the
    plan's."""
    members = await fleet.members()
    now = sorted(m.id for m in members)
    planned = list(state["instances"])
    where = f"{fleet.service} in {fleet.env}"
    if now != planned:
        return [
            f"{where} now has {len(now)} instances ({', '.join(now) or 'none'}); the plan was "
            f"made with {len(planned)} ({', '.join(planned) or 'none'})"
        ]
    types = state.get("types")
    if isinstance(types, dict):
        changed = [
            f"{m.id} is now {m.instance_type} (planned from {types.get(m.id)})"
            for m in members
            if types.get(m.id) != m.instance_type
        ]
        if changed:
            return [f"{where}: " + "; ".join(changed)]
    return []


async def precheck_scale_fleet_out(ports: Services, state: dict[str, Any]) -> list[str]:
    fleet = _fleet(ports, None, state)
    differences = await _fleet_differences(fleet, state)
    template = await fleet.template()
    planned = (state["template_version"], state["instance_type"])
    if (template.version, template.instance_type) != planned:
        differences.append(
            f"launch template {template.name} is now v{template.version} "
            f"({template.instance_type}); the plan was made with v{planned[0]} ({planned[1]})"
        )
    instance_type = str(state["instance_type"])
    added = int(state["to"]) - int(state["from"])
    if not differences and is_standard_on_demand(instance_type):
        per_instance = await _instance_vcpus(ports, fleet.scope, instance_type)
        differences += await _still_fits(
            _ec2_vcpus(ports, fleet.scope, added * per_instance, f"{added} × {instance_type}")
        )
    return differences


def _fleet_scale_in(
    ctx: Context,
    name: str,
    *,
    fleet: Fleet,
    members: list[Instance],
    count: int,
    service: Service,
) -> Plan:
    env_name = fleet.env
    chosen = to_remove(members, count)
    changes = [
        f"deregister {i.id} ({i.instance_type}, {i.availability_zone or '?'}, launched "
        f"{i.launched_at:%Y-%m-%d %H:%M} UTC), wait for draining, terminate it"
        for i in chosen
    ]

    return _plan(
        name,
        env_name,
        kind="scale-fleet-in",
        state={
            "from": len(members),
            "to": count,
            "instances": sorted(m.id for m in members),
            "remove": [i.id for i in chosen],
        },
        title=_title(name, env_name, len(members), count),
        changes=changes,
        checks=[],
        destructive=True,
        timeout=service.timeout,
    )


async def run_scale_fleet_in(job: JobContext) -> Message:
    fleet = _fleet(job.services, job, job.state)
    name, env_name = fleet.service, fleet.env
    planned = set(job.state["remove"])
    # Only the instances the plan named; any already gone are skipped.
    now = [i for i in await fleet.members() if i.id in planned]
    if not now:
        return Message(text=f"the instances to remove from {name} in {env_name} are gone")
    removed = await fleet.remove(now)
    left = len(await fleet.members())
    return Message(text=f"{name} in {env_name} scaled in to {left}: terminated {some_ids(removed)}")


async def precheck_fleet(ports: Services, state: dict[str, Any]) -> list[str]:
    return await _fleet_differences(_fleet(ports, None, state), state)


async def scale_out(ctx: Context) -> Plan | Message:
    command = ctx.command
    name, env_name = command.word("service"), command.word("env")
    config = ctx.services.config
    env = config.environment(env_name)
    service = config.service(name, env_name)
    if service.ecs is not None:
        return await _scale_ecs(ctx, name, env, service.ecs, service)
    if service.asg is not None:
        return await _scale_asg(ctx, name, env, service.asg, service)
    return await _scale_fleet(ctx, name, env, service)


# scale up: EC2 fleet


async def _resize_fleet(
    ctx: Context, name: str, env: Environment, service: Service, size: str
) -> Plan | Message:
    assert service.fleet is not None
    ports = ctx.services
    env_name = ctx.command.word("env")
    scope = env.scope
    fleet = Fleet(ports, scope, name, env_name, service.fleet)
    members = await fleet.members()
    if not members:
        raise Refused(f"{name} in {env_name} has no instances to resize")
    types = await ports.ec2.instance_types(scope, [size, *(m.instance_type for m in members)])
    if size not in types:
        raise Refused(
            f"unknown instance type {size!r} in {scope}: nothing was changed",
            hint="use an EC2 instance type such as t3.large or m7i.xlarge",
        )
    wanted = types[size]
    misfits = [m for m in members if m.architecture not in wanted.architectures]
    if misfits:
        raise Refused(
            f"{size} runs {'/'.join(wanted.architectures)}; "
            + ", ".join(f"{m.id} is {m.architecture}" for m in misfits)
            + ": nothing was changed",
            hint="pick a type of the same architecture (an AMI is built for one)",
        )
    moving = [m for m in members if m.state not in ("running", "stopped")]
    if moving:
        raise Refused(
            "instances are changing state: "
            + ", ".join(f"{m.id} {m.state}" for m in moving)
            + "; try again when they settle"
        )
    resize = sorted(
        (m for m in members if m.instance_type != size), key=lambda m: (m.launched_at, m.id)
    )
    if not resize:
        return Message(text=f"{name} in {env_name} already runs {size}")
    running = [m for m in members if m.state == "running"]
    health = await fleet.health()
    unhealthy = [m for m in running if m.id not in health or health[m.id].state != "healthy"]
    if unhealthy:
        raise Refused(
            f"{name} in {env_name} is not fully healthy ("
            + ", ".join(
                f"{m.id} {health[m.id].state if m.id in health else 'not registered'}"
                for m in unhealthy
            )
            + "); a rolling resize takes one instance out at a time and needs the others healthy"
        )
    delta = sum(
        wanted.vcpus - types[m.instance_type].vcpus
        for m in resize
        if m.state == "running" and m.instance_type in types
    )
    checks = [Check(f"{size} exists ({wanted.vcpus} vCPUs, {'/'.join(wanted.architectures)})")]
    if delta > 0 and is_standard_on_demand(size):
        checks += await _ec2_vcpus(ports, scope, delta, f"{len(resize)} × {size}")
    template = await fleet.template()
    changes = [
        "one instance at a time: deregister, drain, stop, change the type, start, "
        "register, wait until healthy",
        *(
            f"{m.id} ({m.availability_zone or '?'}, {m.state}): {m.instance_type} → {size}"
            for m in resize
        ),
        f"launch template {template.name}: a new default version with {size}",
    ]
    alone = len(running) == 1 and running[0] in resize
    if alone:
        changes.append(f"{name} has one running instance: it stops serving while it is resized")
    return _plan(
        name,
        env_name,
        kind="resize-fleet",
        state={
            "size": size,
            "instances": sorted(m.id for m in members),
            "types": {m.id: m.instance_type for m in members},
            "order": [m.id for m in resize],
            "serving": [m.id for m in running],
        },
        title=f"scale up {name} in {env_name} to {size}",
        changes=changes,
        checks=checks,
        destructive=env.protected or alone,
        timeout=service.timeout * len(resize),
    )


async def run_resize_fleet(job: JobContext) -> Message:
    ports = job.services
    fleet = _fleet(ports, job, job.state)
    name, env_name, scope = fleet.service, fleet.env, fleet.scope
    size = str(job.state["size"])
    order = [str(i) for i in job.state["order"]]
    serving = [str(i) for i in job.state["serving"]]
    current = {m.id: m for m in await fleet.members()}
    done: list[str] = []
    for step, instance_id in enumerate(order, 1):
        instance = current.get(instance_id)
        if instance is None or instance.instance_type == size:
            continue
        label = f"{step}/{len(order)}"
        try:
            if instance.state == "stopped":
                # Not serving: change the type and leave it stopped.
                await ports.ec2.set_instance_type(scope, instance.id, size)
                await job.progress(f"{label} {instance.id} (stopped): → {size}")
            else:
                await fleet.others_healthy(instance.id, serving)
                await fleet.resize(instance, size, label)
        except KajitoriError as error:
            left = [i for i in order if i not in done and i != instance_id]
            raise OperationFailed(
                f"stopped at {instance_id}: {error}. Resized: {', '.join(done) or 'none'}; "
                f"not touched: {', '.join(left) or 'none'}. The others kept serving."
            ) from None
        done.append(instance_id)
        await job.save_state(resized=done)
    template = await fleet.template()
    version = await ports.ec2.set_template_instance_type(scope, template, size)
    return Message(
        text=f"{name} in {env_name} now runs {size}: {', '.join(done)} resized one at a "
        f"time; launch template {template.name} v{version} is the default"
    )


# scale up: RDS / Aurora


def _role(instance: DbInstance) -> str:
    if instance.writer is None:
        return "instance"
    return "writer" if instance.writer else "reader"


async def _resize_database(
    ctx: Context, name: str, env: Environment, database: Database, size: str
) -> Plan | Message:
    ports = ctx.services
    env_name = ctx.command.word("env")
    scope = env.scope
    if database.cluster is None:
        raise Refused(
            f"databases.{name}.cluster is not set for {env_name}: I do not know which "
            "cluster to resize"
        )
    if not size.startswith("db."):
        raise Refused(f"{size!r} is not a DB instance class (they look like db.r6g.xlarge)")
    cluster = await ports.rds.cluster(scope, database.cluster)
    available = await ports.rds.class_available(scope, cluster.engine, size)
    if available is False:
        current = sorted({m.instance_class for m in cluster.members})
        raise Refused(
            f"{size} is not an orderable DB instance class for {cluster.engine} in {scope.region} "
            "(DescribeOrderableDBInstanceOptions): nothing was changed",
            hint=f"its instances are {', '.join(current) or 'none'}; pick a class AWS offers "
            f"for {cluster.engine}, such as db.r6g.large or db.r6g.xlarge",
        )
    checks = (
        [Check(f"{size} is orderable for {cluster.engine} in {scope.region}")]
        if available
        else [
            Check.not_run(
                f"whether {size} is offered: DescribeOrderableDBInstanceOptions lists nothing "
                f"for {cluster.engine} in {scope.region}"
            )
        ]
    )
    apply_now = NOW_FLAG in ctx.command.flags
    # Readers first: the writer changes last, so reads keep being served meanwhile.
    members = sorted(cluster.members, key=lambda m: (bool(m.writer), m.id))
    resize = [m for m in members if m.instance_class != size]
    if not apply_now:
        # A change already waiting for the window needs nothing more; --now applies it now.
        resize = [m for m in resize if m.pending_class != size]
    if not resize:
        if members and all(m.instance_class == size for m in members):
            return Message(text=f"{name} ({cluster.id}) in {env_name} already is {size}")
        return Message(
            text=f"{name} ({cluster.id}) in {env_name} will be {size} in its maintenance "
            f"window (pending); add {NOW_FLAG} to apply it now"
        )
    windows = sorted({m.maintenance_window for m in resize if m.maintenance_window})
    when = (
        "now, one instance at a time (readers first; the writer restarts last)"
        if apply_now
        else f"in the maintenance window ({', '.join(windows) or 'the next one'}); "
        f"add {NOW_FLAG} to apply now"
    )
    changes = [
        *(
            f"{m.id} ({_role(m)}): {m.instance_class} → {size}"
            + (" (pending until now)" if m.pending_class == size else "")
            for m in resize
        ),
        f"applied {when}",
    ]

    return _plan(
        name,
        env_name,
        kind="resize-database",
        state={
            "cluster": cluster.id,
            "size": size,
            "apply_now": apply_now,
            "windows": windows,
            "members": {m.id: [m.instance_class, m.pending_class] for m in cluster.members},
            "resize": [[m.id, _role(m), m.instance_class] for m in resize],
        },
        title=f"scale up {name} in {env_name} to {size}",
        changes=changes,
        checks=checks,
        destructive=env.protected,
        timeout=DATABASE_TIMEOUT * len(resize) if apply_now else timedelta(minutes=5),
    )


def _database_where(ports: Services, state: dict[str, Any]) -> tuple[str, str, AwsScope]:
    name, env_name = str(state["service"]), str(state["env"])
    return name, env_name, ports.config.environment(env_name).scope


async def run_resize_database(job: JobContext) -> Message:
    ports = job.services
    name, env_name, scope = _database_where(ports, job.state)
    size = str(job.state["size"])
    apply_now = bool(job.state["apply_now"])
    cluster = str(job.state["cluster"])
    windows = [str(w) for w in job.state["windows"]]
    lines: list[str] = []
    for member_id, role, instance_class in job.state["resize"]:
        changed = await ports.rds.modify_class(scope, member_id, size, apply_now=apply_now)
        if not apply_now:
            pending = changed.pending_class or size
            lines.append(f"{member_id} ({role}): {instance_class} → {pending} pending")
            continue
        await job.progress(f"{member_id} ({role}): {instance_class} → {size}, modifying")

        async def applied(instance_id: str = member_id) -> bool | None:
            now = await ports.rds.instance(scope, instance_id)
            return True if now.status == "available" and now.instance_class == size else None

        await wait_until(
            applied,
            what=f"{member_id} to be available as {size}",
            timeout=DATABASE_TIMEOUT.total_seconds(),
            poll=ports.polling,
        )
        await job.progress(f"{member_id} ({role}) is available as {size}")
        lines.append(f"{member_id} ({role}): now {size}")
    head = (
        f"{name} ({cluster}) in {env_name} resized to {size}"
        if apply_now
        else f"{name} ({cluster}) in {env_name}: {size} applies in the maintenance "
        f"window ({', '.join(windows) or 'the next one'})"
    )
    return Message(text="\n".join([head, *lines]))


async def precheck_resize_database(ports: Services, state: dict[str, Any]) -> list[str]:
    name, env_name, scope = _database_where(ports, state)
    cluster = await ports.rds.cluster(scope, str(state["cluster"]))
    now = {m.id: [m.instance_class, m.pending_class] for m in cluster.members}
    planned = state["members"]
    if now != planned:
        shown = ", ".join(f"{i} {c[0]}" + (f" (→ {c[1]})" if c[1] else "") for i, c in now.items())
        return [f"{name} ({cluster.id}) in {env_name} changed since the plan was made: {shown}"]
    return []


async def scale_up(ctx: Context) -> Plan | Message:
    command = ctx.command
    name, env_name, size = command.word("target"), command.word("env"), command.word("size")
    env = ctx.services.config.environment(env_name)
    service = env.services.get(name)
    if service is not None:
        if service.fleet is not None:
            return await _resize_fleet(ctx, name, env, service, size)
        if service.asg is not None:
            raise Refused(
                f"{name} in {env_name} is an Auto Scaling group: change the instance type in "
                "its launch template, and the group replaces instances as it scales"
            )
        raise Refused(
            f"{name} in {env_name} runs on ECS: its size is in the task definition; deploy "
            "a task definition with more CPU and memory"
        )
    database = env.databases.get(name)
    if database is not None:
        return await _resize_database(ctx, name, env, database, size)
    known = ", ".join([*env.services, *env.databases]) or "none"
    raise Refused(f"unknown service or database {name!r} in {env_name} (known: {known})")


RUNNERS: dict[str, JobBody] = {
    "scale-ecs": run_scale_ecs,
    "scale-asg": run_scale_asg,
    "scale-fleet-out": run_scale_fleet_out,
    "scale-fleet-in": run_scale_fleet_in,
    "resize-fleet": run_resize_fleet,
    "resize-database": run_resize_database,
}
PRECHECKS: dict[str, Precheck] = {
    "scale-ecs": precheck_scale_ecs,
    "scale-asg": precheck_scale_asg,
    "scale-fleet-out": precheck_scale_fleet_out,
    "scale-fleet-in": precheck_fleet,
    "resize-fleet": precheck_fleet,
    "resize-database": precheck_resize_database,
}


SPECS = [
    CommandSpec(
        name="scale out",
        usage="scale out SERVICE ENV COUNT|+N|-N [--dry-run] [--yes]",
        summary="change how many tasks or instances a service runs (checks quotas first)",
        handler=scale_out,
        permission="scale",
        args=(Arg("service"), Arg("env"), Arg("count", ArgKind.COUNT)),
        flags=frozenset({"--dry-run", "--yes"}),
        examples=(
            "scale out web staging +2",
            "scale out api production 6",
            "scale out web staging -1",
        ),
        details=(
            "ECS: sets the desired count and waits until that many tasks run. Auto Scaling: "
            "sets the desired capacity within min and max (beyond max only with "
            "`asg.raise_max`). EC2 fleet: launches from the launch template across the "
            "subnets' zones, registers with the target group and waits until healthy. "
            "Scaling in (fewer) drains, then terminates the newest instances, and asks "
            "for confirmation. A scale out that the vCPU quota would block is refused "
            "before anything changes."
        ),
    ),
    CommandSpec(
        name="scale up",
        usage="scale up TARGET ENV SIZE [--now] [--dry-run] [--yes]",
        summary="bigger instances for a fleet (rolling) or a database (instance class)",
        handler=scale_up,
        permission="scale",
        args=(Arg("target"), Arg("env"), Arg("size")),
        flags=frozenset({"--dry-run", "--yes", NOW_FLAG}),
        flag_help=((NOW_FLAG, "a database: apply now, not in the maintenance window"),),
        examples=("scale up web staging t3.large", "scale up main production db.r6g.xlarge --now"),
        details=(
            "EC2 fleet: one instance at a time (deregister, drain, stop, change the type, "
            "start, register, wait healthy), so the service keeps serving; stops at the "
            "first failure and puts that instance back. Database: changes the DB instance "
            "class of the cluster's instances, readers first, in the maintenance window, "
            "or now with --now."
        ),
    ),
]
