"""What a command that changes something gives back: a plan.

A plan says what will change (shown for dry runs and to approvers), which locks it needs,
and the coroutine that does it inside a background job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.jobs.context import JobContext
from bot.jobs.locks import LockKey
from bot.messages import Message

JobBody = Callable[[JobContext], Awaitable[Message]]


@dataclass(frozen=True)
class Check:
    """One check a plan made before anything changes. Only a check that ran and passed is
    shown with a tick; one that could not run (a missing permission, a quota AWS does not
    list) is shown as a warning with why, so that nobody reads it as passed."""

    text: str
    ran: bool = True

    @classmethod
    def not_run(cls, text: str) -> Check:
        return cls(text, ran=False)

    def line(self) -> str:
        return f"✓ {self.text}" if self.ran else f"⚠ not checked: {self.text}"


@dataclass
class Plan:
    title: str  # "deploy api to staging", also the job's title
    changes: list[str]  # what will change, one line each
    run: JobBody
    locks: list[LockKey] = field(default_factory=list)
    destructive: bool = False
    # The job's own deadline; a job past it is cancelled and reported as timed out.
    timeout: timedelta = timedelta(minutes=30)
    # What was checked before anything changes (shown for dry runs).
    checks: list[Check] = field(default_factory=list)
    # Durable state the job starts with (for takeover by another replica).
    state: dict[str, Any] = field(default_factory=dict)
    # The resumer (registered by a feature) that can take the job over when its replica
    # stops; without one, the job is marked interrupted instead.
    kind: str = ""
    # Said to the requester when a confirmation of this plan is denied (what goes on).
    on_deny: str = ""
    # What it changes ("SERVICE/ENV") when that is not what it locks (a job that acts
    # through another job, which holds the lock).
    about: list[str] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        return [*self.about, *(str(key) for key in self.locks if str(key) not in self.about)]
