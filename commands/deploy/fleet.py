"""Deploy, roll back and restart EC2 fleets (`fleet:` services) through SSM Run Command.

A rollout goes batch by batch: deregister the batch from the target group and wait for
draining, run the service's SSM document on it and wait for every invocation, tag each
instance with the version it now runs (`kajitori:version`), register it again and wait
until it is healthy. The first batch is a canary when the service says so: the job then
waits for the bake time or for `promote JOB` / `abort JOB`. A failure stops the rollout
where it is: the instances that failed stay out of the target group, the rest serve.

Everything a run needs is resolved when the plan is made and kept in the job's state
(instances and their versions, batches, the document and its parameters); the job reads
only its state and records each step there, so that another replica can take it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from bot.config import AwsScope, FleetDeploy, FleetTarget
from bot.errors import KajitoriError, OperationFailed, Refused
from bot.grammar import format_duration
from bot.jobs.context import JobContext, JobInterrupted
from bot.messages import Message, Tone
from bot.model import DeployRecord
from bot.plan import Check, Plan
from bot.polling import Polling
from bot.ports.capacity import VERSION_TAG, Instance
from bot.ports.ssm import Invocation
from bot.services import Services
from bot.spec import Context
from commands.deploy.canary import wait_for_decision
from commands.deploy.record import HISTORY_DEPTH, approval_detail, ending, note, recorded
from commands.deploy.target import DeployTarget

log = logging.getLogger(__name__)

KIND = "fleet_deploy"
RUN_SHELL_SCRIPT = "AWS-RunShellScript"
JOB_DEADLINE_MARGIN = timedelta(minutes=1)
UNKNOWN = "unknown"

T = TypeVar("T")


FleetService = DeployTarget[FleetTarget, FleetDeploy]


def fleet_service(services: Services, name: str, env: str) -> FleetService:
    environment = services.config.environment(env)
    service = services.config.service(name, env)
    assert service.fleet is not None
    return FleetService(
        name, env, environment.region, service.fleet, service.fleet_deploy, service.timeout
    )


def _require_deploy(service: FleetService, verb: str) -> FleetDeploy:
    if service.deploy is None:
        raise Refused(
            f"{service.name} in {service.env} is an EC2 fleet without a deploy command, so "
            f"there is nothing to {verb} it with; nothing was changed",
            hint=f"add `deploy: {{ssm_document: AWS-RunShellScript, command: "
            f'"/opt/app/deploy.sh {{version}}"}}` under environments.{service.env}.services.'
            f"{service.name} in the config",
        )
    return service.deploy


def render_parameters(deploy: FleetDeploy, version: str) -> dict[str, list[str]]:
    """The SSM document's parameters for one version."""
    if deploy.ssm_document == RUN_SHELL_SCRIPT:
        assert deploy.command is not None
        return {"commands": [deploy.command.replace("{version}", shlex.quote(version))]}
    return {"version": [version]}


def plan_batches(ids: list[str], deploy: FleetDeploy, *, canary: bool) -> list[list[str]]:
    """The canary first (when there is one), then batches of `batch` instances."""
    ids = sorted(ids)
    batches: list[list[str]] = []
    if canary and deploy.canary is not None and len(ids) > 1:
        first = min(deploy.canary.instances, len(ids) - 1)
        batches.append(ids[:first])
        ids = ids[first:]
    size = deploy.batch_size(len(ids) + sum(len(b) for b in batches))
    batches.extend(ids[i : i + size] for i in range(0, len(ids), size))
    return batches


def _versions_line(versions: dict[str, str]) -> str:
    return ", ".join(f"{i}: {v}" for i, v in sorted(versions.items()))


def _most_common(versions: dict[str, str]) -> str:
    counted = Counter(v for v in versions.values() if v)
    return counted.most_common(1)[0][0] if counted else UNKNOWN


async def _running_instances(services: Services, service: FleetService) -> list[Instance]:
    instances = await services.ec2.fleet_instances(service.scope, service.name, service.env)
    running = [i for i in instances if i.state == "running"]
    if not running:
        raise Refused(
            f"{service.name} in {service.env} has no running instances; nothing was changed",
            hint=f"`scale out {service.name} {service.env} 2` launches some",
        )
    return running


async def _require_agents(services: Services, service: FleetService, ids: list[str]) -> None:
    managed = await services.ssm.managed_instances(service.scope, ids)
    missing = [i for i in ids if i not in managed]
    offline = [f"{i} ({managed[i]})" for i in ids if i in managed and managed[i] != "Online"]
    if missing or offline:
        problems = []
        if missing:
            problems.append(f"no SSM agent registered on {', '.join(missing)}")
        if offline:
            problems.append(f"SSM agent not online on {', '.join(offline)}")
        raise Refused(
            f"SSM Run Command cannot reach every instance of {service.name} in {service.env} "
            f"(SendCommand would answer InvalidInstanceId): {'; '.join(problems)}; "
            "nothing was changed",
            hint="give the instances an instance profile with AmazonSSMManagedInstanceCore "
            "and a running SSM agent, or take them out of the fleet",
        )


async def _fleet_plan(
    ctx: Context,
    service: FleetService,
    deploy: FleetDeploy,
    *,
    action: str,
    title: str,
    version: str,
    targets: dict[str, str],
    previous: dict[str, str],
    canary: bool,
    destructive: bool,
    extra_changes: list[str] | None = None,
) -> Plan:
    services = ctx.services
    ids = sorted(targets)
    await _require_agents(services, service, ids)
    if not await services.ssm.document_exists(service.scope, deploy.ssm_document):
        raise Refused(
            f"SSM document {deploy.ssm_document!r} does not exist in {service.region}; "
            "nothing was changed",
            hint=f"check environments.{service.env}.services.{service.name}.deploy.ssm_document",
        )
    arn = await services.target_groups.arn(service.scope, service.target.target_group)
    delay = await services.target_groups.deregistration_delay(service.scope, arn)
    health = {h.target_id: h.state for h in await services.target_groups.health(service.scope, arn)}
    batches = plan_batches(ids, deploy, canary=canary)
    parameters = {v: render_parameters(deploy, v) for v in sorted(set(targets.values()))}
    bake = deploy.canary.bake if (canary and deploy.canary and len(batches) > 1) else None
    has_canary = canary and deploy.canary is not None and len(batches) > 1
    changes = [*(extra_changes or [])]
    for index, batch in enumerate(batches):
        label = "canary" if has_canary and index == 0 else f"batch {index + 1}/{len(batches)}"
        moves = ", ".join(f"{i} {previous.get(i) or UNKNOWN} → {targets[i]}" for i in batch)
        changes.append(f"{label}: {moves}")
    if has_canary:
        wait = format_duration(bake) if bake is not None else "a person's `promote`"
        changes.append(f"after the canary: its health is posted, then it waits for {wait}")
    shown = next(iter(parameters.values()))
    changes.append(
        f"each batch: deregister from {service.target.target_group} (deregistration delay "
        f"{delay}s), SSM {deploy.ssm_document} {shown}, tag {VERSION_TAG}, register, wait healthy"
    )
    serving = sum(1 for s in health.values() if s == "healthy")
    checks = [
        Check(f"{len(ids)} running instances, each with its SSM agent online"),
        Check(f"SSM document {deploy.ssm_document} exists"),
        Check(
            f"target group {service.target.target_group}: {serving}/{len(health)} targets healthy"
        ),
        Check(f"timeout {format_duration(service.timeout)}"),
    ]
    state: dict[str, Any] = {
        "kind": KIND,
        "action": action,
        "service": service.name,
        "env": service.env,
        "region": service.region,
        "version": version,
        "targets": targets,
        "previous": previous,
        "batches": batches,
        "document": deploy.ssm_document,
        "parameters": parameters,
        "target_group": service.target.target_group,
        "target_group_arn": arn,
        "deregistration_delay": delay,
        "canary": has_canary,
        "bake_seconds": bake.total_seconds() if bake is not None else None,
        "command_timeout": int(deploy.command_timeout.total_seconds()),
        "timeout": service.timeout.total_seconds(),
    }
    return Plan(
        title=title,
        changes=changes,
        run=run_fleet,
        locks=[service.lock],
        destructive=destructive,
        timeout=service.timeout + JOB_DEADLINE_MARGIN,
        checks=checks,
        state=state,
        kind=KIND,
    )


async def plan_deploy(ctx: Context) -> Plan:
    command = ctx.command
    version = command.word("version")
    service = fleet_service(ctx.services, command.word("service"), command.word("env"))
    deploy = _require_deploy(service, "deploy")
    instances = await _running_instances(ctx.services, service)
    previous = {i.id: i.version or "" for i in instances}
    targets = {i.id: version for i in instances}
    same = [i for i, v in previous.items() if v == version]
    extra = [f"{len(same)} of {len(targets)} instances already run {version}: it runs again there"]
    return await _fleet_plan(
        ctx,
        service,
        deploy,
        action="deploy",
        title=f"deploy {service.name} {version} to {service.env}",
        version=version,
        targets=targets,
        previous=previous,
        canary=True,
        destructive=False,
        extra_changes=extra if same else None,
    )


async def plan_restart(ctx: Context) -> Plan:
    command = ctx.command
    service = fleet_service(ctx.services, command.word("service"), command.word("env"))
    deploy = _require_deploy(service, "restart")
    instances = await _running_instances(ctx.services, service)
    unknown = [i.id for i in instances if not i.version]
    if unknown:
        raise Refused(
            f"the version {', '.join(unknown)} run is not recorded (no {VERSION_TAG} tag), "
            "so a restart cannot run the deploy command again there; nothing was changed",
            hint=f"deploy a version first: `deploy {service.name} {service.env} VERSION`",
        )
    current = {i.id: i.version or "" for i in instances}
    return await _fleet_plan(
        ctx,
        service,
        deploy,
        action="restart",
        title=f"restart {service.name} in {service.env}",
        version=_most_common(current),
        targets=current,
        previous=current,
        canary=False,
        destructive=True,
        extra_changes=[
            "a rolling restart: each instance runs the deploy command again "
            "with the version it runs now"
        ],
    )


def _recorded_versions(records: list[DeployRecord]) -> set[str]:
    known: set[str] = set()
    for record in records:
        if record.outcome == "succeeded":
            known.add(record.version)
        known.update(v for v in record.previous_instances.values() if v)
        known.update(v for i, v in record.instances.items() if v and record.outcome == "succeeded")
    return known


async def plan_rollback(ctx: Context) -> Plan:
    command = ctx.command
    services = ctx.services
    service = fleet_service(services, command.word("service"), command.word("env"))
    deploy = _require_deploy(service, "roll back")
    wanted = command.optional_word("version")
    instances = await _running_instances(services, service)
    current = {i.id: i.version or "" for i in instances}
    records = await services.store.list_deploys(service.name, service.env, limit=HISTORY_DEPTH)
    if wanted is None:
        last = next((r for r in records if r.previous_instances and r.kind != "restart"), None)
        if last is None:
            raise Refused(
                f"no earlier deploy of {service.name} in {service.env} is recorded, so there "
                "is no previous version per instance",
                hint=f"name one: `rollback {service.name} {service.env} VERSION`",
            )
        # An instance whose command failed still has its old tag, but is out of service.
        targets = {
            i: v
            for i, v in last.previous_instances.items()
            if i in current and v and (current[i] != v or last.instances.get(i, v) != v)
        }
        if not targets:
            raise Refused(
                f"every instance of {service.name} in {service.env} runs what it ran before "
                f"deploy {last.id} ({_versions_line(current)}); nothing to roll back",
            )
        source = f"recorded by {last.kind} {last.id}"
        version = _most_common(targets)
    else:
        if wanted not in _recorded_versions(records):
            raise Refused(
                f"{wanted} never ran on {service.name} in {service.env} as far as the deploy "
                "history shows, so it is not a version to roll back to",
                hint=f"to run a new version use `deploy {service.name} {service.env} {wanted}`",
            )
        targets = {i: wanted for i, v in current.items() if v != wanted}
        if not targets:
            raise Refused(f"every instance of {service.name} in {service.env} runs {wanted}")
        source = "named"
        version = wanted
    return await _fleet_plan(
        ctx,
        service,
        deploy,
        action="rollback",
        title=f"roll back {service.name} in {service.env} to {version}",
        version=version,
        targets=targets,
        previous={i: current[i] for i in targets},
        canary=False,
        destructive=True,
        extra_changes=[
            f"the previous version per instance, {source}; "
            f"{len(current) - len(targets)} other instances stay as they are"
        ],
    )


# -- the job -----------------------------------------------------------------------------


class FleetRun:
    """One run of a fleet rollout, driven by the job's state alone."""

    def __init__(self, job: JobContext) -> None:
        self.job = job
        self.services = job.services
        state = job.state
        self.state = state
        self.action = str(state["action"])
        self.service = str(state["service"])
        self.env = str(state["env"])
        self.scope = AwsScope(str(state["env"]), str(state["region"]))
        self.version = str(state["version"])
        self.targets: dict[str, str] = dict(state["targets"])
        self.previous: dict[str, str] = dict(state["previous"])
        self.batches: list[list[str]] = [list(b) for b in state["batches"]]
        self.arn = str(state["target_group_arn"])
        self.polling: Polling = job.services.polling
        # What each instance runs now, as far as this rollout knows.
        self.running: dict[str, str] = dict(state.get("running") or self.previous)
        self.failed: dict[str, str] = dict(state.get("failed") or {})

    def label(self, index: int) -> str:
        if self.state.get("canary") and index == 0:
            return "canary"
        return f"batch {index + 1}/{len(self.batches)}"

    async def until(self, look: Callable[[], Awaitable[T | None]]) -> T:
        """Look until `look` answers; quickly at first, then less often."""
        delays = self.polling.delays()
        index = 0
        while True:
            found = await look()
            if found is not None:
                return found
            await asyncio.sleep(delays[min(index, len(delays) - 1)])
            index += 1

    async def drain(self, batch: list[str]) -> None:
        target_groups = self.services.target_groups
        await target_groups.deregister(self.scope, self.arn, batch)

        async def drained() -> bool | None:
            health = await target_groups.health(self.scope, self.arn)
            busy = [h for h in health if h.target_id in batch and h.state != "unused"]
            return True if not busy else None

        await self.until(drained)

    async def run_commands(self, index: int, batch: list[str]) -> list[Invocation]:
        ssm = self.services.ssm
        commands: dict[str, str] = dict(self.state.get("commands") or {})
        by_version: dict[str, list[str]] = {}
        for instance_id in batch:
            by_version.setdefault(self.targets[instance_id], []).append(instance_id)
        for version, ids in sorted(by_version.items()):
            if version in commands:
                continue
            parameters: dict[str, list[str]] = self.state["parameters"][version]
            command_id = await ssm.send_command(
                self.scope,
                str(self.state["document"]),
                parameters,
                ids,
                comment=f"kajitori job {self.job.id}: {self.action} {self.service} {version}",
                timeout_seconds=int(self.state["command_timeout"]),
            )
            commands[version] = command_id
            await self.job.save_state(commands=commands)
        await self.job.progress(
            f"{self.label(index)}: SSM {self.state['document']} running on {', '.join(batch)} "
            f"(command {', '.join(commands.values())})"
        )

        async def finished() -> list[Invocation] | None:
            found: list[Invocation] = []
            for version, ids in sorted(by_version.items()):
                found.extend(await ssm.invocations(self.scope, commands[version], ids))
            return found if all(i.done for i in found) else None

        return await self.until(finished)

    async def register(self, batch: list[str]) -> None:
        target_groups = self.services.target_groups
        await target_groups.register(self.scope, self.arn, batch)

        async def healthy() -> bool | None:
            health = {h.target_id: h for h in await target_groups.health(self.scope, self.arn)}
            bad = [h for i in batch if (h := health.get(i)) is not None and h.state == "unhealthy"]
            if bad:
                reasons = ", ".join(f"{h.target_id} ({h.reason or 'unhealthy'})" for h in bad)
                raise OperationFailed(f"after the command ran, {reasons} failed health checks")
            return (
                True
                if all((h := health.get(i)) is not None and h.state == "healthy" for i in batch)
                else None
            )

        await self.until(healthy)

    async def serving(self) -> str:
        health = await self.services.target_groups.health(self.scope, self.arn)
        healthy = [h.target_id for h in health if h.state == "healthy"]
        return (
            f"{self.state['target_group']} serves from {len(healthy)} healthy "
            f"instance{'s' if len(healthy) != 1 else ''}"
        )

    def where_things_stand(self) -> str:
        lines = []
        for instance_id in sorted(self.targets | self.previous):
            running = self.running.get(instance_id) or UNKNOWN
            note = (
                f" — {self.failed[instance_id]}; out of the target group"
                if instance_id in self.failed
                else ""
            )
            lines.append(f"• {instance_id}: {running}{note}")
        return "\n".join(lines)

    async def batch(self, index: int, batch: list[str]) -> None:
        job = self.job
        step = self.state.get("step")
        if step in (None, "drain"):
            await job.save_state(step="drain")
            await self.drain(batch)
            await job.progress(
                f"{self.label(index)}: {', '.join(batch)} out of {self.state['target_group']} "
                "(drained)"
            )
            await job.save_state(step="command", commands={})
        if self.state.get("step") == "command":
            invocations = await self.run_commands(index, batch)
            failed = [i for i in invocations if not i.succeeded]
            succeeded = [i.instance_id for i in invocations if i.succeeded]
            for instance_id in succeeded:
                self.running[instance_id] = self.targets[instance_id]
            if succeeded:
                by_version: dict[str, list[str]] = {}
                for instance_id in succeeded:
                    by_version.setdefault(self.targets[instance_id], []).append(instance_id)
                for version, ids in by_version.items():
                    await self.services.ec2.tag_instances(self.scope, ids, {VERSION_TAG: version})
            for invocation in failed:
                self.failed[invocation.instance_id] = (
                    f"command {invocation.status}, exit {invocation.response_code}"
                )
                self.running[invocation.instance_id] = (
                    f"{self.targets[invocation.instance_id]} (failed)"
                )
            await job.save_state(
                step="register", running=self.running, failed=self.failed, register=succeeded
            )
            if failed:
                tails = []
                for invocation in failed:
                    tail = invocation.tail()
                    tails.append(
                        f"{invocation.instance_id}: {invocation.status} "
                        f"(exit {invocation.response_code})"
                        + (f"\n```\n{tail}\n```" if tail else "")
                    )
                self.state["failure"] = "\n".join(tails)
        if self.state.get("step") == "register":
            ids = list(self.state.get("register") or [])
            if ids:
                await self.register(ids)
                await job.progress(
                    f"{self.label(index)}: {', '.join(ids)} healthy in {self.state['target_group']}"
                )
            if self.state.get("failure"):
                raise OperationFailed(f"{self.label(index)} failed:\n{self.state['failure']}")
            await job.save_state(step=None, batch=index + 1, register=[], commands={})

    async def run(self) -> Message:
        job = self.job
        start = int(self.state.get("batch") or 0)
        has_canary = bool(self.state.get("canary")) and len(self.batches) > 1
        if start >= 1 and has_canary and not self.state.get("promoted"):
            await self.canary()  # taken over after the canary ran, before it was promoted
        for index in range(start, len(self.batches)):
            await self.batch(index, self.batches[index])
            if index == 0 and has_canary:
                await self.canary()
        took = format_duration(job.elapsed())
        verb = {"deploy": "deployed", "rollback": "rolled back", "restart": "restarted"}[
            self.action
        ]
        changed = len(self.targets)
        what = {
            "deploy": f"{self.service} {self.version} to {self.env}",
            "rollback": f"{self.service} in {self.env} to {self.version}",
            "restart": f"{self.service} in {self.env}",
        }[self.action]
        was = _most_common(self.previous)
        return Message(
            text=f"{verb} {what} in {took}: {changed} instance{'s' if changed != 1 else ''} "
            f"in {len(self.batches)} batch{'es' if len(self.batches) != 1 else ''}"
            + (f" (was {was})" if self.action != "restart" else ""),
            tone=Tone.SUCCESS,
        )

    async def canary(self) -> None:
        job = self.job
        canary = self.batches[0]
        if not self.state.get("awaiting"):
            health = await self.services.target_groups.health(self.scope, self.arn)
            states = sorted({h.state for h in health if h.target_id in canary})
            await job.progress(
                f"canary {', '.join(canary)} runs {self.version} and is "
                f"{' / '.join(states) or 'not registered'}; {await self.serving()}"
            )
        bake = self.state.get("bake_seconds")
        decision = await wait_for_decision(
            job,
            what=f"canary of {self.service} {self.version} in {self.env}",
            bake=timedelta(seconds=float(bake)) if bake is not None else None,
            polling=self.polling,
        )
        if not decision.promoted:
            self.state["aborted_by"] = decision.by
            raise OperationFailed(f"aborted by {decision.by} after the canary")
        await job.save_state(promoted=decision.by)
        await job.progress(
            f"promoted by {decision.by}: on to the remaining "
            f"{len(self.batches) - 1} batch{'es' if len(self.batches) > 2 else ''}"
        )


async def run_fleet(job: JobContext) -> Message:
    """The job body of every fleet rollout (deploy, rollback, restart); takes over too."""
    services = job.services
    store = services.store
    run = FleetRun(job)
    state = job.state
    record: DeployRecord | None = None
    if job.resumed_from is not None:
        if state.get("deploy_record") is None:
            raise JobInterrupted(
                "the replica running it stopped before it began; nothing was changed",
                hint=f"run `{job.record.command}` again",
            )
        record = await recorded(job, run.service, run.env)
        at = int(state.get("batch") or 0)
        await job.progress(
            f"going on from {run.label(at) if at < len(run.batches) else 'the end'}"
            f" (step {state.get('step') or 'start'})"
        )
    if record is None:
        record = DeployRecord(
            id=await store.next_id("deploy"),
            service=run.service,
            env=run.env,
            version=run.version,
            previous_version=_most_common(run.previous),
            triggered_by=job.member,
            kind=run.action,
            job_id=job.id,
            started_at=services.clock.now(),
            detail=approval_detail(job),
            previous_instances=run.previous,
        )
        await store.put_deploy(record)
        await job.save_state(deploy_record=record.id)
    timeout = float(state.get("timeout") or 900)
    async with ending(job, record):
        try:
            left = timeout - job.elapsed().total_seconds()
            try:
                async with asyncio.timeout(max(left, 0)):
                    message = await run.run()
            except TimeoutError:
                raise OperationFailed(
                    f"timed out after {format_duration(timedelta(seconds=timeout))}; where it "
                    f"stands:\n{run.where_things_stand()}"
                ) from None
            note(record, "succeeded", f"took {format_duration(job.elapsed())}")
            return message
        except asyncio.CancelledError:
            note(record, "cancelled", "cancelled")
            raise
        except JobInterrupted as error:
            note(record, "interrupted", error.message.splitlines()[0])
            raise
        except KajitoriError as error:
            aborted = state.get("aborted_by")
            note(record, "aborted" if aborted else "failed", error.message.splitlines()[0])
            serving = ""
            with contextlib.suppress(Exception):
                serving = await run.serving()
            rollback = (
                f"`rollback {run.service} {run.env}` puts the previous version back on the "
                "instances changed"
                if run.action != "restart"
                else None
            )
            raise OperationFailed(
                f"{error.message}\nthe rollout stopped: {serving}; each instance runs:\n"
                f"{run.where_things_stand()}",
                hint=rollback,
            ) from None
        finally:
            if not job.handed_over:
                record.instances = {
                    i: v for i, v in run.running.items() if i in run.targets or i in run.previous
                }


async def precheck_fleet(services: Services, state: dict[str, Any]) -> list[str]:
    """Before a stored fleet plan runs: every instance it names still runs, and still runs the
    version it ran when the plan was made."""
    scope = AwsScope(str(state["env"]), str(state["region"]))
    instances = await services.ec2.fleet_instances(scope, str(state["service"]), str(state["env"]))
    running = {i.id: i for i in instances if i.state == "running"}
    previous: dict[str, str] = dict(state.get("previous") or {})
    differences: list[str] = []
    for instance_id in sorted(state["targets"]):
        instance = running.get(instance_id)
        if instance is None:
            differences.append(f"{instance_id} no longer runs")
            continue
        planned, now = previous.get(instance_id), instance.version
        if planned != now:
            differences.append(
                f"{instance_id} now runs {now or UNKNOWN}; the plan was made when it ran "
                f"{planned or UNKNOWN}"
            )
    return differences
