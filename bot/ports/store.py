"""The store port. Every write that guards against a race is conditional, so that an adapter
for DynamoDB can implement it with conditional writes and expiry attributes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from bot.model import (
    ApprovalRequest,
    AuditRecord,
    DbSessionRecord,
    DeployRecord,
    JobRecord,
    LockRecord,
    RequestStatus,
)


class Store(Protocol):
    async def ping(self) -> None:
        """Raise when the store cannot be reached."""

    async def close(self) -> None: ...

    async def next_id(self, counter: str) -> int:
        """An atomic counter: 1, 2, 3... per counter name."""

    # audit
    async def add_audit(self, record: AuditRecord) -> None: ...
    async def list_audit(self, limit: int = 20) -> list[AuditRecord]: ...

    # jobs
    async def put_job(self, job: JobRecord) -> None: ...
    async def update_job(self, job: JobRecord) -> bool:
        """Write `job` only while the stored job is still run by `job.runner`; False when
        another replica has taken it over (or it is not stored), so that a runner that
        stalled past its lease cannot overwrite what the new runner wrote."""

    async def get_job(self, job_id: int) -> JobRecord | None: ...
    async def list_jobs(self, limit: int = 20, running_only: bool = False) -> list[JobRecord]: ...
    async def claim_job(
        self, job_id: int, runner: str, lease_expires: datetime, now: datetime
    ) -> bool:
        """Take over a running job whose lease has expired (or renew one's own lease)."""

    # locks
    async def acquire_lock(self, lock: LockRecord, now: datetime) -> LockRecord:
        """Store `lock` if its key is free or its holder's lease expired; return the holder."""

    async def release_lock(self, key: str, token: str) -> bool: ...
    async def relock(
        self, key: str, token: str, reason: str, expires_at: datetime, now: datetime
    ) -> LockRecord | None:
        """Give the lock held with `token` a new reason and lease end, in one conditional
        write (the lock is never free meanwhile); None when that lock is no longer held
        (released, expired or taken by someone else)."""

    async def renew_lock(self, key: str, token: str, expires_at: datetime) -> bool: ...
    async def get_lock(self, key: str) -> LockRecord | None: ...
    async def list_locks(self) -> list[LockRecord]: ...

    # approvals and confirmations
    async def put_request(self, request: ApprovalRequest) -> None: ...
    async def get_request(self, request_id: int) -> ApprovalRequest | None: ...
    async def list_pending_requests(self) -> list[ApprovalRequest]:
        """The requests still pending (newest first), expired or not: the caller compares
        `expires_at` with its clock."""

    async def decide_request(
        self, request_id: int, status: RequestStatus, by: str, at: datetime
    ) -> bool:
        """Move a pending request to `status`; False when it was no longer pending."""

    # deploy history
    async def put_deploy(self, record: DeployRecord) -> None: ...
    async def list_deploys(self, service: str, env: str, limit: int = 20) -> list[DeployRecord]: ...

    # deliveries seen (Slack retries, GitHub redeliveries)
    async def first_seen(self, key: str, expires_at: datetime) -> bool:
        """True the first time `key` is seen (until it expires), False afterwards."""

    # AWS events taken from a queue: a lease while one replica posts, then posted
    async def claim_event(
        self, event_id: str, token: str, lease_until: datetime, now: datetime
    ) -> EventClaim:
        """Claim the event for this replica (`token`) until `lease_until`. CLAIMED when it
        is new, or its earlier claim ran out (or was released) before `now` unposted;
        HELD while another claim runs; POSTED once it was posted (until remembered)."""

    async def event_posted(self, event_id: str, remember_until: datetime) -> None:
        """The event was posted: later copies until `remember_until` are duplicates."""

    async def release_event(self, event_id: str, token: str, now: datetime) -> None:
        """End this replica's claim at `now` (posting failed): the next copy may claim it.
        A claim another replica has taken over since is left alone."""

    # small values kept between runs (the quota watcher's last reported level per quota)
    async def get_value(self, key: str) -> str | None: ...
    async def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        """The values of those of `keys` that are set (one read for many)."""

    async def swap_value(self, key: str, expected: str | None, value: str) -> bool:
        """Set `key` to `value` if it still holds `expected` (None: absent); False if not."""

    # database sessions
    async def put_db_session(self, session: DbSessionRecord) -> None: ...
    async def list_db_sessions(self) -> list[DbSessionRecord]: ...
    async def delete_db_session(self, session_id: int) -> None: ...


class EventClaim(StrEnum):
    CLAIMED = "claimed"  # this replica's now: post it, then mark it posted
    HELD = "held"  # another replica's claim still runs: keep the message, it comes back
    POSTED = "posted"  # posted already: a duplicate
