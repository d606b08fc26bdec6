"""What a command handler receives, and what it gives back.

A quick command returns a `Message`. A command that changes something returns a `Plan`:
what will change (shown for dry runs and to approvers), which locks it needs, and the
coroutine that does it inside a background job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.messages import Message
from bot.model import Origin

if TYPE_CHECKING:
    from bot.jobs import JobContext
    from bot.services import Services
    from bot.spec import ParsedCommand


@dataclass(frozen=True)
class Context:
    command: ParsedCommand
    origin: Origin
    services: Services
    # The request this run was approved or confirmed by, if any.
    approved_by: str | None = None

    @property
    def member(self) -> str:
        return self.origin.member


JobBody = Callable[["JobContext"], Awaitable[Message]]


@dataclass(frozen=True)
class LockKey:
    service: str
    env: str

    def __str__(self) -> str:
        return f"{self.service}/{self.env}"


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
    # The `RESUMERS` entry of a command module that can take the job over when its replica
    # stops; without one, the job is marked interrupted instead.
    kind: str = ""


Handler = Callable[[Context], Awaitable[Any]]  # returns Message, Plan or StartedJob
