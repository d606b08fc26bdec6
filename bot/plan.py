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


@dataclass
class Plan:
    title: str  # "deploy api to staging", also the job's title
    changes: list[str]  # what will change, one line each
    run: JobBody
    locks: list[LockKey] = field(default_factory=list)
    destructive: bool = False
    # The job's own deadline; a job past it is cancelled and reported as timed out.
    timeout: timedelta = timedelta(minutes=30)
    # Extra lines for a dry run (checks passed, numbers).
    checks: list[str] = field(default_factory=list)
    # Durable state the job starts with (for takeover by another replica).
    state: dict[str, Any] = field(default_factory=dict)
    # The resumer (registered by a feature) that can take the job over when its replica
    # stops; without one, the job is marked interrupted instead.
    kind: str = ""
