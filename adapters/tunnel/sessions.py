"""Read-only database sessions: a tunnel through the bastion and a temporary user, for a while.

A session is recorded in the store before its user is created, so that whatever happens to
this process, the next start finds it and drops the user. It ends at its expiry, on
`db close`, or at shutdown: the listener closes, the user is dropped and its connections are
killed, the SSH connection closes (and with it every forwarded connection), and the channel
where it was opened is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from adapters.tunnel.database_access import (
    Cleanups,
    DatabaseAccess,
    Progress,
    destination,
    error_text,
)
from adapters.tunnel.mysql import TemporaryUser
from adapters.tunnel.ssh import BastionConnection, Forward
from adapters.tunnel.targets import configured_targets, reachable
from bot.errors import OperationFailed, Refused
from bot.messages import Message, Tone
from bot.model import AuditRecord, DbSessionRecord, Origin
from bot.ports.database import DatabaseTarget, SessionGrant
from bot.services import Core

log = logging.getLogger(__name__)

SESSION_CONNECTIONS = 5
SETUP_TIMEOUT = 60.0
# DROP_PENDING: ended, but its user could not be dropped yet; the next sweep retries.
OPENING, OPEN, DROP_PENDING = "opening", "open", "drop pending"


@dataclass
class OpenSession:
    record: DbSessionRecord
    target: DatabaseTarget
    origin: Origin
    user: TemporaryUser
    bastion: BastionConnection
    forward: Forward
    expiry: asyncio.Task[None] | None = None
    closing: asyncio.Task[DbSessionRecord] | None = None


def display_host(bind: str) -> str:
    """The address to give the member: the bind address, unless it listens everywhere."""
    return socket.getfqdn() if bind in ("0.0.0.0", "::", "") else bind


def stopped_here(runner: str, host: str) -> bool:
    """Whether `runner` (`host:pid:token`) ran on this host and its process has ended.

    A runner elsewhere, or one whose process still lives (another replica on this host), is
    not ours to judge: its sessions are swept once they expire. A runner id without a pid
    is treated as ended when it is on this host, as before pids were recorded.
    """
    parts = runner.split(":")
    if parts[0] != host:
        return False
    if len(parts) < 2 or not parts[1].isdigit():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


class DbSessionManager:
    def __init__(self, services: Core, access: DatabaseAccess, runner: str) -> None:
        self._services = services
        self._access = access
        self._runner = runner
        self._sessions: dict[int, OpenSession] = {}
        self._opening: set[int] = set()
        self._cleanups = Cleanups()
        self._closed = False

    # -- the port ------------------------------------------------------------------------

    async def open(
        self, target: DatabaseTarget, *, member: str, origin: Origin, duration: timedelta
    ) -> SessionGrant:
        if self._closed:
            raise Refused("kajitori is shutting down; open the session again in a moment")
        services = self._services
        session_id = await services.store.next_id("db_session")
        now = services.clock.now()
        user = TemporaryUser.new(f"s{session_id}", now + duration)
        services.redactor.add(user.password)
        config = target.config
        record = DbSessionRecord(
            id=session_id,
            database=target.name,
            env=target.env,
            member=member,
            user=user.name,
            host=display_host(config.bind),
            port=0,
            opened_at=now,
            expires_at=user.expires_at,
            runner=self._runner,
            status=OPENING,
        )
        self._opening.add(session_id)
        progress = Progress()
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                # Recorded first: a crash from here on leaves a trace for the next start.
                await services.store.put_db_session(record)
                bastion = progress.bastion = await self._access.connect(target)
                async with self._access.admin(target, bastion) as admin:
                    progress.interrupted.append(admin.thread_id)
                    progress.user_sent = True
                    await admin.create_user(user, config.database, SESSION_CONNECTIONS)
                    progress.interrupted.clear()
                    await self._access.sweep_expired(admin)
                forward = await bastion.forward(config.bind, *destination(target))
                record = record.model_copy(update={"port": forward.port, "status": OPEN})
                await services.store.put_db_session(record)
        except BaseException as error:
            await self._cleanups.run(
                self._undo_open(target, record, user, progress),
                name=f"db-session-{session_id}-undo",
            )
            if isinstance(error, TimeoutError):
                raise OperationFailed(
                    f"setting up the session took longer than {SETUP_TIMEOUT:.0f}s; "
                    "nothing was left behind"
                ) from None
            raise
        finally:
            self._opening.discard(session_id)
        session = OpenSession(record, target, origin, user, bastion, forward)
        self._sessions[session_id] = session
        session.expiry = asyncio.create_task(
            self._expire(session), name=f"db-session-{session_id}-expiry"
        )
        if self._closed:
            # Shutdown began while this session was being set up.
            await self._close(session, "kajitori is shutting down", announce=False)
            raise Refused("kajitori is shutting down; open the session again in a moment")
        log.info(
            "database session %s (%s) opened by %s on %s:%s until %s",
            session_id,
            target,
            member,
            record.host,
            record.port,
            record.expires_at.isoformat(),
        )
        return SessionGrant(record=record, password=user.password, schema=config.database)

    async def close(self, session_id: int, *, reason: str, by: Origin) -> DbSessionRecord:
        session = self._sessions.get(session_id)
        if session is not None:
            # Whoever closes it gets the answer; the channel it was opened in is told as well.
            elsewhere = (by.channel, by.thread) != (session.origin.channel, session.origin.thread)
            return await self._close(session, reason, announce=elsewhere)
        record = next(
            (r for r in await self._services.store.list_db_sessions() if r.id == session_id),
            None,
        )
        if record is None or record.status == DROP_PENDING:
            raise Refused(f"there is no open database session {session_id}", hint="see `db list`")
        if session_id in self._opening:
            raise Refused(f"database session {session_id} is still opening; close it in a moment")
        # Held by another replica (or left by an earlier run): without its user, its tunnel
        # leads nowhere.
        target = self._target(record)
        if target is None:
            raise Refused(
                f"database {record.database} in {record.env} is no longer configured; "
                f"drop {record.user} by hand"
            )
        await self._cleanups.run(
            self._access.drop_user(target, None, record.user), name=f"db-session-{session_id}-drop"
        )
        await self._services.store.delete_db_session(session_id)
        return record

    async def list_open(self) -> list[DbSessionRecord]:
        records = await self._services.store.list_db_sessions()
        return [r for r in records if r.status in (OPEN, OPENING)]

    # -- lifecycle -----------------------------------------------------------------------

    async def close_all(self) -> None:
        """At shutdown: every session closes, and every clean-up finishes."""
        self._closed = True
        sessions = list(self._sessions.values())
        await asyncio.gather(
            *(self._close(s, "kajitori is shutting down", announce=True) for s in sessions),
            return_exceptions=True,
        )
        await self._cleanups.wait()

    async def settled(self) -> None:
        """Wait until no clean-up is running (closing sessions, undoing failed opens)."""
        await self._cleanups.wait()

    @property
    def open_ids(self) -> list[int]:
        return sorted(self._sessions)

    async def sweep(self) -> None:
        """After a start: drop what an earlier run left behind.

        That is every session recorded by a process of this host that has ended (this process
        has none yet; another replica on the same host keeps its own), every recorded session
        past its expiry, and every kajitori user whose expiry is past, on every configured
        database this host can reach.
        """
        services = self._services
        now = services.clock.now()
        here = self._runner.split(":", 1)[0]
        leftovers = [
            r
            for r in await services.store.list_db_sessions()
            if r.id not in self._sessions
            and r.id not in self._opening
            and (r.expires_at <= now or r.status == DROP_PENDING or stopped_here(r.runner, here))
        ]
        for target in configured_targets(services.config):
            mine = [r for r in leftovers if (r.database, r.env) == (target.name, target.env)]
            if not reachable(target):
                if mine:
                    log.warning(
                        "cannot sweep %s: the bastion key or known_hosts is missing", target
                    )
                continue
            try:
                await self._cleanups.run(self._sweep_target(target, mine), name=f"sweep-{target}")
            except Exception as error:
                log.warning(
                    "sweeping leftover database users of %s failed: %s", target, error_text(error)
                )

    async def _sweep_target(self, target: DatabaseTarget, records: list[DbSessionRecord]) -> None:
        services = self._services
        bastion = await self._access.connect(target)
        try:
            async with self._access.admin(target, bastion) as admin:
                for record in records:
                    await admin.drop_user(record.user)
                dropped = await self._access.drop_expired(admin)
        finally:
            await bastion.close()
        for record in records:
            await services.store.delete_db_session(record.id)
        if records or dropped:
            users = sorted({r.user for r in records} | set(dropped))
            log.info("swept %s: dropped %s", target, ", ".join(users))
            await self._audit(
                member="kajitori",
                channel="-",
                text=f"db sweep {target}",
                outcome="swept",
                detail="dropped leftover users " + ", ".join(users),
            )

    async def _expire(self, session: OpenSession) -> None:
        delay = (session.record.expires_at - self._services.clock.now()).total_seconds()
        await asyncio.sleep(max(delay, 0.0))
        await self._close(session, "expired", announce=True)

    async def _close(self, session: OpenSession, reason: str, *, announce: bool) -> DbSessionRecord:
        if session.closing is None:
            session.closing = self._cleanups.start(
                self._teardown(session, reason, announce),
                name=f"db-session-{session.record.id}-close",
            )
        record: DbSessionRecord = await asyncio.shield(session.closing)
        return record

    async def _teardown(self, session: OpenSession, reason: str, announce: bool) -> DbSessionRecord:
        services = self._services
        record = session.record
        expiry = session.expiry
        if expiry is not None and expiry is not asyncio.current_task() and not expiry.done():
            expiry.cancel()
        await session.forward.close()
        dropped = True
        try:
            await self._access.drop_user(session.target, session.bastion, record.user)
        except Exception as error:
            dropped = False
            log.warning(
                "dropping %s of database session %s failed: %s",
                record.user,
                record.id,
                error_text(error),
            )
        await session.bastion.close()
        try:
            if dropped:
                await services.store.delete_db_session(record.id)
            else:
                await services.store.put_db_session(
                    record.model_copy(update={"status": DROP_PENDING})
                )
        except Exception:
            log.exception("recording the end of database session %s failed", record.id)
        self._sessions.pop(record.id, None)
        services.redactor.discard(session.user.password)
        log.info("database session %s (%s) closed: %s", record.id, session.target, reason)
        if announce:
            text = (
                f"🔒 database session {record.id} ({session.target}, opened by {record.member}) "
                f"closed: {reason}"
            )
            if not dropped:
                text += (
                    f"; dropping {record.user} failed: it is dropped after its expiry by the "
                    "next session or query on this database, or at the next start"
                )
            await services.chat.reply(
                session.origin,
                Message(text=text, tone=Tone.INFO if dropped else Tone.WARNING),
            )
            await self._audit(
                member=record.member,
                channel=session.origin.channel,
                text=f"db session {record.id} {session.target}",
                outcome="closed",
                detail=reason,
            )
        return record

    async def _undo_open(
        self,
        target: DatabaseTarget,
        record: DbSessionRecord,
        user: TemporaryUser,
        progress: Progress,
    ) -> None:
        services = self._services
        keep_record = False
        bastion = progress.bastion
        if progress.user_sent:
            try:
                await self._access.drop_user(
                    target, bastion, user.name, interrupted=progress.interrupted
                )
            except Exception as error:
                keep_record = True
                log.warning(
                    "dropping %s after a failed open failed: %s", user.name, error_text(error)
                )
        if bastion is not None:
            await bastion.close()
        try:
            if keep_record:
                await services.store.put_db_session(
                    record.model_copy(update={"status": DROP_PENDING})
                )
            else:
                await services.store.delete_db_session(record.id)
        except Exception:
            log.exception("recording the failed open of database session %s failed", record.id)
        services.redactor.discard(user.password)

    # -- helpers -------------------------------------------------------------------------

    def _target(self, record: DbSessionRecord) -> DatabaseTarget | None:
        return next(
            (
                t
                for t in configured_targets(self._services.config)
                if (t.name, t.env) == (record.database, record.env)
            ),
            None,
        )

    async def _audit(
        self, *, member: str, channel: str, text: str, outcome: str, detail: str
    ) -> None:
        services = self._services
        with contextlib.suppress(Exception):
            await services.store.add_audit(
                AuditRecord(
                    at=services.clock.now(),
                    member=member,
                    channel=channel,
                    text=text,
                    outcome=outcome,
                    detail=services.redactor.text(detail)[:300],
                )
            )
