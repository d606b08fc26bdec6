"""Deploy and roll back ECS services: the commands, the rollout workflow and its watcher."""

from commands.deploy.cancel import CANCELLERS
from commands.deploy.workflow import RESUMERS, SPECS

__all__ = ["CANCELLERS", "RESUMERS", "SPECS"]
