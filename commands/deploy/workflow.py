"""`deploy SERVICE ENV VERSION` and `rollback SERVICE ENV [VERSION]` for ECS services.

A deploy checks that the image tag is in ECR before anything changes, registers a new
revision of the service's task definition with only the container's image changed, points
the service at it with the deployment circuit breaker on, and watches the rollout to its
end. A rollback reuses a task definition revision recorded by an earlier successful deploy.
Both hold the service's lock for the whole run and leave a deploy record in every outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.config import AwsScope, EcsTarget
from bot.errors import KajitoriError, OperationFailed, Refused
from bot.grammar import format_duration
from bot.jobs.context import JobCancelled, JobContext, JobInterrupted
from bot.jobs.locks import LockKey
from bot.messages import Message, Tone
from bot.model import DeployRecord
from bot.plan import Check, Plan
from bot.polling import Polling
from bot.ports.ecs import (
    EcrImage,
    EcsPort,
    EcsServiceState,
    StoppedTask,
    ecr_registry,
    image_digest,
    image_repository,
    image_tag,
    image_with_digest,
    image_with_tag,
    task_definition_name,
)
from bot.services import Services
from bot.spec import Arg, CommandSpec, Context
from commands.deploy import asg, fleet
from commands.deploy.canary import SPECS as CANARY_SPECS
from commands.deploy.record import HISTORY_DEPTH, approval_detail, ending, note, recorded
from commands.deploy.restart import SPECS as RESTART_SPECS
from commands.deploy.rollout import (
    RolloutEnd,
    RolloutResult,
    RolloutWatcher,
    breaker_reason,
    summarize_stopped,
)

log = logging.getLogger(__name__)

# The job's own deadline is the service's rollout timeout plus this, so that the rollout
# watcher's timeout (which says where the rollout stands) always comes first.
JOB_DEADLINE_MARGIN = timedelta(minutes=1)
# How much deploy history a rollback looks through for its target.


@dataclass(frozen=True)
class EcsService:
    """A service of the config that runs on ECS, resolved for one environment."""

    name: str
    env: str
    scope: AwsScope
    target: EcsTarget
    timeout: timedelta

    @property
    def lock(self) -> LockKey:
        return LockKey(self.name, self.env)

    @property
    def where(self) -> str:
        return f"{self.target.cluster}/{self.target.service}"


def _ecs_service(services: Services, name: str, env: str, verb: str) -> EcsService:
    environment = services.config.environment(env)
    service = services.config.service(name, env)
    if service.ecs is None:
        raise Refused(f"{verb} works on ECS services; {name} in {env} is a {service.kind} service")
    return EcsService(name, env, environment.scope, service.ecs, service.timeout)


def _short_image(image: str) -> str:
    """`123….amazonaws.com/api:v1` -> `api:v1`."""
    return image.rsplit("/", 1)[-1]


async def _require_image(ecs: EcsPort, service: EcsService, image: str) -> EcrImage:
    """The image's ECR entry; Refused, naming recent tags, when its tag is not there."""
    repository = service.target.repository or image_repository(image)
    registry = ecr_registry(image)
    scope, registry_id = (
        (service.scope.in_region(registry[1]), registry[0]) if registry else (service.scope, None)
    )
    tag = image_tag(image)
    found = await ecs.find_image(scope, repository, tag, registry_id)
    if found is None:
        recent = await ecs.recent_tags(scope, repository, registry_id)
        raise Refused(
            f"image tag {tag!r} is not in ECR repository {repository} ({scope}); "
            "nothing was changed",
            hint=f"recent tags: {', '.join(recent)}" if recent else None,
        )
    return found


def _image_check(image: EcrImage) -> str:
    pushed = f", pushed {image.pushed_at:%Y-%m-%d %H:%M} UTC" if image.pushed_at else ""
    if image.tag.startswith("sha256:"):
        return f"image {image.repository}@{image.digest[:19]}… is in ECR{pushed}"
    return f"image {image.repository}:{image.tag} is in ECR ({image.digest[:19]}…{pushed})"


def _service_check(service: EcsService, state: EcsServiceState) -> str:
    return (
        f"ECS service {service.where} is {state.status}: {state.running}/{state.desired} "
        f"running {state.revision} ({state.image_tag})"
    )


def _in_progress_warning(state: EcsServiceState) -> list[str]:
    primary = state.primary
    if primary is None or primary.rollout_state != "IN_PROGRESS":
        return []
    return [
        f"⚠️ deployment {primary.id} of {task_definition_name(primary.task_definition)} is "
        f"still IN_PROGRESS ({primary.running}/{primary.desired} running); this replaces it"
    ]


# -- deploy ------------------------------------------------------------------------------


def _short_digest(digest: str) -> str:
    return digest[:19] + "…"


async def deploy(ctx: Context) -> Plan:
    command = ctx.command
    kind = ctx.services.config.service(command.word("service"), command.word("env")).kind
    if kind == "fleet":
        return await fleet.plan_deploy(ctx)
    if kind == "asg":
        return await asg.plan_deploy(ctx)
    version = command.word("version")
    service = _ecs_service(ctx.services, command.word("service"), command.word("env"), "deploy")
    ecs = ctx.services.ecs
    state = await ecs.describe_service(service.scope, service.target)
    tagged = image_with_tag(state.image, version)
    image = await _require_image(ecs, service, tagged)
    # The new revision names the bytes the tag points to now: a tag moved later (a push
    # of the same tag) changes nothing that was reviewed.
    pinned = image_with_digest(tagged, image.digest) if image.digest else tagged
    next_revision = await ecs.next_revision(service.scope, state.task_definition)
    same = " (same image: new tasks replace the running ones)" if state.image == pinned else ""
    changes = [
        f"image of container {service.target.container}: "
        f"{_short_image(image_with_tag(state.image, state.image_tag))} → "
        f"{_short_image(tagged)} ({_short_digest(image.digest)}){same}",
        f"task definition: {state.revision} → {next_revision} (a new revision pinning the "
        "digest; environment, secrets, CPU, memory and roles are copied)",
        f"ECS service {service.where}: rolling update of {state.desired} tasks, "
        "circuit breaker with rollback on",
        *_in_progress_warning(state),
    ]
    checks = [
        Check(_image_check(image)),
        Check(_service_check(service, state)),
        Check(f"rollout timeout {format_duration(service.timeout)}"),
    ]
    return Plan(
        title=f"deploy {service.name} {version} to {service.env}",
        changes=changes,
        run=run_rollout,
        kind="deploy",
        state={
            "kind": "deploy",
            "service": service.name,
            "env": service.env,
            "version": version,
            "image": pinned,
            "digest": image.digest,
            "from_task_definition": state.task_definition,
            "from_version": state.image_tag,
        },
        locks=[service.lock],
        timeout=service.timeout + JOB_DEADLINE_MARGIN,
        checks=checks,
    )


# -- rollback ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """A version with a task definition revision that ran successfully."""

    version: str
    task_definition: str
    source: str  # "as deployed by job J12", "as it ran before deploy job J12"


def _made_by(record: DeployRecord) -> str:
    """`deploy job J12`: the job id people see in `jobs`, `history` and the job's thread."""
    return f"{record.kind} job J{record.job_id}" if record.job_id else f"{record.kind} {record.id}"


def _recorded_by(record: DeployRecord) -> str:
    verb = "deployed" if record.kind == "deploy" else "restored"
    job = f"job J{record.job_id}" if record.job_id else f"{record.kind} {record.id}"
    return f"as {verb} by {job}"


def successful_versions(records: list[DeployRecord]) -> list[Known]:
    """The versions that ran successfully, as a stack (oldest first, current last).

    A deploy pushes its version; a rollback pops back to the version it restored, so that a
    second rollback goes one step further back rather than forward again. The version that
    ran before the first recorded deploy seeds the stack, so a rollback works after one
    deploy.
    """
    stack: list[Known] = []
    for record in sorted(records, key=lambda r: r.id):
        if not stack and record.previous_version and record.previous_task_definition:
            stack.append(
                Known(
                    record.previous_version,
                    record.previous_task_definition,
                    f"as it ran before {_made_by(record)}",
                )
            )
        if record.outcome != "succeeded" or not record.task_definition:
            continue
        known = Known(record.version, record.task_definition, _recorded_by(record))
        restored = [i for i, k in enumerate(stack) if k.task_definition == record.task_definition]
        if record.kind == "rollback" and restored:
            del stack[restored[-1] + 1 :]
        else:
            stack.append(known)
    return stack


def previous_version(records: list[DeployRecord], state: EcsServiceState) -> Known | None:
    """The last version that ran successfully before the one running now."""
    stack = successful_versions(records)
    while stack and (
        stack[-1].task_definition == state.task_definition or stack[-1].version == state.image_tag
    ):
        stack.pop()
    return stack[-1] if stack else None


def named_version(records: list[DeployRecord], version: str) -> Known | None:
    """The newest task definition revision recorded as running `version` successfully."""
    for record in sorted(records, key=lambda r: r.id, reverse=True):
        if record.version == version and record.outcome == "succeeded" and record.task_definition:
            return Known(version, record.task_definition, _recorded_by(record))
        if record.previous_version == version and record.previous_task_definition:
            return Known(
                version, record.previous_task_definition, f"as it ran before {_made_by(record)}"
            )
    return None


def recorded_versions(records: list[DeployRecord]) -> list[str]:
    """Every version recorded as having run successfully (a rollback target), oldest first.

    Not the rollback stack of `successful_versions`: a version a later rollback went back
    past still ran successfully and can be named."""
    seen: dict[str, None] = {}
    for record in sorted(records, key=lambda r: r.id):
        if record.previous_version and record.previous_task_definition:
            seen.setdefault(record.previous_version, None)
        if record.outcome == "succeeded" and record.task_definition:
            seen.setdefault(record.version, None)
    return list(seen)


async def rollback(ctx: Context) -> Plan:
    command = ctx.command
    services = ctx.services
    kind = services.config.service(command.word("service"), command.word("env")).kind
    if kind == "fleet":
        return await fleet.plan_rollback(ctx)
    if kind == "asg":
        return await asg.plan_rollback(ctx)
    service = _ecs_service(services, command.word("service"), command.word("env"), "rollback")
    wanted = command.optional_word("version")
    ecs = services.ecs
    state = await ecs.describe_service(service.scope, service.target)
    records = await services.store.list_deploys(service.name, service.env, limit=HISTORY_DEPTH)
    if wanted is None:
        known = previous_version(records, state)
        if known is None:
            raise Refused(
                f"no earlier successful version of {service.name} in {service.env} is recorded "
                f"(it runs {state.image_tag}, {state.revision})",
                hint=f"name one with `rollback {service.name} {service.env} VERSION`, "
                f"or `deploy {service.name} {service.env} VERSION`",
            )
    else:
        known = named_version(records, wanted)
        if known is None:
            recorded = recorded_versions(records)
            listed = f"recorded: {', '.join(recorded)}; " if recorded else ""
            raise Refused(
                f"no successful deploy of {wanted} to {service.env} is recorded for "
                f"{service.name}, so there is no task definition to roll back to",
                hint=f"{listed}to run a version never deployed here, use "
                f"`deploy {service.name} {service.env} {wanted}`",
            )
    if known.task_definition == state.task_definition:
        raise Refused(
            f"{service.name} in {service.env} already runs {known.version} ({state.revision})"
        )
    definition = await ecs.describe_task_definition(
        service.scope, known.task_definition, service.target.container
    )
    if definition.status != "ACTIVE":
        raise Refused(
            f"task definition {definition.revision} of {known.version} is {definition.status} "
            "and cannot be deployed again",
            hint=f"deploy the version anew: `deploy {service.name} {service.env} {known.version}`",
        )
    image = await _require_image(ecs, service, definition.image)
    changes = [
        f"image of container {service.target.container}: "
        f"{_short_image(image_with_tag(state.image, state.image_tag))} → "
        f"{_short_image(image_with_tag(definition.image, known.version))} "
        f"({_short_digest(image.digest)})",
        f"task definition: {state.revision} → {definition.revision} (recorded "
        f"{known.source}; reused, nothing new is registered)",
        f"ECS service {service.where}: rolling update of {state.desired} tasks, "
        "circuit breaker with rollback on",
        *_in_progress_warning(state),
    ]
    checks = [
        Check(_image_check(image)),
        Check(_service_check(service, state)),
        Check(f"task definition {definition.revision} is ACTIVE"),
        Check(f"rollout timeout {format_duration(service.timeout)}"),
    ]
    return Plan(
        title=f"roll back {service.name} in {service.env} to {known.version}",
        changes=changes,
        run=run_rollout,
        kind="rollback",
        state={
            "kind": "rollback",
            "service": service.name,
            "env": service.env,
            "version": known.version,
            "image": definition.image,
            "digest": image.digest,
            "task_definition": definition.arn,
            "from_task_definition": state.task_definition,
            "from_version": state.image_tag,
        },
        locks=[service.lock],
        destructive=True,
        timeout=service.timeout + JOB_DEADLINE_MARGIN,
        checks=checks,
    )


# -- the job both run --------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutJob:
    """Deploy `image` (registering a revision of `from_task_definition`) or reuse
    `task_definition`, then watch; all of it as planned, read from the job's state."""

    service: EcsService
    kind: str  # deploy | rollback
    version: str
    image: str
    task_definition: str | None
    # What the service ran when the plan was made.
    from_task_definition: str | None
    from_version: str | None
    timing: Polling

    async def run(self, job: JobContext) -> Message:
        """Each step is recorded in the job's state before the next, so that a replica taking
        the job over (`resume_rollout`) goes on watching and never changes anything again."""
        services = job.services
        store = services.store
        ecs = services.ecs
        service = self.service
        if job.resumed_from is not None:
            record = await self._recorded(job)
        else:
            state = await ecs.describe_service(service.scope, service.target)
            record = DeployRecord(
                id=await store.next_id("deploy"),
                service=service.name,
                env=service.env,
                version=self.version,
                task_definition=self.task_definition or "",
                previous_version=self.from_version or state.image_tag,
                previous_task_definition=self.from_task_definition or state.task_definition,
                triggered_by=job.member,
                kind=self.kind,
                job_id=job.id,
                started_at=services.clock.now(),
                detail=approval_detail(job),
            )
        watcher: RolloutWatcher | None = None
        async with ending(job, record):
            try:
                if job.resumed_from is None:
                    await store.put_deploy(record)
                    await job.save_state(deploy_record=record.id)
                    deployment_id = await self._change(job, record, state)
                else:
                    deployment_id = await self._resume_point(job, record)
                watcher = RolloutWatcher(
                    ecs,
                    service.scope,
                    service.target,
                    deployment_id,
                    report=job.progress,
                    timing=self.timing,
                    started=job.started,
                )
                left = service.timeout.total_seconds() - (time.monotonic() - job.started)
                try:
                    async with asyncio.timeout(max(left, 0)):
                        watched = await job.unless_stopped(watcher.watch())
                except TimeoutError:
                    raise OperationFailed(
                        f"timed out after {format_duration(service.timeout)} waiting for the "
                        f"rollout: {watcher.status_line()}",
                        hint=f"ECS carries on by itself; follow it with "
                        f"`status {service.name} {service.env}`",
                    ) from None
                if watched is None:
                    # `cancel J4`, confirmed: go back to what ran before, and say how that went.
                    raise await self._roll_back_cancelled(job, record, watcher)
                message = await self._ending(job, record, watched)
                note(record, "succeeded", f"took {format_duration(job.elapsed())}")
                return message
            except asyncio.CancelledError:
                where = f": {watcher.status_line()}" if watcher is not None else ""
                who = (
                    "kajitori stopped"
                    if job.abandoned
                    else f"cancelled by {job.cancelled_by}"
                    if job.cancelled_by
                    else "cancelled"
                )
                if job.elapsed() >= service.timeout:
                    note(record, "failed", "timed out")
                elif job.state.get("updating"):
                    # The service was changed: ECS goes on with the rollout whatever happens.
                    note(
                        record,
                        "unwatched",
                        f"{who} while ECS rolled it out; ECS carries on{where}",
                    )
                else:
                    outcome = "interrupted" if job.abandoned else "cancelled"
                    note(record, outcome, f"{who} before the service changed")
                raise
            except JobCancelled as error:
                note(record, "cancelled", error.message.splitlines()[0])
                raise
            except JobInterrupted as error:
                note(record, "interrupted", error.message.splitlines()[0])
                raise
            except KajitoriError as error:
                unsaid = record.outcome == "running"  # else _ending said how it ended
                note(record, "failed" if unsaid else None, error.message.splitlines()[0])
                raise

    async def _roll_back_cancelled(
        self, job: JobContext, record: DeployRecord, watcher: RolloutWatcher
    ) -> KajitoriError:
        """Point the service back at the revision that ran before this job and watch that
        rollout; the error to end the job with (JobCancelled when the rollback completed)."""
        services = job.services
        service = self.service
        by = job.cancelled_by or "someone"
        previous = record.previous_task_definition
        if not previous:
            return OperationFailed(
                f"cancelled by {by}, but no previous revision is recorded to roll back to; "
                f"ECS carries on: {watcher.status_line()}"
            )
        back = f"{task_definition_name(previous)} ({record.previous_version})"
        await job.progress(
            f"cancelled by {by}: rolling back to {back}; stopped at {watcher.status_line()}"
        )
        await job.save_state(cancelled_by=by, rolling_back_to=previous)
        deployment_id = await services.ecs.update_service(service.scope, service.target, previous)
        await job.progress(f"ECS deployment {deployment_id} started: back to {back}")
        back_watcher = RolloutWatcher(
            services.ecs,
            service.scope,
            service.target,
            deployment_id,
            report=job.progress,
            timing=self.timing,
        )
        try:
            async with asyncio.timeout(service.timeout.total_seconds()):
                result = await back_watcher.watch()
        except TimeoutError:
            return OperationFailed(
                f"cancelled by {by}; the rollback to {back} did not finish in "
                f"{format_duration(service.timeout)}: {back_watcher.status_line()}",
                hint=f"ECS carries on by itself; follow it with `status {service.name} "
                f"{service.env}`",
            )
        revision = task_definition_name(record.task_definition)
        if result.end is RolloutEnd.COMPLETED:
            done = result.deployment
            counts = f", {done.running}/{done.desired} running" if done else ""
            return JobCancelled(
                f"cancelled by {by}: rolled back to {back}{counts}; {revision} "
                f"({self.version}) is not running"
            )
        return OperationFailed(
            f"cancelled by {by}; the rollback to {back} did not complete: {result.reason}"
        )

    async def _change(self, job: JobContext, record: DeployRecord, state: EcsServiceState) -> str:
        """Register the revision (a deploy) and point the service at it; the deployment id."""
        services = job.services
        store = services.store
        ecs = services.ecs
        service = self.service
        task_definition = self.task_definition
        if task_definition is None:
            # A new revision of the very revision the plan was made against.
            task_definition = await ecs.register_image_revision(
                service.scope,
                self.from_task_definition or state.task_definition,
                service.target.container,
                self.image,
                self.version,
            )
            record.task_definition = task_definition
            await store.put_deploy(record)
            await job.save_state(task_definition=task_definition)
            await job.progress(
                f"registered {task_definition_name(task_definition)} "
                f"({_short_image(image_with_tag(self.image, self.version))}, "
                f"{_short_image(self.image).split('@', 1)[-1][:19]}…)"
            )
        # Written just before the service changes: a replica taking over then looks at the
        # service to learn whether it changed. The write also fails when this replica has
        # lost the job, so a runner that stalled past its lease changes nothing.
        await job.save_state(updating=True)
        deployment_id = await ecs.update_service(service.scope, service.target, task_definition)
        await job.save_state(task_definition=task_definition, deployment=deployment_id)
        await job.progress(
            f"ECS deployment {deployment_id} started: {state.revision} → "
            f"{task_definition_name(task_definition)}, {state.desired} tasks"
        )
        return deployment_id

    async def _recorded(self, job: JobContext) -> DeployRecord:
        """The deploy record of a job taken over; JobInterrupted when it had none yet."""
        record = await recorded(job, self.service.name, self.service.env)
        if record is not None:
            return record
        raise self._nothing_changed(job, "before it began")

    async def _resume_point(self, job: JobContext, record: DeployRecord) -> str:
        """The deployment a job taken over watches: the one it recorded, or the one its
        runner started just before it stopped; JobInterrupted when it started none."""
        service = self.service
        rolling_back_to = job.state.get("rolling_back_to")
        if rolling_back_to:
            # Cancelled and rolling back when its replica stopped: that rollout is ECS's now.
            raise JobInterrupted(
                f"the replica running it stopped while it rolled back to "
                f"{task_definition_name(str(rolling_back_to))} (cancelled by "
                f"{job.state.get('cancelled_by', 'someone')}); ECS carries on by itself",
                hint=f"follow it with `status {service.name} {service.env}`",
            )
        deployment_id = job.state.get("deployment")
        target = job.state.get("task_definition") or record.task_definition
        if deployment_id is None:
            current = await job.services.ecs.describe_service(service.scope, service.target)
            primary = current.primary
            if not (
                job.state.get("updating")
                and target
                and primary is not None
                and primary.task_definition == target
            ):
                raise self._nothing_changed(
                    job,
                    f"before it changed the service ({service.where} runs "
                    f"{current.revision}, {current.image_tag})",
                )
            deployment_id = primary.id
            await job.save_state(deployment=deployment_id)
        await job.progress(
            f"watching the rollout of ECS deployment {deployment_id} "
            f"({task_definition_name(str(target))}) again"
        )
        return str(deployment_id)

    def _nothing_changed(self, job: JobContext, when: str) -> JobInterrupted:
        return JobInterrupted(
            f"the replica running it stopped {when}; nothing was changed",
            hint=f"run `{job.record.command}` again",
        )

    async def _ending(
        self, job: JobContext, record: DeployRecord, result: RolloutResult
    ) -> Message:
        """The success message, or OperationFailed saying plainly what ECS did."""
        service = self.service
        services = job.services
        took = format_duration(job.elapsed())
        revision = task_definition_name(record.task_definition)
        if result.end is RolloutEnd.COMPLETED:
            done = result.deployment
            counts = f", {done.running}/{done.desired} running" if done else ""
            verb = "deployed" if self.kind == "deploy" else "rolled back"
            where = (
                f"{service.name} {self.version} to {service.env}"
                if self.kind == "deploy"
                else f"{service.name} in {service.env} to {self.version}"
            )
            return Message(
                text=f"{verb} {where} in {took}: {revision}{counts} "
                f"(was {record.previous_version}, "
                f"{task_definition_name(record.previous_task_definition or '')})",
                tone=Tone.SUCCESS,
            )
        ours = result.deployment
        stopped: list[StoppedTask] = []
        if ours is not None:
            # The reasons help, but must not hide what ECS did when they cannot be read.
            try:
                stopped = await services.ecs.stopped_tasks(
                    service.scope, service.target, started_by=ours.id
                )
            except Exception:
                log.exception("reading the stopped tasks of %s failed", ours.id)
        reasons = summarize_stopped(stopped)
        stopped_lines = ["stopped tasks:", *(f"• {line}" for line in reasons)] if reasons else []
        if result.end is RolloutEnd.ROLLED_BACK:
            back = result.replaced_by
            restored = "the last good revision"
            if back is not None:
                restored = task_definition_name(back.task_definition)
                if back.task_definition == record.previous_task_definition:
                    restored += f" ({record.previous_version})"
                restored += f", {back.running}/{back.desired} running again"
            record.outcome = "rolled_back"
            failed = f" after {result.failed_tasks} failed tasks" if result.failed_tasks else ""
            lines = [
                f"ECS rolled it back. The deployment circuit breaker tripped{failed} "
                f"({breaker_reason(result.reason)}) and ECS restored {restored}; "
                f"{revision} ({self.version}) is not running. Took {took}.",
                *stopped_lines,
            ]
            raise OperationFailed("\n".join(lines))
        if result.end is RolloutEnd.SUPERSEDED:
            record.outcome = "failed"
            raise OperationFailed(f"{revision} ({self.version}) did not finish: {result.reason}")
        record.outcome = "failed"
        raise OperationFailed(
            "\n".join(
                [
                    f"{revision} ({self.version}) did not come up after {took}: {result.reason}",
                    *stopped_lines,
                ]
            )
        )


async def run_rollout(job: JobContext) -> Message:
    """The runner of a deploy or rollback plan, from the job's state alone: a new job does
    what was planned; a job taken over from a replica that stopped goes on watching the
    rollout it started, and what it had not started yet ends the job as interrupted."""
    state = job.state
    services = job.services
    kind = str(state["kind"])
    service = _ecs_service(services, str(state["service"]), str(state["env"]), kind)
    rollout = RolloutJob(
        service=service,
        kind=kind,
        version=str(state["version"]),
        image=str(state.get("image", "")),
        task_definition=state.get("task_definition"),
        from_task_definition=state.get("from_task_definition"),
        from_version=state.get("from_version"),
        timing=services.polling,
    )
    return await rollout.run(job)


async def rollout_precheck(services: Services, state: dict[str, Any]) -> list[str]:
    """What differs from the deploy or rollback plan's `from` state: the service runs
    another revision (someone deployed), the tag points at other bytes, or the revision to
    reuse is gone."""
    kind = str(state["kind"])
    service = _ecs_service(services, str(state["service"]), str(state["env"]), kind)
    ecs = services.ecs
    differences: list[str] = []
    now = await ecs.describe_service(service.scope, service.target)
    planned = str(state.get("from_task_definition", ""))
    if now.task_definition != planned:
        differences.append(
            f"{service.name} in {service.env} now runs {now.revision} ({now.image_tag}); "
            f"the plan was made when it ran {task_definition_name(planned)} "
            f"({state.get('from_version')})"
        )
    image = str(state.get("image", ""))
    version = str(state["version"])
    if kind == "rollback":
        definition = await ecs.describe_task_definition(
            service.scope, str(state["task_definition"]), service.target.container
        )
        if definition.status != "ACTIVE":
            differences.append(f"task definition {definition.revision} is now {definition.status}")
        image = definition.image
    # A deploy names its tag; a rollback's revision names a tag or a digest. A tag must
    # still point at the digest that was shown, and the image must still be in ECR.
    lookup = version if kind == "deploy" else (image_digest(image) or image_tag(image))
    repository = service.target.repository or image_repository(image)
    registry = ecr_registry(image)
    scope, registry_id = (
        (service.scope.in_region(registry[1]), registry[0]) if registry else (service.scope, None)
    )
    found = await ecs.find_image(scope, repository, lookup, registry_id)
    digest = str(state.get("digest", ""))
    if found is None:
        differences.append(f"image {repository} {lookup} is no longer in ECR")
    elif digest and found.digest != digest:
        differences.append(
            f"image tag {lookup} now points at {_short_digest(found.digest)}; the plan "
            f"was made for {_short_digest(digest)}"
        )
    return differences


RUNNERS = {"deploy": run_rollout, "rollback": run_rollout}
RESUMERS = RUNNERS
PRECHECKS = {"deploy": rollout_precheck, "rollback": rollout_precheck}


SPECS = [
    CommandSpec(
        name="deploy",
        usage="deploy SERVICE ENV VERSION [--dry-run]",
        summary="deploy a version: ECS image tag, EC2 fleet through SSM, or Auto Scaling group",
        handler=deploy,
        permission="deploy",
        args=(Arg("service"), Arg("env"), Arg("version")),
        flags=frozenset({"--dry-run"}),
        examples=("deploy api staging v2", "deploy api production v2 --dry-run"),
        details=(
            "ECS: checks the tag is in ECR, registers a new task definition revision with only "
            "the container's image changed, and rolls it out with the circuit breaker on. "
            "Fleets: runs the service's SSM document batch by batch (a canary first when "
            "configured; `promote JOB` / `abort JOB`). Auto Scaling: a new launch template "
            "version and an instance refresh."
        ),
    ),
    CommandSpec(
        name="rollback",
        usage="rollback SERVICE ENV [VERSION] [--dry-run] [--yes]",
        summary="go back to the previous successful version (or VERSION)",
        handler=rollback,
        permission="rollback",
        args=(Arg("service"), Arg("env"), Arg("version", optional=True)),
        flags=frozenset({"--dry-run", "--yes"}),
        examples=("rollback api staging", "rollback api staging v1", "rollback web staging"),
        details=(
            "Without VERSION: the last version that ran successfully before the current one, "
            "from the deploy history (fleets: per instance; Auto Scaling: a running instance "
            "refresh is rolled back). Asks for confirmation (`approve ID`)."
        ),
    ),
    *RESTART_SPECS,
    *CANARY_SPECS,
]
