"""A service to deploy, as a job sees it: its name, environment, what AWS knows it by, its
deploy settings, and where its AWS calls go."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from bot.config import AwsScope
from bot.jobs.locks import LockKey

Target = TypeVar("Target")
Settings = TypeVar("Settings")


@dataclass(frozen=True)
class DeployTarget(Generic[Target, Settings]):
    name: str
    env: str
    region: str
    target: Target  # the fleet's or the group's config
    deploy: Settings | None  # its `deploy:` block
    timeout: timedelta

    @property
    def lock(self) -> LockKey:
        return LockKey(self.name, self.env)

    @property
    def scope(self) -> AwsScope:
        """Where its AWS calls go: the environment's account and region."""
        return AwsScope(self.env, self.region)
