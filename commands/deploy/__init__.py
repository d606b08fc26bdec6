"""Deploy and roll back ECS services: the commands, the rollout workflow and its watcher."""

from commands.deploy.workflow import PRECHECKS, RESUMERS, RUNNERS, SPECS

__all__ = ["PRECHECKS", "RESUMERS", "RUNNERS", "SPECS"]
