"""The store on SQLite (aiosqlite): one file, one replica. Records are JSON documents keyed
like DynamoDB items, and every guarded write is a single conditional statement."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from pydantic import BaseModel, TypeAdapter

from bot.model import (
    ApprovalRequest,
    AuditRecord,
    DbSessionRecord,
    DeployRecord,
    JobRecord,
    LockRecord,
    RequestStatus,
)
from bot.ports.store import EventClaim

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

# How long `close` waits for the operations under way.
CLOSE_GRACE = 10.0
# Keys read at once by `get_values` (SQLite allows 32,766 parameters a statement).
VALUES_PER_READ = 500


class StoreClosed(RuntimeError):
    """An operation asked of the store after it began to close."""


def _gated(cls: type[SqliteStore]) -> type[SqliteStore]:
    """Every public operation counts itself in and out of the store's gate: `close` lets the
    ones under way finish, and refuses later ones with `StoreClosed`. aiosqlite would run an
    operation queued while it closes on the closed database ("Cannot operate on a closed
    database"), in whatever task asked, possibly one nobody awaits any more."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or name == "close" or not inspect.iscoroutinefunction(method):
            continue
        setattr(cls, name, _through_gate(method))
    return cls


def _through_gate(
    method: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    @functools.wraps(method)
    async def gated(self: SqliteStore, *args: Any, **kwargs: Any) -> R:
        async with self._gate():
            return await method(self, *args, **kwargs)

    return gated


# A datetime as pydantic writes it into a JSON document.
_JSON_DATETIME = TypeAdapter(datetime)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, status TEXT NOT NULL,
    runner TEXT NOT NULL DEFAULT '', lease_expires TEXT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, token TEXT NOT NULL,
    expires_at TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deploys (id INTEGER PRIMARY KEY, service TEXT NOT NULL,
    env TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deploys_by_service ON deploys (service, env, id);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS db_sessions (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS event_claims (event_id TEXT PRIMARY KEY, state TEXT NOT NULL,
    token TEXT NOT NULL, until TEXT NOT NULL);
"""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(value: datetime) -> str:
    # ISO 8601 in UTC sorts as text.
    return value.isoformat()


def _load(model: type[M], doc: str) -> M:
    return model.model_validate_json(doc)


@_gated
class SqliteStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._under_way = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @contextlib.asynccontextmanager
    async def _gate(self) -> AsyncIterator[None]:
        if self._closing:
            raise StoreClosed("the store is closed: kajitori is shutting down")
        self._under_way += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._under_way -= 1
            if self._under_way == 0:
                self._idle.set()

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        if path not in (":memory:", ""):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path or ":memory:", isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.executescript(_SCHEMA)
        return cls(db)

    async def ping(self) -> None:
        await self._db.execute("SELECT 1")

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE):
                await self._idle.wait()
        await self._db.close()

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        async with self._db.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def next_id(self, counter: str) -> int:
        row = await self._one(
            "INSERT INTO counters (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
            (counter,),
        )
        return int(row[0])

    # audit
    async def add_audit(self, record: AuditRecord) -> None:
        await self._db.execute("INSERT INTO audit (doc) VALUES (?)", (record.model_dump_json(),))

    async def list_audit(self, limit: int = 20) -> list[AuditRecord]:
        rows = await self._all("SELECT doc FROM audit ORDER BY seq DESC LIMIT ?", (limit,))
        return [_load(AuditRecord, r[0]) for r in rows]

    # jobs
    async def put_job(self, job: JobRecord) -> None:
        await self._db.execute(
            "INSERT INTO jobs (id, status, runner, lease_expires, doc) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET status = excluded.status, runner = excluded.runner, "
            "lease_expires = excluded.lease_expires, doc = excluded.doc",
            (
                job.id,
                job.status.value,
                job.runner,
                _ts(job.lease_expires) if job.lease_expires else None,
                job.model_dump_json(),
            ),
        )

    async def update_job(self, job: JobRecord) -> bool:
        cursor = await self._db.execute(
            "UPDATE jobs SET status = ?, lease_expires = ?, doc = ? WHERE id = ? AND runner = ?",
            (
                job.status.value,
                _ts(job.lease_expires) if job.lease_expires else None,
                job.model_dump_json(),
                job.id,
                job.runner,
            ),
        )
        return cursor.rowcount == 1

    async def get_job(self, job_id: int) -> JobRecord | None:
        row = await self._one("SELECT doc FROM jobs WHERE id = ?", (job_id,))
        return _load(JobRecord, row[0]) if row else None

    async def list_jobs(self, limit: int = 20, running_only: bool = False) -> list[JobRecord]:
        where = "WHERE status = 'running'" if running_only else ""
        rows = await self._all(f"SELECT doc FROM jobs {where} ORDER BY id DESC LIMIT ?", (limit,))
        return [_load(JobRecord, r[0]) for r in rows]

    async def claim_job(
        self, job_id: int, runner: str, lease_expires: datetime, now: datetime
    ) -> bool:
        # One statement that edits the document in place: a read-modify-write would lose a
        # step the runner records while its lease is renewed.
        cursor = await self._db.execute(
            "UPDATE jobs SET runner = ?, lease_expires = ?, "
            "doc = json_set(doc, '$.runner', ?, '$.lease_expires', ?) WHERE id = ? "
            "AND status = 'running' AND (runner = ? OR lease_expires IS NULL OR lease_expires <= ?)",
            (
                runner,
                _ts(lease_expires),
                runner,
                _JSON_DATETIME.dump_python(lease_expires, mode="json"),
                job_id,
                runner,
                _ts(now),
            ),
        )
        return cursor.rowcount == 1

    # locks
    async def acquire_lock(self, lock: LockRecord, now: datetime) -> LockRecord:
        await self._db.execute(
            "INSERT INTO locks (key, token, expires_at, doc) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET token = excluded.token, "
            "expires_at = excluded.expires_at, doc = excluded.doc WHERE locks.expires_at <= ?",
            (lock.key, lock.token, _ts(lock.expires_at), lock.model_dump_json(), _ts(now)),
        )
        holder = await self.get_lock(lock.key)
        assert holder is not None
        return holder

    async def release_lock(self, key: str, token: str) -> bool:
        cursor = await self._db.execute(
            "DELETE FROM locks WHERE key = ? AND token = ?", (key, token)
        )
        return cursor.rowcount == 1

    async def relock(
        self, key: str, token: str, reason: str, expires_at: datetime, now: datetime
    ) -> LockRecord | None:
        row = await self._one(
            "UPDATE locks SET expires_at = ?, "
            "doc = json_set(doc, '$.reason', ?, '$.expires_at', ?) "
            "WHERE key = ? AND token = ? AND expires_at > ? RETURNING doc",
            (
                _ts(expires_at),
                reason,
                _JSON_DATETIME.dump_python(expires_at, mode="json"),
                key,
                token,
                _ts(now),
            ),
        )
        return _load(LockRecord, row[0]) if row else None

    async def renew_lock(self, key: str, token: str, expires_at: datetime) -> bool:
        lock = await self.get_lock(key)
        if lock is None or lock.token != token:
            return False
        lock.expires_at = expires_at
        cursor = await self._db.execute(
            "UPDATE locks SET expires_at = ?, doc = ? WHERE key = ? AND token = ?",
            (_ts(expires_at), lock.model_dump_json(), key, token),
        )
        return cursor.rowcount == 1

    async def get_lock(self, key: str) -> LockRecord | None:
        row = await self._one("SELECT doc FROM locks WHERE key = ?", (key,))
        return _load(LockRecord, row[0]) if row else None

    async def list_locks(self) -> list[LockRecord]:
        return [
            _load(LockRecord, r[0]) for r in await self._all("SELECT doc FROM locks ORDER BY key")
        ]

    # approvals
    async def put_request(self, request: ApprovalRequest) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO requests (id, status, doc) VALUES (?, ?, ?)",
            (request.id, request.status.value, request.model_dump_json()),
        )

    async def get_request(self, request_id: int) -> ApprovalRequest | None:
        row = await self._one("SELECT doc FROM requests WHERE id = ?", (request_id,))
        return _load(ApprovalRequest, row[0]) if row else None

    async def list_pending_requests(self) -> list[ApprovalRequest]:
        rows = await self._all("SELECT doc FROM requests WHERE status = 'pending' ORDER BY id DESC")
        return [_load(ApprovalRequest, r[0]) for r in rows]

    async def decide_request(
        self, request_id: int, status: RequestStatus, by: str, at: datetime
    ) -> bool:
        request = await self.get_request(request_id)
        if request is None:
            return False
        decided = request.model_copy(update={"status": status, "decided_by": by, "decided_at": at})
        cursor = await self._db.execute(
            "UPDATE requests SET status = ?, doc = ? WHERE id = ? AND status = 'pending'",
            (status.value, decided.model_dump_json(), request_id),
        )
        return cursor.rowcount == 1

    # deploy history
    async def put_deploy(self, record: DeployRecord) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO deploys (id, service, env, doc) VALUES (?, ?, ?, ?)",
            (record.id, record.service, record.env, record.model_dump_json()),
        )

    async def list_deploys(self, service: str, env: str, limit: int = 20) -> list[DeployRecord]:
        rows = await self._all(
            "SELECT doc FROM deploys WHERE service = ? AND env = ? ORDER BY id DESC LIMIT ?",
            (service, env, limit),
        )
        return [_load(DeployRecord, r[0]) for r in rows]

    # deliveries
    async def first_seen(self, key: str, expires_at: datetime) -> bool:
        now = _ts(datetime.now(expires_at.tzinfo))
        cursor = await self._db.execute(
            "INSERT INTO seen (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET expires_at = excluded.expires_at WHERE seen.expires_at <= ?",
            (key, _ts(expires_at), now),
        )
        return cursor.rowcount == 1

    # AWS events: claim (a lease), then posted
    async def claim_event(
        self, event_id: str, token: str, lease_until: datetime, now: datetime
    ) -> EventClaim:
        cursor = await self._db.execute(
            "INSERT INTO event_claims (event_id, state, token, until) VALUES (?, 'claimed', ?, ?) "
            "ON CONFLICT (event_id) DO UPDATE SET state = 'claimed', token = excluded.token, "
            "until = excluded.until WHERE event_claims.until <= ?",
            (event_id, token, _ts(_utc(lease_until)), _ts(_utc(now))),
        )
        if cursor.rowcount == 1:
            return EventClaim.CLAIMED
        row = await self._one("SELECT state FROM event_claims WHERE event_id = ?", (event_id,))
        return EventClaim.POSTED if row and row[0] == "posted" else EventClaim.HELD

    async def event_posted(self, event_id: str, remember_until: datetime) -> None:
        await self._db.execute(
            "INSERT INTO event_claims (event_id, state, token, until) VALUES (?, 'posted', '', ?) "
            "ON CONFLICT (event_id) DO UPDATE SET state = 'posted', until = excluded.until",
            (event_id, _ts(_utc(remember_until))),
        )

    async def release_event(self, event_id: str, token: str, now: datetime) -> None:
        await self._db.execute(
            "UPDATE event_claims SET until = ? "
            "WHERE event_id = ? AND token = ? AND state = 'claimed'",
            (_ts(_utc(now)), event_id, token),
        )

    # small values
    async def get_value(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM kv WHERE key = ?", (key,))
        return str(row[0]) if row else None

    async def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(keys), VALUES_PER_READ):
            chunk = list(keys[start : start + VALUES_PER_READ])
            marks = ", ".join("?" * len(chunk))
            async with self._db.execute(
                f"SELECT key, value FROM kv WHERE key IN ({marks})", chunk
            ) as cursor:
                found.update({str(k): str(v) async for k, v in cursor})
        return found

    async def swap_value(self, key: str, expected: str | None, value: str) -> bool:
        if expected is None:
            cursor = await self._db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, value),
            )
        else:
            cursor = await self._db.execute(
                "UPDATE kv SET value = ? WHERE key = ? AND value = ?", (value, key, expected)
            )
        return cursor.rowcount == 1

    # database sessions
    async def put_db_session(self, session: DbSessionRecord) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO db_sessions (id, doc) VALUES (?, ?)",
            (session.id, session.model_dump_json()),
        )

    async def list_db_sessions(self) -> list[DbSessionRecord]:
        rows = await self._all("SELECT doc FROM db_sessions ORDER BY id")
        return [_load(DbSessionRecord, r[0]) for r in rows]

    async def delete_db_session(self, session_id: int) -> None:
        await self._db.execute("DELETE FROM db_sessions WHERE id = ?", (session_id,))
