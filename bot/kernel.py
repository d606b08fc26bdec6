"""The kernel as built: the services, the registry of commands, locks, jobs and the
dispatcher in front of them. Every driving adapter receives it as a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.config import Config
from bot.dispatcher import Dispatcher
from bot.jobs.locks import DeployLocks
from bot.jobs.manager import JobManager
from bot.services import Services
from bot.spec import Registry


@dataclass(frozen=True)
class Kernel:
    services: Services
    registry: Registry
    locks: DeployLocks
    jobs: JobManager
    dispatcher: Dispatcher

    @property
    def config(self) -> Config:
        return self.services.config

    @classmethod
    def build(
        cls, services: Services, registry: Registry, *, runner: str, lease: timedelta
    ) -> Kernel:
        locks = DeployLocks(services.store, services.clock)
        jobs = JobManager(services, locks, registry.resumers, runner=runner, lease=lease)
        dispatcher = Dispatcher(services, registry, locks, jobs)
        return cls(services, registry, locks, jobs, dispatcher)
