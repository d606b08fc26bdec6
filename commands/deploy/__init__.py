"""Deploy, roll back and restart services: ECS (a task definition revision and its rollout),
EC2 fleets (SSM Run Command in batches with a canary) and Auto Scaling groups (a launch
template version and an instance refresh); `promote` / `abort` for a waiting canary; and
what `cancel` does with a deploy that already changed the service."""

from bot.plan import JobBody, Precheck
from commands.deploy import asg, cancel, fleet, restart, workflow

SPECS = workflow.SPECS
# By plan kind: the job body that runs a plan from its state alone.
RUNNERS: dict[str, JobBody] = {
    **workflow.RUNNERS,
    **cancel.RUNNERS,
    fleet.KIND: fleet.run_fleet,
    asg.KIND: asg.run_asg,
    **restart.RUNNERS,
}
# By plan kind: what differs between the world now and the plan's `from` state.
PRECHECKS: dict[str, Precheck] = {
    **workflow.PRECHECKS,
    **cancel.PRECHECKS,
    fleet.KIND: fleet.precheck_fleet,
    asg.KIND: asg.precheck_asg,
    **restart.PRECHECKS,
}
# By plan kind: what takes a job over when the replica running it stopped.
RESUMERS: dict[str, JobBody] = {
    **workflow.RESUMERS,
    fleet.KIND: fleet.run_fleet,
    asg.KIND: asg.run_asg,
    **restart.RUNNERS,
}
CANCELLERS = cancel.CANCELLERS

TITLE = "deploy"

__all__ = ["CANCELLERS", "PRECHECKS", "RESUMERS", "RUNNERS", "SPECS", "TITLE"]
