"""Everything a command may use, built once by the composition root (`adapters/bootstrap.py`).

`Core` is what every part needs (the driven adapters too); `Services` adds one typed port
per outside thing. Both are frozen: nothing is registered or patched in after the build.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from bot.access import AccessRules
from bot.clock import Clock
from bot.config import Config
from bot.errors import Explain
from bot.notifier import Notifier
from bot.polling import Polling
from bot.ports.accounts import AccountPort
from bot.ports.capacity import (
    AutoScalingPort,
    DatabaseCapacityPort,
    Ec2Port,
    QuotaPort,
    TargetGroupPort,
)
from bot.ports.database import DatabaseSessions, ReadQueries
from bot.ports.ecs import EcsPort
from bot.ports.events import UpcomingPort
from bot.ports.metrics import Metrics
from bot.ports.ssm import SsmPort
from bot.ports.store import Store
from bot.redaction import Redactor


def unexplained(_error: BaseException) -> str | None:
    return None


@dataclass(frozen=True)
class Core:
    config: Config
    store: Store
    chat: Notifier
    clock: Clock
    redactor: Redactor
    metrics: Metrics

    @property
    def access(self) -> AccessRules:
        return AccessRules(self.config)

    def parts(self) -> dict[str, Any]:
        """The core's fields, to build `Services` around it."""
        return {f.name: getattr(self, f.name) for f in fields(Core)}


@dataclass(frozen=True)
class Services(Core):
    ecs: EcsPort
    ec2: Ec2Port
    target_groups: TargetGroupPort
    autoscaling: AutoScalingPort
    rds: DatabaseCapacityPort
    quotas: QuotaPort
    db_sessions: DatabaseSessions
    read_queries: ReadQueries
    accounts: AccountPort
    ssm: SsmPort
    upcoming: UpcomingPort
    polling: Polling = field(default_factory=Polling)
    # Words for an unexpected error a person can understand (AWS throttling after retries).
    explain_failure: Explain = unexplained
