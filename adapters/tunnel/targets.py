"""The configured databases, and whether this host holds what it takes to reach them.

Known without the tunnel's libraries (asyncssh, aiomysql): the composition root asks before
it loads them.
"""

from __future__ import annotations

from pathlib import Path

from bot.config import Config
from bot.ports.database import DatabaseTarget


def configured_targets(config: Config) -> list[DatabaseTarget]:
    """Every database of every environment, in the config's order."""
    return [
        DatabaseTarget(name=name, env=env_name, region=env.region, config=database)
        for env_name, env in config.environments.items()
        for name, database in env.databases.items()
    ]


def reachable(target: DatabaseTarget) -> bool:
    """Whether this host has what it takes to reach the bastion at all."""
    bastion = target.config.bastion
    return Path(bastion.key_file).is_file() and Path(bastion.known_hosts).is_file()
