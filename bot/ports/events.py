"""The ports of AWS events: the SQS queues an EventBridge rule feeds, and what AWS says is
coming (EC2 scheduled events, RDS pending maintenance, open AWS Health events)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from bot.config import AwsScope


class QueuedMessage(BaseModel, defer_build=True):
    queue: str  # the queue URL
    message_id: str
    receipt: str
    body: str
    receive_count: int = 1


class EventQueue(Protocol):
    async def receive(
        self, queue: str, *, max_messages: int, wait_seconds: int, visibility_seconds: int
    ) -> list[QueuedMessage]:
        """Long-poll `queue` for up to `max_messages` (at most 10)."""

    async def delete(self, queue: str, receipts: list[str]) -> None:
        """Delete handled messages (by receipt handle)."""


class Upcoming(BaseModel, defer_build=True):
    """Something AWS will do to a resource: a maintenance, a retirement, a change."""

    source: str  # "EC2", "RDS", "Health"
    # EC2: the instance id; RDS: the DB instance or cluster id; Health: the AWS service.
    resource: str
    what: str
    starts: datetime | None = None
    ends: datetime | None = None
    status: str = ""
    # Health: the affected entities (instance ids, DB ids, ARNs, or the account id for an
    # event that concerns the whole account); empty for a public event.
    entities: list[str] = Field(default_factory=list)


class UpcomingPort(Protocol):
    """What AWS has scheduled in one account and region: `scope` is an environment's (its
    role gives the account). Each method reads everything of the account and region; which
    environment an item concerns is decided by its resources."""

    async def ec2_scheduled_events(self, scope: AwsScope) -> list[Upcoming]:
        """Scheduled events of the instances (reboot, retirement, maintenance)."""

    async def rds_pending_maintenance(self, scope: AwsScope) -> list[Upcoming]: ...

    async def health_events(self, scope: AwsScope) -> list[Upcoming]:
        """Open and upcoming AWS Health events of the account in the scope's region, each
        with its affected entities."""


class EventSink(Protocol):
    """Where the driving adapters (the queue poller, the SNS endpoint) hand each message."""

    async def take(self, body: str, *, receive_count: int = 1) -> bool:
        """Handle one message; True when it is done with (may be deleted), False when it
        must come back (posting failed)."""

    async def flush(self) -> None:
        """Post what is due after a batch (digest lines of rate-limited channels)."""
