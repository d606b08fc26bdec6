"""One lock per service and environment (`api/staging`), visible, with an owner and a lease.

A lock past its lease can be taken over. An operation takes the lock itself; a member who
locked a service by hand may still run operations on it (the operation runs under their lock).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.errors import Refused
from bot.grammar import format_duration
from bot.model import LockRecord
from bot.ports.store import Store


@dataclass(frozen=True)
class LockKey:
    service: str
    env: str

    def __str__(self) -> str:
        return f"{self.service}/{self.env}"


def describe_holder(lock: LockRecord, now: datetime) -> str:
    job = f" (job J{lock.job_id})" if lock.job_id is not None else ""
    reason = f": {lock.reason}" if lock.reason else ""
    if lock.job_id is not None:
        return f"{lock.owner}{job}{reason}"
    left = format_duration(max(lock.expires_at - now, timedelta(0)))
    return f"{lock.owner}{job}{reason}, until {lock.expires_at:%H:%M} UTC (in {left})"


def _hint(holder: LockRecord) -> str:
    if holder.job_id is not None:
        return (
            f"wait for job J{holder.job_id} to finish (`jobs` shows it), then try again; "
            f"{holder.owner} or an approver can stop it with `cancel J{holder.job_id}`"
        )
    return f"ask {holder.owner} to `unlock {holder.service} {holder.env}`, or wait for the lease to end"


class DeployLocks:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def acquire(
        self,
        key: LockKey,
        owner: str,
        *,
        reason: str,
        lease: timedelta,
        job_id: int | None = None,
    ) -> LockRecord | None:
        """Take the lock; None when the owner already holds it by hand. Refused when held."""
        now = self._clock.now()
        wanted = LockRecord(
            key=str(key),
            owner=owner,
            reason=reason,
            job_id=job_id,
            token=secrets.token_hex(8),
            acquired_at=now,
            expires_at=now + lease,
        )
        holder = await self._store.acquire_lock(wanted, now)
        if holder.token == wanted.token:
            return wanted
        if holder.owner == owner and holder.job_id is None and job_id is not None:
            return None
        raise Refused(f"{key} is locked by {describe_holder(holder, now)}", hint=_hint(holder))

    async def release(self, lock: LockRecord | None) -> None:
        if lock is not None:
            await self._store.release_lock(lock.key, lock.token)

    async def relock(self, lock: LockRecord, *, reason: str, lease: timedelta) -> LockRecord | None:
        """The held `lock` with a new reason and a fresh lease, in one conditional write;
        None when it is no longer held with its token."""
        now = self._clock.now()
        return await self._store.relock(lock.key, lock.token, reason, now + lease, now)

    async def renew(self, lock: LockRecord, lease: timedelta) -> bool:
        return await self._store.renew_lock(lock.key, lock.token, self._clock.now() + lease)

    async def holder(self, key: LockKey) -> LockRecord | None:
        lock = await self._store.get_lock(str(key))
        if lock is None or lock.expires_at <= self._clock.now():
            return None
        return lock

    async def check_free_for(self, key: LockKey, member: str) -> None:
        """The dry-run and pre-approval check: would `member` get the lock now?"""
        holder = await self.holder(key)
        if holder is not None and not (holder.owner == member and holder.job_id is None):
            now = self._clock.now()
            raise Refused(f"{key} is locked by {describe_holder(holder, now)}", hint=_hint(holder))
