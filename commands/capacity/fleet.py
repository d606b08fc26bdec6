"""EC2 fleets without Auto Scaling, step by step over the capacity ports: launch into the
least used zones and wait until healthy, drain and terminate, resize one instance at a time
while the others keep serving. Also the `status` of fleets and Auto Scaling groups."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.config import AwsScope, FleetTarget, Service
from bot.errors import KajitoriError, OperationFailed, Refused
from bot.messages import Message, Table
from bot.ports.capacity import (
    ENV_TAG,
    SERVICE_TAG,
    Instance,
    LaunchTemplate,
    TargetHealth,
)
from bot.services import Services
from commands.capacity.sizing import (
    counted,
    newest_first,
    some_ids,
    spread,
    state_counts,
    wait_until,
)

if TYPE_CHECKING:
    from bot.jobs.context import JobContext
    from bot.spec import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepTimeouts:
    """How long one step may take before the job gives up on it (seconds)."""

    running: float = 600.0
    # A target group's deregistration delay is at most an hour.
    draining: float = 3600.0
    stopped: float = 900.0
    healthy: float = 900.0


@dataclass
class Fleet:
    ports: Services
    scope: AwsScope
    service: str
    env: str
    target: FleetTarget
    job: JobContext | None = None
    timeouts: StepTimeouts = field(default_factory=StepTimeouts)
    _arn: str | None = None
    # Availability zone of each subnet seen while placing instances.
    _zones: dict[str, str] = field(default_factory=dict)

    async def progress(self, text: str) -> None:
        if self.job is not None:
            await self.job.progress(text)

    async def members(self) -> list[Instance]:
        return await self.ports.ec2.fleet_instances(self.scope, self.service, self.env)

    async def target_group(self) -> str:
        if self._arn is None:
            self._arn = await self.ports.target_groups.arn(self.scope, self.target.target_group)
        return self._arn

    async def health(self) -> dict[str, TargetHealth]:
        targets = await self.ports.target_groups.health(self.scope, await self.target_group())
        return {t.target_id: t for t in targets}

    async def template(self) -> LaunchTemplate:
        return await self.ports.ec2.launch_template(self.scope, self.target.launch_template)

    async def placement(
        self, template: LaunchTemplate, existing: Sequence[Instance], count: int
    ) -> dict[str | None, int]:
        """Where new instances go: the config's subnets, else the template's, else those the
        fleet already uses; with none, EC2 picks (the default VPC)."""
        subnet_ids = list(self.target.subnets or template.subnets) or sorted(
            {i.subnet_id for i in existing if i.subnet_id}
        )
        if not subnet_ids:
            return {None: count}
        subnets = await self.ports.ec2.subnets(self.scope, subnet_ids)
        zones = {s.id: s.availability_zone for s in subnets}
        self._zones.update(zones)
        missing = [s for s in subnet_ids if s not in zones]
        if missing:
            raise Refused(f"subnets not found in {self.scope}: {', '.join(missing)}")
        placed: dict[str | None, int] = {}
        placed.update(spread(zones, existing, count))
        return placed

    def describe_placement(self, placement: dict[str | None, int]) -> str:
        return ", ".join(
            f"{n} in {self._zones.get(s, '?')} ({s})" for s, n in placement.items() if s is not None
        )

    # scale out

    async def launch(self, count: int, existing: Sequence[Instance]) -> list[str]:
        """Launch `count` instances, wait until they run, register them, wait until healthy.
        A launch that fails in one subnet still brings the others into service."""
        template = await self.template()
        placement = await self.placement(template, existing, count)
        tags = {SERVICE_TAG: self.service, ENV_TAG: self.env, "Name": f"{self.service}-{self.env}"}
        nonce = secrets.token_hex(6)
        job_id = self.job.id if self.job is not None else 0

        async def launch_in(subnet: str | None, n: int) -> list[str]:
            return await self.ports.ec2.launch(
                self.scope,
                template,
                count=n,
                subnet=subnet,
                tags=tags,
                token=f"kajitori-{job_id}-{nonce}-{subnet or 'any'}",
            )

        outcomes = await asyncio.gather(
            *(launch_in(subnet, n) for subnet, n in placement.items()), return_exceptions=True
        )
        launched: list[str] = []
        errors: list[str] = []
        for outcome in outcomes:
            if isinstance(outcome, KajitoriError):
                errors.append(str(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                launched.extend(outcome)
        if self.job is not None:
            await self.job.save_state(launched=launched)
        if not launched:
            raise OperationFailed("; ".join(errors) or "RunInstances launched nothing")
        where = self.describe_placement(placement)
        await self.progress(
            f"launched {some_ids(launched)} from {template.name} v{template.version}"
            + (f" ({where})" if where else "")
        )
        await self.wait_running(launched)
        await self.progress(
            f"{counted(len(launched), 'instance')} running; registering with "
            f"{self.target.target_group}"
        )
        await self.ports.target_groups.register(self.scope, await self.target_group(), launched)
        await self.wait_healthy(launched)
        if errors:
            raise OperationFailed(
                f"launched {len(launched)} of {count} ({some_ids(launched)}, now healthy); "
                + "; ".join(errors)
            )
        return launched

    async def wait_states(
        self, ids: Sequence[str], states: set[str], what: str, timeout: float
    ) -> None:
        failed_states = {"shutting-down", "terminated"} - states
        # EC2 forgets terminated instances after a while: when waiting for the end, a
        # missing one has ended; otherwise it is gone too early.
        missing_is_done = "terminated" in states
        last_line = ""

        async def check() -> bool | None:
            nonlocal last_line
            found = {i.id: i for i in await self.ports.ec2.instances(self.scope, ids)}
            if len(ids) > 1:
                # Where the wait stands, as counts: a line only when they change.
                line = state_counts([found[i].state if i in found else "gone" for i in ids])
                if line != last_line and last_line:
                    await self.progress(line)
                last_line = line
            if missing_is_done:
                return (
                    True if all(i not in found or found[i].state in states for i in ids) else None
                )
            gone = [i for i in ids if i not in found or found[i].state in failed_states]
            if gone:
                them = "it" if len(ids) == 1 else "them"
                raise OperationFailed(
                    f"{', '.join(gone)} terminated while the job waited for {them} {what}"
                )
            return True if all(found[i].state in states for i in ids) else None

        await wait_until(
            check, what=f"{some_ids(ids)} {what}", timeout=timeout, poll=self.ports.polling
        )

    async def wait_running(self, ids: Sequence[str]) -> None:
        await self.wait_states(ids, {"running"}, "to run", self.timeouts.running)

    async def wait_healthy(self, ids: Sequence[str]) -> None:
        reported: set[tuple[str, str]] = set()

        async def check() -> bool | None:
            health = await self.health()
            for target_id in ids:
                state = health.get(target_id)
                # An unhealthy target may still pass later; say so once and keep waiting.
                if state is not None and state.state == "unhealthy":
                    key = (target_id, state.reason or "")
                    if key not in reported:
                        reported.add(key)
                        await self.progress(
                            f"{target_id} unhealthy ({state.reason}); still waiting"
                        )
            healthy = [i for i in ids if (h := health.get(i)) is not None and h.state == "healthy"]
            return True if len(healthy) == len(ids) else None

        await wait_until(
            check,
            what=f"{some_ids(ids)} to be healthy in {self.target.target_group}",
            timeout=self.timeouts.healthy,
            poll=self.ports.polling,
        )
        await self.progress(f"healthy in {self.target.target_group}: {some_ids(ids)}")

    # scale in

    async def drain(self, ids: Sequence[str]) -> None:
        await self.ports.target_groups.deregister(self.scope, await self.target_group(), ids)
        await self.progress(f"deregistered {some_ids(ids)}; waiting for connections to drain")

        async def check() -> bool | None:
            health = await self.health()
            busy = [i for i in ids if i in health and health[i].state != "unused"]
            return None if busy else True

        await wait_until(
            check,
            what=f"{some_ids(ids)} to drain from {self.target.target_group}",
            timeout=self.timeouts.draining,
            poll=self.ports.polling,
        )

    async def remove(self, instances: Sequence[Instance]) -> list[str]:
        ids = [i.id for i in instances]
        await self.drain(ids)
        await self.progress(f"drained; terminating {some_ids(ids)}")
        if self.job is not None:
            await self.job.save_state(terminating=ids)
        await self.ports.ec2.terminate(self.scope, ids)
        await self.wait_states(
            ids, {"shutting-down", "terminated"}, "to terminate", self.timeouts.stopped
        )
        return ids

    # scale up

    async def others_healthy(self, instance_id: str, serving: Sequence[str]) -> None:
        """Before an instance leaves, every other serving instance must be healthy."""
        others = [i for i in serving if i != instance_id]
        if not others:
            return
        try:
            await self.wait_healthy_quietly(others)
        except OperationFailed:
            health = await self.health()
            bad = [f"{i} {health[i].state if i in health else 'not registered'}" for i in others]
            raise OperationFailed(
                f"stopped before taking {instance_id} out: the others are not all healthy "
                f"({', '.join(bad)})"
            ) from None

    async def wait_healthy_quietly(self, ids: Sequence[str]) -> None:
        async def check() -> bool | None:
            health = await self.health()
            return True if all(i in health and health[i].state == "healthy" for i in ids) else None

        await wait_until(
            check,
            what="the fleet to be healthy",
            timeout=self.timeouts.healthy,
            poll=self.ports.polling,
        )

    async def resize(self, instance: Instance, new_type: str, step: str) -> None:
        """Take one instance out, change its type, bring it back; on failure or cancellation,
        bring it back as it was."""
        scope, ec2 = self.scope, self.ports.ec2
        arn = await self.target_group()
        out = stopped = False
        current_type = instance.instance_type
        try:
            out = True
            await self.progress(
                f"{step} {instance.id}: taking it out of {self.target.target_group}"
            )
            await self.drain([instance.id])
            stopped = True
            await ec2.stop(scope, [instance.id])
            await self.progress(f"{step} {instance.id}: drained, stopping")
            await self.wait_states([instance.id], {"stopped"}, "to stop", self.timeouts.stopped)
            await ec2.set_instance_type(scope, instance.id, new_type)
            current_type = new_type
            await self.progress(
                f"{step} {instance.id}: {instance.instance_type} → {new_type}, starting"
            )
            await ec2.start(scope, [instance.id])
            await self.wait_running([instance.id])
            await self.ports.target_groups.register(scope, arn, [instance.id])
            out = False
            await self.wait_healthy([instance.id])
        except KajitoriError as error:
            if not out:
                raise
            back = await self.restore(instance, stopped)
            note = (
                f"{instance.id} is registered again, as {current_type}"
                if back
                else f"{instance.id} could not be put back in service: check it"
            )
            raise OperationFailed(f"{error}; {note}") from None
        except BaseException:
            if out:
                await self.restore(instance, stopped)
            raise

    async def restore(self, instance: Instance, stopped: bool) -> bool:
        """Best effort: start the instance (if this job stopped it) and register it again."""
        scope, ec2 = self.scope, self.ports.ec2
        try:
            async with asyncio.timeout(self.timeouts.running + self.timeouts.healthy):
                if stopped:
                    found = await ec2.instances(scope, [instance.id])
                    state = found[0].state if found else "unknown"
                    if state == "stopping":
                        await self.wait_states(
                            [instance.id], {"stopped"}, "to stop", self.timeouts.stopped
                        )
                    if state in ("stopping", "stopped"):
                        await ec2.start(scope, [instance.id])
                    await self.wait_running([instance.id])
                await self.ports.target_groups.register(
                    scope, await self.target_group(), [instance.id]
                )
                await self.progress(f"{instance.id} is back in {self.target.target_group}")
        except Exception as error:
            log.warning("bringing %s back failed: %s", instance.id, error)
            await self.progress(f"could not bring {instance.id} back: {error}")
            return False
        return True


def new_instances(count: int, existing: Sequence[Instance]) -> int:
    return max(count - len(existing), 0)


def to_remove(existing: Sequence[Instance], count: int) -> list[Instance]:
    return newest_first(existing, max(len(existing) - count, 0))


# status


def _count_by(values: Sequence[str]) -> str:
    return ", ".join(f"{n} {v}" for v, n in Counter(values).most_common())


async def fleet_status(
    ports: Services, scope: AwsScope, name: str, env: str, target: FleetTarget
) -> Message:
    fleet = Fleet(ports, scope, name, env, target)
    instances, health = await asyncio.gather(fleet.members(), fleet.health())
    instances.sort(key=lambda i: (i.launched_at, i.id))
    healthy = sum(1 for i in instances if i.id in health and health[i.id].state == "healthy")
    rows = [
        [
            i.id,
            i.instance_type,
            i.state,
            i.availability_zone or "",
            health[i.id].state if i.id in health else "not registered",
            i.version or "",
            f"{i.launched_at:%Y-%m-%d %H:%M}",
        ]
        for i in instances
    ]
    fields = {
        "instances": f"{len(instances)} ({_count_by([i.state for i in instances])})"
        if instances
        else "0",
        "healthy": f"{healthy} of {len(instances)} in {target.target_group}",
    }
    if instances:
        fields["types"] = _count_by([i.instance_type for i in instances])
        versions = [i.version for i in instances if i.version]
        if versions:
            fields["versions"] = _count_by(versions)
    return Message(
        text=f"{name} in {env} (EC2 fleet from launch template {target.launch_template})",
        fields=fields,
        table=Table(
            columns=["instance", "type", "state", "zone", "target", "version", "launched (UTC)"],
            rows=rows,
        )
        if rows
        else None,
    )


async def asg_status(
    ports: Services, scope: AwsScope, name: str, env: str, group_name: str
) -> Message:
    group = await ports.autoscaling.group(scope, group_name)
    fields = {
        "desired": str(group.desired),
        "min": str(group.min_size),
        "max": str(group.max_size),
        "in service": f"{group.in_service} of {len(group.instances)}",
    }
    if group.instance_type:
        fields["instance type"] = group.instance_type
    rows = [
        [i.id, i.instance_type or "", i.lifecycle_state, i.health_status] for i in group.instances
    ]
    return Message(
        text=f"{name} in {env} (Auto Scaling group {group.name})",
        fields=fields,
        table=Table(columns=["instance", "type", "lifecycle", "health"], rows=rows)
        if rows
        else None,
    )


async def service_status(ctx: Context, name: str, env: str, service: Service) -> Message:
    """`status` for the services that are not ECS: EC2 fleets and Auto Scaling groups."""
    ports = ctx.services
    scope = ctx.services.config.environment(env).scope
    if service.fleet is not None:
        return await fleet_status(ports, scope, name, env, service.fleet)
    if service.asg is not None:
        return await asg_status(ports, scope, name, env, service.asg.name)
    raise Refused(f"{name} in {env} is not a fleet or an Auto Scaling group")
