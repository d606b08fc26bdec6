"""What a command that changes something gives back: a plan.

A plan is resolved when it is made: its `state` holds everything its run needs (absolute
counts, the exact task definition revision, the image digest, instance ids and types) and
the `from` state it was planned against. Its `kind` names the feature's runner, the job
body that reads only `job.state`, so that a plan stored with a request for approval runs
exactly as it was shown, and the kind's precheck tells whether the world still matches the
plan's `from` state before a stored plan runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.jobs.context import JobContext
from bot.jobs.locks import LockKey
from bot.messages import Message

if TYPE_CHECKING:
    from bot.services import Services

JobBody = Callable[[JobContext], Awaitable[Message]]
# What differs between the world now and a plan's `from` state, one line each; empty when
# the plan may run as it was planned.
Precheck = Callable[["Services", dict[str, Any]], Awaitable[list[str]]]


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
    # The feature's runner for `kind` (its RUNNERS entry); it reads only `job.state`.
    run: JobBody
    # Names the runner, the precheck and the resumer (registered by the feature); a job
    # without a resumer is marked interrupted when its replica stops.
    kind: str
    # Everything the run needs, resolved at planning time, JSON-serialisable: stored with
    # a request, and as the job's durable state (for takeover by another replica).
    state: dict[str, Any]
    locks: list[LockKey] = field(default_factory=list)
    destructive: bool = False
    # The job's own deadline; a job past it is cancelled and reported as timed out.
    timeout: timedelta = timedelta(minutes=30)
    # What was checked before anything changes (shown for dry runs).
    checks: list[Check] = field(default_factory=list)
    # Said to the requester when a confirmation of this plan is denied (what goes on).
    on_deny: str = ""
    # What it changes ("SERVICE/ENV") when that is not what it locks (a job that acts
    # through another job, which holds the lock).
    about: list[str] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        return [*self.about, *(str(key) for key in self.locks if str(key) not in self.about)]
