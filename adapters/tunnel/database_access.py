"""Reaching one configured database: the bastion, the admin secret, and clean-ups that finish.

Sessions and one-off queries both create a temporary user through the bastion as the admin,
and both must drop it whatever happens to the task that created it: `Cleanups` runs that
work in its own task, so a cancellation of the caller cannot cut it short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.aws.secrets import AdminSecrets
from adapters.tunnel.mysql import MysqlAdmin, admin_connection
from adapters.tunnel.ssh import BastionConnection, connect_bastion
from bot.clock import Clock
from bot.ports.database import DatabaseTarget

log = logging.getLogger(__name__)

# The admin reaches the database through its own listener, on loopback only.
ADMIN_BIND = "127.0.0.1"


class Cleanups:
    """Clean-up work that runs to its end even if whoever awaits it is cancelled."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, work: Coroutine[Any, Any, Any], name: str) -> Any:
        return await asyncio.shield(self.start(work, name))

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def error_text(error: BaseException) -> str:
    """An error for a log line: its message, or at least its kind."""
    return str(error) or type(error).__name__


@dataclass
class Progress:
    """How far setting up access got, so that undoing it does exactly what is needed."""

    bastion: BastionConnection | None = None
    # CREATE USER was sent: the user may exist, even if no answer came back.
    user_sent: bool = False
    # Admin connections cut off mid-statement (see `DatabaseAccess.drop_user`).
    interrupted: list[int] = field(default_factory=list)


def destination(target: DatabaseTarget) -> tuple[str, int]:
    """Where the bastion sends forwarded connections: the reader, or `connect_host`."""
    config = target.config
    return (config.connect_host or config.reader), config.port


class DatabaseAccess:
    def __init__(self, secrets: AdminSecrets, clock: Clock) -> None:
        self._secrets = secrets
        self._clock = clock

    async def connect(self, target: DatabaseTarget) -> BastionConnection:
        return await connect_bastion(target.config.bastion)

    @contextlib.asynccontextmanager
    async def admin(
        self, target: DatabaseTarget, bastion: BastionConnection
    ) -> AsyncIterator[MysqlAdmin]:
        credentials = await self._secrets.admin(target.config.admin_secret, target.scope)
        host, port = destination(target)
        forward = await bastion.forward(ADMIN_BIND, host, port)
        try:
            async with admin_connection(
                ADMIN_BIND, forward.port, credentials, f"{host}:{port}"
            ) as admin:
                yield admin
        finally:
            await forward.close()

    async def drop_user(
        self,
        target: DatabaseTarget,
        bastion: BastionConnection | None,
        name: str,
        *,
        interrupted: Sequence[int] = (),
    ) -> None:
        """Drop `name` and any other expired kajitori user, through `bastion` while it is up.

        `interrupted` are admin connections cut off mid-statement: the server may still be
        running what they sent (a CREATE USER waiting for a lock), so they are killed first.
        """
        fresh: BastionConnection | None = None
        if bastion is None or not bastion.alive:
            bastion = fresh = await self.connect(target)
        try:
            async with self.admin(target, bastion) as admin:
                for thread_id in interrupted:
                    await admin.kill(thread_id)
                    log.info(
                        "ended admin connection %s, cut off while creating %s", thread_id, name
                    )
                await admin.drop_user(name)
                await self.sweep_expired(admin)
        finally:
            if fresh is not None:
                await fresh.close()

    async def sweep_expired(self, admin: MysqlAdmin) -> None:
        """Drop expired kajitori users while connected anyway; a failure here is only logged."""
        try:
            await self.drop_expired(admin)
        except Exception as error:
            log.warning(
                "dropping expired temporary users at %s failed: %s", admin.where, error_text(error)
            )

    async def drop_expired(self, admin: MysqlAdmin) -> list[str]:
        dropped = []
        for name in await admin.expired_users(self._clock.now()):
            await admin.drop_user(name)
            dropped.append(name)
        if dropped:
            log.info("dropped expired temporary users at %s: %s", admin.where, ", ".join(dropped))
        return dropped
