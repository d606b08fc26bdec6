"""Deploy, roll back and restart Auto Scaling groups (`asg:` services) by instance refresh.

A deploy resolves the version when the plan is made (an AMI id from an SSM parameter or an
image name pattern, or a user-data variable), then its job creates a launch template
version from the group's current one with only that changed and starts an instance refresh
towards it with the service's settings: `MinHealthyPercentage`, checkpoints
(`CheckpointPercentages` + `CheckpointDelay`; with `checkpoint_delay: manual` the longest
delay Auto Scaling takes, two days, and the job waits for a person), `AutoRollback`. The job reports the
refresh's progress and says plainly when Auto Scaling rolled it back. At a checkpoint,
`promote JOB` goes on at once (the refresh is cancelled and started again, skipping the
instances already replaced) and `abort JOB` rolls the refresh back. Cancelling the job
cancels the refresh; `rollback` rolls a running refresh back, or deploys the previous
version. A restart is a refresh of the current template version.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from datetime import timedelta
from typing import Any

from bot.config import MAX_CHECKPOINT_DELAY, AsgDeploy, AsgTarget, AwsScope
from bot.errors import KajitoriError, OperationFailed, Refused
from bot.grammar import format_duration
from bot.ids import job_ref
from bot.jobs.context import JobContext, JobInterrupted
from bot.messages import Message, Tone
from bot.model import DeployRecord
from bot.plan import Check, Plan
from bot.ports.capacity import TEMPLATE_VERSION_PREFIX, InstanceRefresh, RefreshRequest
from bot.services import Services
from bot.spec import Context
from commands.deploy.canary import ABORT, PROMOTE, decision_buttons, decision_key
from commands.deploy.record import HISTORY_DEPTH, approval_detail, ending, note, recorded
from commands.deploy.target import DeployTarget

KIND = "asg_deploy"
JOB_DEADLINE_MARGIN = timedelta(minutes=1)
UNKNOWN = "unknown"


AsgService = DeployTarget[AsgTarget, AsgDeploy]


def asg_service(services: Services, name: str, env: str) -> AsgService:
    environment = services.config.environment(env)
    service = services.config.service(name, env)
    assert service.asg is not None
    return AsgService(
        name, env, environment.region, service.asg, service.asg_deploy, service.timeout
    )


def set_variable(user_data: str, variable: str, value: str) -> str:
    """`user_data` with `VARIABLE=...` (or `export VARIABLE=...`) set to `value`; the line
    is added at the end when there is none."""
    pattern = re.compile(rf"^(\s*(?:export\s+)?{re.escape(variable)}=).*$", re.MULTILINE)
    if pattern.search(user_data):
        return pattern.sub(lambda m: f"{m.group(1)}{value}", user_data)
    ending = "" if not user_data or user_data.endswith("\n") else "\n"
    return f"{user_data}{ending}{variable}={value}\n"


def _describe(refresh: InstanceRefresh) -> str:
    reason = f" ({refresh.status_reason})" if refresh.status_reason else ""
    return (
        f"instance refresh {refresh.id[:8]} {refresh.status}: {refresh.percentage_complete}% "
        f"complete, {refresh.instances_to_update} instance"
        f"{'s' if refresh.instances_to_update != 1 else ''} to update{reason}"
    )


async def _require_idle(services: Services, service: AsgService) -> None:
    for refresh in await services.autoscaling.refreshes(service.scope, service.target.name):
        if refresh.active:
            raise Refused(
                f"an instance refresh of {service.target.name} is already running "
                f"({_describe(refresh)}); nothing was changed",
                hint="wait for it to end, or `cancel` the job that started it",
            )


async def _resolve_image(
    services: Services, service: AsgService, deploy: AsgDeploy, version: str
) -> tuple[str, str]:
    """The AMI id for `version` and where it came from; Refused when there is none."""
    if deploy.image_parameter:
        name = deploy.image_parameter.replace("{version}", version)
        image_id = await services.ssm.parameter(service.scope, name)
        if image_id is None:
            raise Refused(
                f"version {version} of {service.name} does not exist: there is no SSM "
                f"parameter {name} in {service.region}; nothing was changed",
                hint=f"publish the AMI id of {version} under {name} first",
            )
        found = await services.ec2.images(service.scope, [image_id])
        if not found:
            raise Refused(
                f"SSM parameter {name} names {image_id}, which is not an AMI in "
                f"{service.region}; nothing was changed"
            )
        return image_id, f"AMI {image_id} ({found[0].name}) from parameter {name}"
    assert deploy.image_name_pattern is not None
    pattern = deploy.image_name_pattern.replace("{version}", version)
    image = await services.ec2.newest_image(service.scope, pattern)
    if image is None:
        raise Refused(
            f"version {version} of {service.name} does not exist: no AMI named {pattern} in "
            f"{service.region}; nothing was changed"
        )
    return image.id, f"AMI {image.id} ({image.name}), the newest named {pattern}"


async def _plan(
    ctx: Context,
    service: AsgService,
    deploy: AsgDeploy,
    *,
    action: str,
    version: str | None,
    title: str,
    destructive: bool,
) -> Plan:
    services = ctx.services
    group = await services.autoscaling.group(service.scope, service.target.name)
    if group.launch_template is None:
        raise Refused(
            f"Auto Scaling group {group.name} launches from a launch configuration, not a "
            "launch template; kajitori deploys launch template versions",
        )
    await _require_idle(services, service)
    current = await services.ec2.template_version(
        service.scope, group.launch_template.id, group.launch_template.version
    )
    running = current.app_version or UNKNOWN
    image_id: str | None = None
    user_data: str | None = None
    changes: list[str] = []
    checks = [
        Check(
            f"group {group.name}: {group.in_service}/{group.desired} InService "
            f"(min {group.min_size}, max {group.max_size})"
        ),
        Check("no instance refresh running"),
        Check(f"launch template {current.template_name} version {current.number} runs {running}"),
    ]
    if action == "restart":
        changes.append(
            f"instance refresh of {group.name} to the version it runs: launch template "
            f"{current.template_name} version {current.number} ({running}); every instance "
            "replaced"
        )
    else:
        assert version is not None
        if deploy.user_data_variable:
            user_data = set_variable(current.user_data or "", deploy.user_data_variable, version)
            where = f"user data {deploy.user_data_variable}={version}"
        else:
            image_id, source = await _resolve_image(services, service, deploy, version)
            checks.append(Check(source))
            where = f"image {current.image_id} → {image_id}"
        changes.append(
            f"launch template {current.template_name}: a new version from version "
            f"{current.number} ({running} → {version}) with {where}"
        )
        changes.append(f"instance refresh of {group.name} towards it ({group.desired} instances)")
    delay = deploy.checkpoint_delay
    waiting = (
        "waiting for `promote` (or `abort`) at each"
        if delay is None
        else f"waiting {format_duration(delay)} each (`promote` goes on at once)"
    )
    settings = (
        f"MinHealthyPercentage {deploy.min_healthy_percentage}, "
        + (
            f"checkpoints at {', '.join(f'{c}%' for c in deploy.checkpoints)} {waiting}, "
            if deploy.checkpoints
            else ""
        )
        + f"AutoRollback {'on' if deploy.auto_rollback else 'off'}"
    )
    changes.append(f"refresh settings: {settings}")
    state: dict[str, Any] = {
        "kind": KIND,
        "action": action,
        "service": service.name,
        "env": service.env,
        "region": service.region,
        "group": group.name,
        "template_id": current.template_id,
        "template_name": current.template_name,
        "source_version": current.number,
        "image_id": image_id,
        "user_data": user_data,
        "version": version or running,
        "previous_version": running,
        "min_healthy_percentage": deploy.min_healthy_percentage,
        "checkpoints": list(deploy.checkpoints),
        "checkpoint_delay": int((delay or MAX_CHECKPOINT_DELAY).total_seconds()),
        "manual_checkpoints": delay is None,
        "auto_rollback": deploy.auto_rollback and action != "restart",
        "instance_warmup": (
            int(deploy.instance_warmup.total_seconds()) if deploy.instance_warmup else None
        ),
        "timeout": service.timeout.total_seconds(),
    }
    return Plan(
        title=title,
        changes=changes,
        run=run_asg,
        locks=[service.lock],
        destructive=destructive,
        timeout=service.timeout + JOB_DEADLINE_MARGIN,
        checks=checks,
        state=state,
        kind=KIND,
    )


def _require_deploy(service: AsgService, verb: str) -> AsgDeploy:
    if service.deploy is None:
        raise Refused(
            f"{service.name} in {service.env} is an Auto Scaling group without a deploy "
            f"block, so there is no way to {verb} it; nothing was changed",
            hint=f"add `deploy: {{image_parameter: /app/{service.name}/ami/{{version}}}}` "
            f"under environments.{service.env}.services.{service.name} in the config",
        )
    return service.deploy


async def plan_deploy(ctx: Context) -> Plan:
    command = ctx.command
    service = asg_service(ctx.services, command.word("service"), command.word("env"))
    deploy = _require_deploy(service, "deploy")
    version = command.word("version")
    return await _plan(
        ctx,
        service,
        deploy,
        action="deploy",
        version=version,
        title=f"deploy {service.name} {version} to {service.env}",
        destructive=False,
    )


async def plan_restart(ctx: Context) -> Plan:
    command = ctx.command
    service = asg_service(ctx.services, command.word("service"), command.word("env"))
    deploy = service.deploy or AsgDeploy(image_parameter="{version}")
    return await _plan(
        ctx,
        service,
        deploy,
        action="restart",
        version=None,
        title=f"restart {service.name} in {service.env}",
        destructive=True,
    )


async def plan_rollback(ctx: Context) -> Plan:
    """Roll back a running refresh (RollbackInstanceRefresh), or deploy the version that
    ran before the last successful deploy."""
    command = ctx.command
    services = ctx.services
    service = asg_service(services, command.word("service"), command.word("env"))
    deploy = _require_deploy(service, "roll back")
    wanted = command.optional_word("version")
    if wanted is None:
        for refresh in await services.autoscaling.refreshes(service.scope, service.target.name):
            if refresh.active:
                return _plan_refresh_rollback(service, refresh)
        records = await services.store.list_deploys(service.name, service.env, limit=HISTORY_DEPTH)
        last = next((r for r in records if r.outcome == "succeeded" and r.kind != "restart"), None)
        if last is None or not last.previous_version or last.previous_version == UNKNOWN:
            raise Refused(
                f"no earlier successful version of {service.name} in {service.env} is recorded",
                hint=f"name one: `rollback {service.name} {service.env} VERSION`",
            )
        wanted = last.previous_version
    return await _plan(
        ctx,
        service,
        deploy,
        action="rollback",
        version=wanted,
        title=f"roll back {service.name} in {service.env} to {wanted}",
        destructive=True,
    )


def _plan_refresh_rollback(service: AsgService, refresh: InstanceRefresh) -> Plan:
    return Plan(
        title=f"roll back the instance refresh of {service.name} in {service.env}",
        changes=[
            f"RollbackInstanceRefresh on {service.target.name}: {_describe(refresh)}; the "
            "instances already replaced go back to the previous launch template version"
        ],
        run=run_asg,
        locks=[],
        destructive=True,
        timeout=service.timeout + JOB_DEADLINE_MARGIN,
        checks=[Check(_describe(refresh))],
        state={
            "kind": KIND,
            "action": "refresh_rollback",
            "service": service.name,
            "env": service.env,
            "region": service.region,
            "group": service.target.name,
            "refresh_id": refresh.id,
            "version": UNKNOWN,
            "previous_version": UNKNOWN,
            "timeout": service.timeout.total_seconds(),
        },
        kind=KIND,
    )


# -- the job -----------------------------------------------------------------------------


class AsgRun:
    def __init__(self, job: JobContext) -> None:
        self.job = job
        self.services = job.services
        self.state = job.state
        self.scope = AwsScope(str(self.state["env"]), str(self.state["region"]))
        self.group = str(self.state["group"])
        self.service = str(self.state["service"])
        self.env = str(self.state["env"])
        self.action = str(self.state["action"])
        self.version = str(self.state["version"])

    async def template_version(self) -> int:
        state = self.state
        if self.action == "restart":
            return int(state["source_version"])
        if state.get("template_version") is not None:
            return int(state["template_version"])
        source = await self.services.ec2.template_version(
            self.scope, str(state["template_id"]), str(state["source_version"])
        )
        number = await self.services.ec2.create_template_version(
            self.scope,
            source,
            image_id=state.get("image_id"),
            user_data=state.get("user_data"),
            description=f"{TEMPLATE_VERSION_PREFIX}{self.version} (kajitori job {self.job.id})",
        )
        await self.job.save_state(template_version=number)
        await self.job.progress(
            f"launch template {state['template_name']} version {number} created ({self.version})"
        )
        return number

    def request(
        self, number: int, *, skip_matching: bool, checkpoints: list[int]
    ) -> RefreshRequest:
        state = self.state
        return RefreshRequest(
            template_id=str(state["template_id"]),
            template_version=number,
            min_healthy_percentage=int(state["min_healthy_percentage"]),
            checkpoints=checkpoints,
            checkpoint_delay_seconds=int(state["checkpoint_delay"]) if checkpoints else None,
            auto_rollback=bool(state["auto_rollback"]),
            instance_warmup_seconds=state.get("instance_warmup"),
            skip_matching=skip_matching,
        )

    async def start(self) -> str:
        state = self.state
        refresh_id = state.get("refresh_id")
        if refresh_id is not None:
            return str(refresh_id)
        autoscaling = self.services.autoscaling
        if self.job.resumed_from is not None and state.get("starting"):
            for refresh in await autoscaling.refreshes(self.scope, self.group):
                if refresh.active:
                    await self.job.save_state(refresh_id=refresh.id)
                    return refresh.id
        number = await self.template_version()
        await self.job.save_state(starting=True)
        refresh_id = await autoscaling.start_refresh(
            self.scope,
            self.group,
            self.request(number, skip_matching=False, checkpoints=list(state["checkpoints"])),
        )
        await self.job.save_state(refresh_id=refresh_id)
        await self.job.progress(f"instance refresh {refresh_id} of {self.group} started")
        return refresh_id

    async def current(self, refresh_id: str) -> InstanceRefresh:
        found = await self.services.autoscaling.refreshes(self.scope, self.group, [refresh_id])
        if not found:
            raise OperationFailed(f"instance refresh {refresh_id} of {self.group} is gone")
        return found[0]

    async def decision(self) -> str | None:
        return await self.services.store.get_value(decision_key(self.job.id))

    async def promote(self, refresh: InstanceRefresh, by: str) -> str:
        """Skip the rest of a checkpoint's wait: cancel, then start again skipping the
        instances already on the new version, with the checkpoints still ahead."""
        autoscaling = self.services.autoscaling
        await autoscaling.cancel_refresh(self.scope, self.group)
        while True:
            status = (await self.current(refresh.id)).status
            if status in ("Cancelled", "Successful", "Failed"):
                break
            await asyncio.sleep(self.services.polling.first)
        ahead = [c for c in self.state["checkpoints"] if c > refresh.percentage_complete]
        number = await self.template_version()
        refresh_id = await autoscaling.start_refresh(
            self.scope, self.group, self.request(number, skip_matching=True, checkpoints=ahead)
        )
        await self.services.store.swap_value(decision_key(self.job.id), f"{PROMOTE} {by}", "")
        await self.job.save_state(refresh_id=refresh_id, awaiting=None)
        await self.job.progress(
            f"promoted by {by}: refresh {refresh_id} goes on past the checkpoint"
        )
        return refresh_id

    async def watch(self, refresh_id: str) -> InstanceRefresh:
        polling = self.services.polling
        delays = polling.delays()
        index = 0
        last = ""
        rolled_back_by: str | None = None
        while True:
            refresh = await self.current(refresh_id)
            line = _describe(refresh)
            if line != last:
                await self.job.progress(line)
                last = line
                index = 0
            if not refresh.active:
                return refresh
            if refresh.waiting_at_checkpoint and refresh.status == "InProgress":
                if not self.state.get("awaiting"):
                    await self.job.save_state(awaiting="checkpoint")
                    ref = job_ref(self.job.id)
                    goes_on = (
                        f"job {ref} waits for `promote {ref}` to go on"
                        if self.state.get("manual_checkpoints")
                        else f"job {ref} goes on when the delay ends; `promote {ref}` goes on now"
                    )
                    await self.job.post(
                        Message(
                            text=f"{self.group} waits at a checkpoint: {goes_on}, "
                            f"`abort {ref}` rolls the refresh back.",
                            tone=Tone.WARNING,
                            buttons=decision_buttons(self.job.id),
                        )
                    )
                decided = await self.decision()
                if decided:
                    verdict, _, by = decided.partition(" ")
                    if verdict == PROMOTE:
                        refresh_id = await self.promote(refresh, by)
                        continue
                    if verdict == ABORT and rolled_back_by is None:
                        rolled_back_by = by
                        self.state["aborted_by"] = by
                        await self.services.autoscaling.rollback_refresh(self.scope, self.group)
                        await self.job.save_state(awaiting=None)
                        await self.job.progress(f"aborted by {by}: rolling the refresh back")
                        continue
            elif self.state.get("awaiting"):
                await self.job.save_state(awaiting=None)
            await asyncio.sleep(delays[min(index, len(delays) - 1)])
            index += 1

    async def run(self) -> Message:
        if self.action == "refresh_rollback":
            refresh_id = str(self.state["refresh_id"])
            if not self.state.get("rollback_started"):
                await self.services.autoscaling.rollback_refresh(self.scope, self.group)
                await self.job.save_state(rollback_started=True)
            refresh = await self.watch(refresh_id)
            if refresh.status == "RollbackSuccessful":
                return Message(
                    text=f"rolled back the instance refresh of {self.group}: "
                    f"{refresh.status_reason or 'the previous configuration runs again'}",
                    tone=Tone.SUCCESS,
                )
            raise OperationFailed(f"the rollback ended {refresh.status}: {refresh.status_reason}")
        refresh_id = await self.start()
        refresh = await self.watch(refresh_id)
        took = format_duration(self.job.elapsed())
        if refresh.status == "Successful":
            what = {
                "deploy": f"deployed {self.service} {self.version} to {self.env}",
                "rollback": f"rolled back {self.service} in {self.env} to {self.version}",
                "restart": f"restarted {self.service} in {self.env}",
            }[self.action]
            was = f" (was {self.state['previous_version']})" if self.action != "restart" else ""
            return Message(
                text=f"{what} in {took}: instance refresh of {self.group} successful{was}",
                tone=Tone.SUCCESS,
            )
        if refresh.status == "RollbackSuccessful":
            by = self.state.get("aborted_by")
            cause = f"aborted by {by}" if by else "the refresh failed"
            raise OperationFailed(
                f"Auto Scaling rolled the refresh back ({cause}): "
                f"{refresh.status_reason or 'no reason given'}. {self.group} runs "
                f"{self.state['previous_version']} again; {self.version} is not running. "
                f"Took {took}."
            )
        raise OperationFailed(
            f"instance refresh of {self.group} ended {refresh.status}: "
            f"{refresh.status_reason or 'no reason given'} ({refresh.percentage_complete}% "
            "of the instances were replaced and keep the new version)",
            hint=f"`rollback {self.service} {self.env}` deploys the previous version",
        )


async def run_asg(job: JobContext) -> Message:
    """The job body of every Auto Scaling rollout; takes over too (it re-reads the refresh
    id it recorded)."""
    services = job.services
    store = services.store
    run = AsgRun(job)
    state = job.state
    record: DeployRecord | None = None
    if job.resumed_from is not None:
        record = await recorded(job, run.service, run.env)
        if record is None:
            raise JobInterrupted(
                "the replica running it stopped before it began; nothing was changed",
                hint=f"run `{job.record.command}` again",
            )
        await job.progress(f"watching instance refresh {state.get('refresh_id')} again")
    if record is None:
        record = DeployRecord(
            id=await store.next_id("deploy"),
            service=run.service,
            env=run.env,
            version=run.version,
            previous_version=str(state.get("previous_version") or UNKNOWN),
            triggered_by=job.member,
            kind=run.action if run.action != "refresh_rollback" else "rollback",
            job_id=job.id,
            started_at=services.clock.now(),
            detail=approval_detail(job),
        )
        await store.put_deploy(record)
        await job.save_state(deploy_record=record.id)
    timeout = float(state.get("timeout") or 900)
    async with ending(job, record):
        try:
            async with asyncio.timeout(max(timeout - (time.monotonic() - job.started), 0)):
                message = await run.run()
            record.outcome = "succeeded"
            record.task_definition = f"{state.get('template_name')}:{state.get('template_version')}"
            return message
        except TimeoutError:
            note(record, "failed", "timed out")
            if state.get("manual_checkpoints") and state.get("refresh_id"):
                # Its checkpoints wait for a person this job no longer listens for: left
                # alone, the refresh would go on by itself after Auto Scaling's two days.
                await services.autoscaling.cancel_refresh(run.scope, run.group)
                note(record, None, "refresh cancelled (CancelInstanceRefresh)")
                raise OperationFailed(
                    f"timed out after {format_duration(timedelta(seconds=timeout))} with "
                    "checkpoints waiting for `promote`: the instance refresh was cancelled; "
                    "the instances replaced so far keep the new version",
                    hint=f"`rollback {run.service} {run.env}` deploys the previous version; "
                    "deploy again to go on",
                ) from None
            raise OperationFailed(
                f"timed out after {format_duration(timedelta(seconds=timeout))}; the instance "
                "refresh carries on by itself",
                hint=f"follow it with `status {run.service} {run.env}`",
            ) from None
        except asyncio.CancelledError:
            record.outcome = "cancelled"
            if not job.handed_over and state.get("refresh_id"):
                # `cancel JOB` cancels the refresh too: replacements done so far stay.
                with contextlib.suppress(Exception):
                    await asyncio.shield(services.autoscaling.cancel_refresh(run.scope, run.group))
                note(record, None, "cancelled (CancelInstanceRefresh)")
            raise
        except KajitoriError as error:
            rolled_back = "rolled the refresh back" in error.message
            outcome = "rolled_back" if rolled_back else "failed"
            if state.get("aborted_by"):
                outcome = "aborted"
            note(record, outcome, error.message.splitlines()[0])
            raise


async def precheck_asg(services: Services, state: dict[str, Any]) -> list[str]:
    """Before a stored refresh plan runs: the group still launches from the template version
    the plan was made from, and no other instance refresh has started meanwhile."""
    scope = AwsScope(str(state["env"]), str(state["region"]))
    group_name = str(state["group"])
    differences: list[str] = []
    if state.get("action") == "refresh_rollback":
        # Rolling back the refresh that runs: it must still be running.
        refreshes = await services.autoscaling.refreshes(scope, group_name)
        if not any(r.active for r in refreshes):
            differences.append(f"no instance refresh of {group_name} is running any more")
        return differences
    group = await services.autoscaling.group(scope, group_name)
    template = group.launch_template
    planned = str(state["source_version"])
    if template is not None and str(template.version) not in (planned, "$Latest", "$Default"):
        differences.append(
            f"{group_name} now launches from launch template version {template.version}; the "
            f"plan was made from version {planned}"
        )
    for refresh in await services.autoscaling.refreshes(scope, group_name):
        if refresh.active:
            differences.append(f"an instance refresh of {group_name} started: {_describe(refresh)}")
    return differences
