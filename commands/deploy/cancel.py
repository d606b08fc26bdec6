"""What `cancel JOB` does with a deploy or rollback that already changed the ECS service.

Stopping the job would not stop ECS: the rollout goes on by itself. So the member chooses,
as a confirmation: `approve` points the service back at the revision that ran before (the
job does it and watches that rollout to its end, holding its lock), `deny` lets ECS finish
while the job keeps watching. Before the service changed, the job simply stops.
"""

from __future__ import annotations

from typing import Any

from bot.errors import Refused
from bot.jobs.context import JobContext
from bot.messages import Message
from bot.model import JobRecord
from bot.plan import Plan
from bot.ports.ecs import task_definition_name
from bot.services import Services
from bot.spec import Context
from commands.deploy.record import HISTORY_DEPTH
from commands.deploy.rollout import describe_deployment
from commands.deploy.workflow import _ecs_service

CANCEL_ROLLOUT = "cancel-rollout"


async def cancel_rollout(ctx: Context, record: JobRecord) -> Plan | None:
    state = record.state
    if not state.get("updating"):
        return None  # nothing changed in ECS yet: the job stops where it is
    if state.get("rolling_back_to"):
        raise Refused(
            f"job {record.ref} is already rolling back (cancelled by "
            f"{state.get('cancelled_by', 'someone')}); it ends when that rollout ends"
        )
    services = ctx.services
    kind = str(state.get("kind", record.kind))
    service = _ecs_service(services, str(state["service"]), str(state["env"]), kind)
    deploys = await services.store.list_deploys(service.name, service.env, limit=HISTORY_DEPTH)
    deploy = next((d for d in deploys if d.id == state.get("deploy_record")), None)
    if deploy is None or not deploy.previous_task_definition:
        return None
    now = await services.ecs.describe_service(service.scope, service.target)
    ours = next((d for d in now.deployments if d.id == state.get("deployment")), now.primary)
    where = describe_deployment(ours) if ours is not None else f"{now.running}/{now.desired}"
    previous = (
        f"{task_definition_name(deploy.previous_task_definition)} ({deploy.previous_version})"
    )
    revision = f"{task_definition_name(deploy.task_definition)} ({deploy.version})"
    return Plan(
        title=f"roll back {service.name} in {service.env} to {previous}, stopping job {record.ref}",
        changes=[
            f"job {record.ref} ({record.title}) stops its rollout of {revision}, "
            f"which stands at {where}",
            f"ECS service {service.where}: back to {previous}, circuit breaker on; job "
            f"{record.ref} watches it to the end and keeps the lock",
        ],
        run=run_cancel_rollout,
        kind=CANCEL_ROLLOUT,
        state={"job": record.id, "ref": record.ref, "previous": previous},
        destructive=True,
        timeout=service.timeout * 2,
        on_deny=f"nothing is rolled back: ECS finishes the rollout of {revision} and job "
        f"{record.ref} goes on watching it",
        about=[str(service.lock)],
    )


async def run_cancel_rollout(job: JobContext) -> Message:
    """Have the deploy job roll back to what ran before, and wait for it to end."""
    job_id, ref, previous = int(job.state["job"]), str(job.state["ref"]), job.state["previous"]
    store = job.services.store
    jobs = job.jobs
    assert jobs is not None, "a job runs in a JobManager"
    record = await store.get_job(job_id)
    if record is None or record.status.finished:
        summary = record.summary if record is not None else "it is gone"
        return Message(text=f"job {ref} had already ended: {summary}")
    # Told at once on this replica; on another, that replica looks every few seconds.
    await jobs.ask_to_stop(job_id, by=job.member, action="rollback")
    where = "" if jobs.context(job_id) is not None else f" on {record.runner}"
    await job.progress(f"job {ref}{where} is rolling back to {previous}; waiting for it")
    left = job.record.deadline - job.services.clock.now() if job.record.deadline else None
    ended = await jobs.ended(job_id, left.total_seconds() if left else 3600)
    if ended is None:
        return Message(text=f"job {ref} had not ended when this job's time ran out")
    summary = ended.result or ended.status.value
    return Message(text=f"job {ref} ended {ended.status.value}: {summary}")


async def precheck_cancel_rollout(services: Services, state: dict[str, Any]) -> list[str]:
    """The deploy to stop must still be running; once it ended there is nothing to cancel."""
    record = await services.store.get_job(int(state["job"]))
    if record is None or record.status.finished:
        how = record.status.value if record is not None else "gone"
        return [f"job {state['ref']} is no longer running ({how})"]
    return []


CANCELLERS = {"deploy": cancel_rollout, "rollback": cancel_rollout}
RUNNERS = {CANCEL_ROLLOUT: run_cancel_rollout}
PRECHECKS = {CANCEL_ROLLOUT: precheck_cancel_rollout}
