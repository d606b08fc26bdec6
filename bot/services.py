"""Everything a command may use, built once by the composition root (`adapters/bootstrap.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.access import AccessRules
from bot.clock import Clock
from bot.config import Config
from bot.notifier import Notifier
from bot.ports.ecs import EcsPort
from bot.ports.metrics import Metrics, NoMetrics
from bot.ports.store import Store
from bot.redaction import Redactor

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher
    from bot.jobs import JobManager
    from bot.locks import DeployLocks
    from bot.spec import Registry


def _unexplained(_error: BaseException) -> str | None:
    return None


@dataclass
class Services:
    config: Config
    store: Store
    chat: Notifier
    clock: Clock
    redactor: Redactor
    ecs: EcsPort
    # Ports added by later features (capacity, quotas, databases, ...), by name.
    extra: dict[str, Any] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=NoMetrics)
    # Says what went wrong when an unexpected error is one a person can understand (AWS
    # still throttling after every retry); None leaves it an internal error.
    explain_failure: Callable[[BaseException], str | None] = _unexplained
    # Set by the Bot once built.
    jobs: JobManager | None = None
    locks: DeployLocks | None = None
    dispatcher: Dispatcher | None = None
    registry: Registry | None = None

    @property
    def access(self) -> AccessRules:
        return AccessRules(self.config)

    def port(self, name: str) -> Any:
        from bot.errors import Refused

        port = self.extra.get(name)
        if port is None:
            raise Refused(f"{name} is not available in this deployment of kajitori")
        return port
