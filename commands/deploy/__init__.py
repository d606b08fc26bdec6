"""Deploy and roll back ECS services: the commands, the rollout workflow and its watcher."""

from commands.deploy.workflow import RESUMERS, SPECS

TITLE = "deploy"

__all__ = ["RESUMERS", "SPECS", "TITLE"]
