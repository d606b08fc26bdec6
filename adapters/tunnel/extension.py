"""Wires database sessions and read-only queries into the bot (listed in bootstrap's EXTENSIONS).

Ports: `db_sessions` (DatabaseSessions) and `sql` (ReadQueries). At start, a background
sweep drops what an earlier run left behind; at shutdown every session closes and every
temporary user is dropped.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from adapters.cloud.secrets import AdminSecrets
from adapters.tunnel.access import DatabaseAccess
from adapters.tunnel.queries import TunnelReadQueries
from adapters.tunnel.sessions import DbSessionManager

if TYPE_CHECKING:
    from adapters.bootstrap import Bot

SESSIONS_PORT = "db_sessions"
QUERIES_PORT = "sql"


async def extend(bot: Bot) -> None:
    services = bot.services
    access = DatabaseAccess(AdminSecrets(bot.aws, services.redactor), services.clock)
    sessions = DbSessionManager(services, access, bot.runner)
    queries = TunnelReadQueries(services, access)
    services.extra[SESSIONS_PORT] = sessions
    services.extra[QUERIES_PORT] = queries
    bot.closers.append(queries.settled)
    # Appended last, so it runs first at close: sessions end while the chat can still say so.
    bot.closers.append(sessions.close_all)
    sweep = asyncio.create_task(sessions.sweep(), name="db-sessions-sweep")
    bot.background.add(sweep)
    sweep.add_done_callback(bot.background.discard)
    sessions.startup_sweep = sweep
