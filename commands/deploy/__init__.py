"""Deploy, roll back and restart services: ECS (a task definition revision and its rollout),
EC2 fleets (SSM Run Command in batches with a canary) and Auto Scaling groups (a launch
template version and an instance refresh); `promote` / `abort` for a waiting canary."""

from bot.plan import JobBody
from commands.deploy import asg, fleet, restart
from commands.deploy.workflow import RESUMERS as ECS_RESUMERS
from commands.deploy.workflow import SPECS

# By plan kind: the job body that runs a plan from its state alone.
RUNNERS: dict[str, JobBody] = {
    fleet.KIND: fleet.run_fleet,
    asg.KIND: asg.run_asg,
    **restart.RUNNERS,
}
# By plan kind: what takes a job over when the replica running it stopped.
RESUMERS: dict[str, JobBody] = {**ECS_RESUMERS, **RUNNERS}

__all__ = ["RESUMERS", "RUNNERS", "SPECS"]
