"""`scale out SERVICE ENV COUNT|+N|-N` and `scale up TARGET ENV SIZE [--now]`.

Every scale out checks the quota first and refuses before any change when it would not fit.
An approved or confirmed command is planned again, so the check also runs with the numbers
of the moment it starts. Scale in (fewer tasks or instances) asks for confirmation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.config import AsgTarget, Database, EcsTarget, Environment, Service
from bot.errors import KajitoriError, OperationFailed, Refused
from bot.grammar import CountChange
from bot.jobs.context import JobContext
from bot.jobs.locks import LockKey
from bot.messages import Message
from bot.plan import Plan
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
    number,
    wait_until,
)

NOW_FLAG = "--now"


def _target_count(name: str, env: str, current: int, change: CountChange, unit: str) -> int:
    target = change.target(current)
    if target < 0:
        raise Refused(f"{name} in {env} has {current} {unit}; {change} would leave {target}")
    return target


def _title(name: str, env: str, current: int, target: int) -> str:
    verb = "scale out" if target > current else "scale in"
    return f"{verb} {name} in {env} from {current} to {target}"


async def _ec2_vcpus(ports: Services, region: str, vcpus: float, what: str) -> list[str]:
    """The headroom check for `vcpus` more On-Demand Standard vCPUs; Refused when short."""
    if vcpus <= 0:
        return []

    async def read_quota() -> Quota | str:
        try:
            return await ports.quotas.quota(region, "ec2", EC2_STANDARD_VCPUS)
        except Refused as error:
            return error.message

    quota, used = await asyncio.gather(read_quota(), ports.quotas.standard_vcpus_in_use(region))
    if isinstance(quota, str):
        # Without the quota (a missing permission) the change may still be needed urgently.
        return [f"vCPU quota not checked: {quota}"]
    return [check_headroom(vcpus, Headroom(quota, used), "vCPUs", region) + f" for {what}"]


async def _instance_vcpus(ports: Services, region: str, instance_type: str) -> int:
    types = await ports.ec2.instance_types(region, [instance_type])
    if instance_type not in types:
        raise Refused(f"unknown instance type {instance_type!r} in {region}")
    return types[instance_type].vcpus


def _plan(
    ctx: Context,
    name: str,
    *,
    title: str,
    changes: list[str],
    checks: list[str],
    body: Callable[[JobContext], Awaitable[Message]],
    destructive: bool,
    timeout: timedelta,
) -> Plan:
    return Plan(
        title=title,
        changes=changes,
        run=body,
        locks=[LockKey(name, ctx.command.word("env"))],
        destructive=destructive,
        timeout=timeout,
        checks=checks,
    )


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


async def _fargate_vcpus(ports: Services, region: str, vcpus: float, what: str) -> list[str]:
    """The headroom check for `vcpus` more Fargate vCPUs; Refused when short."""
    try:
        quota = await ports.quotas.quota(region, "fargate", FARGATE_VCPUS)
    except Refused as error:
        return [f"Fargate vCPU quota not checked: {error.message}"]
    used = await ports.quotas.fargate_vcpus_in_use(region)
    return [check_headroom(vcpus, Headroom(quota, used), "Fargate vCPUs", region) + f" for {what}"]


async def _scale_ecs(
    ctx: Context, name: str, env: Environment, target: EcsTarget, service: Service
) -> Plan | Message:
    ports = ctx.services
    env_name = ctx.command.word("env")
    region = env.region
    state = await ports.ecs.describe_capacity(region, target)
    current = state.desired
    count = _target_count(name, env_name, current, ctx.command.count("count"), "tasks")
    if count == current:
        return Message(text=f"{name} in {env_name} already wants {current} tasks")
    checks: list[str] = []
    if count > current and state.launch_type == "FARGATE" and state.task_vcpus:
        added = count - current
        checks = await _fargate_vcpus(
            ports,
            region,
            added * state.task_vcpus,
            f"{added} × {number(state.task_vcpus)} vCPU tasks",
        )

    async def body(job: JobContext) -> Message:
        await ports.ecs.set_desired_count(region, target, count)
        await job.progress(f"desired count {current} → {count}; waiting for tasks")

        async def read() -> tuple[str, bool]:
            now = await ports.ecs.describe_capacity(region, target)
            done = now.running == count and now.pending == 0 and now.desired == count
            return f"running {now.running} of {count}, pending {now.pending}", done

        await _wait_reporting(
            job,
            read,
            what=f"{count} running tasks of {target.cluster}/{target.service}",
            timeout=service.timeout.total_seconds(),
            poll=ports.polling,
        )
        return Message(text=f"{name} in {env_name} runs {count} tasks (was {current})")

    return _plan(
        ctx,
        name,
        title=_title(name, env_name, current, count),
        changes=[f"ECS {target.cluster}/{target.service}: desired count {current} → {count}"],
        checks=checks,
        body=body,
        destructive=count < current,
        timeout=service.timeout,
    )


# scale out: Auto Scaling


async def _scale_asg(
    ctx: Context, name: str, env: Environment, target: AsgTarget, service: Service
) -> Plan | Message:
    ports = ctx.services
    env_name = ctx.command.word("env")
    region = env.region
    group = await ports.autoscaling.group(region, target.name)
    current = group.desired
    count = _target_count(name, env_name, current, ctx.command.count("count"), "instances")
    if count == current:
        return Message(text=f"{name} in {env_name} already wants {current} instances")
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
    checks: list[str] = []
    if count > current:
        instance_type = group.instance_type
        if instance_type is None:
            checks = [f"{group.name} names no instance type: vCPU quota not checked"]
        elif not is_standard_on_demand(instance_type):
            checks = [f"{instance_type} is outside the {EC2_STANDARD_VCPUS} bucket: not checked"]
        else:
            per_instance = await _instance_vcpus(ports, region, instance_type)
            checks = await _ec2_vcpus(
                ports,
                region,
                (count - current) * per_instance,
                f"{count - current} × {instance_type}",
            )

    async def body(job: JobContext) -> Message:
        await ports.autoscaling.set_capacity(region, group.name, count, raise_max)
        await job.progress(f"desired capacity {current} → {count}; waiting for instances")

        async def read() -> tuple[str, bool]:
            now = await ports.autoscaling.group(region, group.name)
            done = now.in_service == count and len(now.instances) == count
            line = f"in service {now.in_service} of {count} ({len(now.instances)} instances)"
            return line, done

        await _wait_reporting(
            job,
            read,
            what=f"{count} instances in service in {group.name}",
            timeout=service.timeout.total_seconds(),
            poll=ports.polling,
        )
        raised = f", max {raise_max}" if raise_max is not None else ""
        return Message(
            text=f"{name} in {env_name} has {count} instances in service (was {current}{raised})"
        )

    return _plan(
        ctx,
        name,
        title=_title(name, env_name, current, count),
        changes=changes,
        checks=checks,
        body=body,
        destructive=count < current,
        timeout=service.timeout,
    )


# scale out: EC2 fleet


async def _scale_fleet(
    ctx: Context, name: str, env: Environment, service: Service
) -> Plan | Message:
    assert service.fleet is not None
    ports = ctx.services
    env_name = ctx.command.word("env")
    region = env.region
    fleet = Fleet(ports, region, name, env_name, service.fleet)
    members = await fleet.members()
    current = len(members)
    count = _target_count(name, env_name, current, ctx.command.count("count"), "instances")
    if count == current:
        return Message(text=f"{name} in {env_name} already has {current} instances")
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
    per_instance = await _instance_vcpus(ports, region, instance_type)
    target_group = service.fleet.target_group
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
            ports, region, adding * per_instance, f"{adding} × {instance_type}"
        )
    else:
        checks = [f"{instance_type} is outside the {EC2_STANDARD_VCPUS} bucket: not checked"]

    async def body(job: JobContext) -> Message:
        fleet.job = job
        now = await fleet.members()
        missing = count - len(now)
        if missing <= 0:
            return Message(text=f"{name} in {env_name} already has {len(now)} instances")
        launched = await fleet.launch(missing, now)
        return Message(
            text=f"{name} in {env_name} scaled out from {len(now)} to {len(now) + len(launched)}: "
            f"{', '.join(launched)} healthy in {target_group}"
        )

    return _plan(
        ctx,
        name,
        title=_title(name, env_name, current, count),
        changes=changes,
        checks=checks,
        body=body,
        destructive=False,
        timeout=service.timeout,
    )


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
    planned = {i.id for i in chosen}
    changes = [
        f"deregister {i.id} ({i.instance_type}, {i.availability_zone or '?'}, launched "
        f"{i.launched_at:%Y-%m-%d %H:%M} UTC), wait for draining, terminate it"
        for i in chosen
    ]

    async def body(job: JobContext) -> Message:
        fleet.job = job
        # Only the instances the confirmation named; any already gone are skipped.
        now = [i for i in await fleet.members() if i.id in planned]
        if not now:
            return Message(text=f"the instances to remove from {name} in {env_name} are gone")
        removed = await fleet.remove(now)
        left = len(await fleet.members())
        return Message(
            text=f"{name} in {env_name} scaled in to {left}: terminated {', '.join(removed)}"
        )

    return _plan(
        ctx,
        name,
        title=_title(name, env_name, len(members), count),
        changes=changes,
        checks=[],
        body=body,
        destructive=True,
        timeout=service.timeout,
    )


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
    region = env.region
    fleet = Fleet(ports, region, name, env_name, service.fleet)
    members = await fleet.members()
    if not members:
        raise Refused(f"{name} in {env_name} has no instances to resize")
    types = await ports.ec2.instance_types(region, [size, *(m.instance_type for m in members)])
    if size not in types:
        raise Refused(
            f"unknown instance type {size!r} in {region}: nothing was changed",
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
    checks = [f"{size} exists ({wanted.vcpus} vCPUs, {'/'.join(wanted.architectures)})"]
    if delta > 0 and is_standard_on_demand(size):
        checks += await _ec2_vcpus(ports, region, delta, f"{len(resize)} × {size}")
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
    serving = [m.id for m in running]
    order = [m.id for m in resize]

    async def body(job: JobContext) -> Message:
        fleet.job = job
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
                    await ports.ec2.set_instance_type(region, instance.id, size)
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
        version = await ports.ec2.set_template_instance_type(region, template, size)
        return Message(
            text=f"{name} in {env_name} now runs {size}: {', '.join(done)} resized one at a "
            f"time; launch template {template.name} v{version} is the default"
        )

    return _plan(
        ctx,
        name,
        title=f"scale up {name} in {env_name} to {size}",
        changes=changes,
        checks=checks,
        body=body,
        destructive=env.protected or alone,
        timeout=service.timeout * len(resize),
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
    region = env.region
    if database.cluster is None:
        raise Refused(
            f"databases.{name}.cluster is not set for {env_name}: I do not know which "
            "cluster to resize"
        )
    if not size.startswith("db."):
        raise Refused(f"{size!r} is not a DB instance class (they look like db.r6g.xlarge)")
    cluster = await ports.rds.cluster(region, database.cluster)
    available = await ports.rds.class_available(region, cluster.engine, size)
    if available is False:
        raise Refused(
            f"{size} is not offered for {cluster.engine} in {region}: nothing was changed"
        )
    checks = (
        [f"{size} is offered for {cluster.engine}"]
        if available
        else [f"{size}: AWS lists no options for {cluster.engine} in {region}, not confirmed"]
    )
    # Readers first: the writer changes last, so reads keep being served meanwhile.
    members = sorted(cluster.members, key=lambda m: (bool(m.writer), m.id))
    resize = [m for m in members if size not in (m.instance_class, m.pending_class)]
    if not resize:
        return Message(text=f"{name} ({cluster.id}) in {env_name} already is or will be {size}")
    apply_now = NOW_FLAG in ctx.command.flags
    windows = sorted({m.maintenance_window for m in resize if m.maintenance_window})
    when = (
        "now, one instance at a time (readers first; the writer restarts last)"
        if apply_now
        else f"in the maintenance window ({', '.join(windows) or 'the next one'}); "
        f"add {NOW_FLAG} to apply now"
    )
    changes = [
        *(f"{m.id} ({_role(m)}): {m.instance_class} → {size}" for m in resize),
        f"applied {when}",
    ]

    database_timeout = timedelta(minutes=45)

    async def body(job: JobContext) -> Message:
        lines: list[str] = []
        for member in resize:
            role = _role(member)
            changed = await ports.rds.modify_class(region, member.id, size, apply_now=apply_now)
            if not apply_now:
                pending = changed.pending_class or size
                lines.append(f"{member.id} ({role}): {member.instance_class} → {pending} pending")
                continue
            await job.progress(f"{member.id} ({role}): {member.instance_class} → {size}, modifying")

            async def applied(instance_id: str = member.id) -> bool | None:
                now = await ports.rds.instance(region, instance_id)
                return True if now.status == "available" and now.instance_class == size else None

            await wait_until(
                applied,
                what=f"{member.id} to be available as {size}",
                timeout=database_timeout.total_seconds(),
                poll=ports.polling,
            )
            await job.progress(f"{member.id} ({role}) is available as {size}")
            lines.append(f"{member.id} ({role}): now {size}")
        head = (
            f"{name} ({cluster.id}) in {env_name} resized to {size}"
            if apply_now
            else f"{name} ({cluster.id}) in {env_name}: {size} applies in the maintenance "
            f"window ({', '.join(windows) or 'the next one'})"
        )
        return Message(text="\n".join([head, *lines]))

    return _plan(
        ctx,
        name,
        title=f"scale up {name} in {env_name} to {size}",
        changes=changes,
        checks=checks,
        body=body,
        destructive=env.protected,
        timeout=database_timeout * len(resize) if apply_now else timedelta(minutes=5),
    )


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
