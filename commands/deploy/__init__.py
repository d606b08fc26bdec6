"""Deploy and roll back ECS services: the commands, the rollout workflow and its watcher,
and what `cancel` does with a deploy that already changed the service."""

from commands.deploy import cancel, workflow

SPECS = workflow.SPECS
RUNNERS = {**workflow.RUNNERS, **cancel.RUNNERS}
PRECHECKS = {**workflow.PRECHECKS, **cancel.PRECHECKS}
RESUMERS = workflow.RESUMERS
CANCELLERS = cancel.CANCELLERS

__all__ = ["CANCELLERS", "PRECHECKS", "RESUMERS", "RUNNERS", "SPECS"]
