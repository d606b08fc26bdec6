"""One read-only query: a tunnel and a temporary user just for it, both gone when it ends."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta

from adapters.tunnel.database_access import (
    ADMIN_BIND,
    Cleanups,
    DatabaseAccess,
    Progress,
    destination,
    error_text,
)
from adapters.tunnel.mysql import QUERY_GRACE, TemporaryUser, run_read_query
from bot.errors import OperationFailed
from bot.ports.database import DatabaseTarget, QueryResult
from bot.services import Core

log = logging.getLogger(__name__)

SETUP_TIMEOUT = 60.0


class TunnelReadQueries:
    def __init__(self, services: Core, access: DatabaseAccess) -> None:
        self._services = services
        self._access = access
        self._cleanups = Cleanups()

    async def run(self, target: DatabaseTarget, statement: str, *, member: str) -> QueryResult:
        services = self._services
        config = target.config
        timeout = config.statement_timeout
        # Its name outlives any run of the query, so a sweep never drops it while in use.
        lifetime = timeout + timedelta(seconds=QUERY_GRACE + SETUP_TIMEOUT)
        user = TemporaryUser.new(f"q{secrets.token_hex(4)}", services.clock.now() + lifetime)
        services.redactor.add(user.password)
        progress = Progress()
        host, port = destination(target)
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                bastion = progress.bastion = await self._access.connect(target)
                async with self._access.admin(target, bastion) as admin:
                    progress.interrupted.append(admin.thread_id)
                    progress.user_sent = True
                    await admin.create_user(user, config.database, max_connections=1)
                    progress.interrupted.clear()
                forward = await bastion.forward(ADMIN_BIND, host, port)
            log.info("query by %s on %s as %s", member, target, user.name)
            return await run_read_query(
                ADMIN_BIND,
                forward.port,
                user,
                config.database,
                statement,
                timeout=timeout,
                row_limit=config.row_limit,
                max_result_bytes=config.max_result_bytes,
                max_cell_bytes=config.max_cell_bytes,
                where=f"{host}:{port}",
            )
        except TimeoutError:
            raise OperationFailed(
                f"reaching {target} took longer than {SETUP_TIMEOUT:.0f}s; nothing was left behind"
            ) from None
        finally:
            await self._cleanups.run(
                self._clean_up(target, user, progress),
                name=f"query-{user.name}-cleanup",
            )

    async def settled(self) -> None:
        await self._cleanups.wait()

    async def _clean_up(
        self,
        target: DatabaseTarget,
        user: TemporaryUser,
        progress: Progress,
    ) -> None:
        bastion = progress.bastion
        try:
            if progress.user_sent:
                await self._access.drop_user(
                    target, bastion, user.name, interrupted=progress.interrupted
                )
        except Exception as error:
            # Its name carries its expiry: the next sweep drops it.
            log.warning("dropping %s after a query failed: %s", user.name, error_text(error))
        finally:
            if bastion is not None:
                await bastion.close()
            self._services.redactor.discard(user.password)
