"""Temporary read-only database users, and read-only queries, over aiomysql.

A temporary user's name says it is kajitori's and when it expires (`kj_s12_1767225600`:
session 12, expiring at that Unix time), so any leftover can be recognised and dropped later,
even without the record of who created it. MySQL allows 32 characters in a user name.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import secrets
import string
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomysql
import pymysql
from pymysql.constants import COMMAND

from adapters.aws.secrets import AdminCredentials
from adapters.tunnel.result_budget import ResultBudget
from bot.errors import OperationFailed
from bot.ports.database import QueryResult

USER_PREFIX = "kj_"
MAX_USER_NAME = 32
_USER_NAME = re.compile(r"kj_([a-z0-9]{1,16})_(\d{9,11})")
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_$-]{1,64}")
# Any host: the temporary user connects from wherever the bastion is.
USER_HOST = "%"

CONNECT_TIMEOUT = 10.0
ADMIN_STATEMENT_TIMEOUT = 15.0
# How long a query may go on after its statement timeout before the client gives up.
QUERY_GRACE = 5.0

# MySQL error numbers kajitori tells apart.
_UNKNOWN_THREAD = 1094
_NOT_THREAD_OWNER = 1095
_STATEMENT_TIMEOUTS = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
_PERMISSION_DENIED = {1044, 1045, 1142, 1143, 1227, 1370}
_CONNECTION_LOST = {2003, 2006, 2013, 2055}
_MULTI_STATEMENTS_OFF = 1
# sql_mode flags that change where strings, names and comments end: ANSI_QUOTES makes "…"
# a name, NO_BACKSLASH_ESCAPES ends a string at \', and the compound modes imply ANSI_QUOTES.
_LEXICAL_SQL_MODES = frozenset(
    {"ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "ANSI", "ORACLE", "MSSQL", "DB2", "POSTGRESQL", "MAXDB"}
)


@dataclass(frozen=True)
class TemporaryUser:
    name: str
    password: str = field(repr=False)
    expires_at: datetime

    @classmethod
    def new(cls, tag: str, expires_at: datetime) -> TemporaryUser:
        # Rounded up: a sweep must never find it expired before the session is.
        name = f"{USER_PREFIX}{tag}_{math.ceil(expires_at.timestamp())}"
        if not _USER_NAME.fullmatch(name) or len(name) > MAX_USER_NAME:
            raise ValueError(f"bad temporary user name {name!r}")
        return cls(name=name, password=new_password(), expires_at=expires_at)


def new_password(length: int = 24) -> str:
    # Letters and digits only: safe to paste into a shell and into any client's config.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def user_expiry(name: str) -> datetime | None:
    """The expiry written into a kajitori user's name; None for any other user."""
    match = _USER_NAME.fullmatch(name)
    if match is None:
        return None
    return datetime.fromtimestamp(int(match.group(2)), tz=UTC)


def database_error(error: BaseException, where: str) -> OperationFailed:
    """A database error as a message for the member: what happened, never a credential."""
    code, message = _error_parts(error)
    if isinstance(error, TimeoutError):
        return OperationFailed(f"the database {where} did not answer in time")
    if code in _STATEMENT_TIMEOUTS:
        return OperationFailed("the query ran past the statement timeout and was stopped")
    if code in _PERMISSION_DENIED:
        return OperationFailed(f"the database refused it: {message}")
    if code in _CONNECTION_LOST or isinstance(error, OSError):
        return OperationFailed(f"cannot reach the database {where} through the bastion")
    if code is None:
        return OperationFailed(f"database error at {where}: {message}")
    return OperationFailed(f"the database answered error {code}: {message}")


def _error_parts(error: BaseException) -> tuple[int | None, str]:
    if isinstance(error, pymysql.err.MySQLError) and len(error.args) >= 2:
        code, message = error.args[0], error.args[1]
        return (code if isinstance(code, int) else None), str(message)
    return None, str(error) or type(error).__name__


async def _connect(host: str, port: int, user: str, password: str, schema: str | None) -> Any:
    return await aiomysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        db=schema,
        connect_timeout=CONNECT_TIMEOUT,
        autocommit=True,
        charset="utf8mb4",
        program_name="kajitori",
    )


class MysqlAdmin:
    """The admin connection: creates and drops temporary users, nothing else."""

    def __init__(self, connection: Any, where: str) -> None:
        self._connection = connection
        self.where = where

    @property
    def thread_id(self) -> int:
        thread: int = self._connection.thread_id()
        return thread

    async def _execute(
        self, sql: str, args: tuple[Any, ...] | None = None
    ) -> list[tuple[Any, ...]]:
        async with asyncio.timeout(ADMIN_STATEMENT_TIMEOUT):
            async with self._connection.cursor() as cursor:
                await cursor.execute(sql, args)
                rows: list[tuple[Any, ...]] = list(await cursor.fetchall())
                return rows

    async def create_user(self, user: TemporaryUser, schema: str, max_connections: int) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise OperationFailed(f"bad database name {schema!r} in the config")
        await self._execute(
            "CREATE USER %s@%s IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS %s",
            (user.name, USER_HOST, user.password, max_connections),
        )
        await self._execute(f"GRANT SELECT ON `{schema}`.* TO %s@%s", (user.name, USER_HOST))

    async def drop_user(self, name: str) -> int:
        """Drop the user first (no new logins), then end its open connections."""
        if user_expiry(name) is None:
            raise ValueError(f"{name!r} is not a kajitori user")
        hosts = await self._execute("SELECT Host FROM mysql.user WHERE User = %s", (name,))
        for (host,) in hosts:
            await self._execute("DROP USER IF EXISTS %s@%s", (name, host))
        threads = await self._execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (name,)
        )
        for (thread_id,) in threads:
            await self.kill(int(thread_id))
        return len(threads)

    async def kill(self, thread_id: int) -> None:
        try:
            await self._execute("KILL CONNECTION %s", (thread_id,))
        except pymysql.err.MySQLError as error:
            code, _ = _error_parts(error)
            if code == _UNKNOWN_THREAD:
                return
            if code != _NOT_THREAD_OWNER:
                raise
            # RDS and Aurora give the admin no KILL on others' threads, but this procedure.
            await self._execute("CALL mysql.rds_kill(%s)", (thread_id,))

    async def kajitori_users(self) -> list[str]:
        rows = await self._execute(
            "SELECT DISTINCT User FROM mysql.user WHERE User LIKE %s", (USER_PREFIX + "%",)
        )
        return sorted(str(name) for (name,) in rows if user_expiry(str(name)) is not None)

    async def expired_users(self, now: datetime) -> list[str]:
        users = await self.kajitori_users()
        return [name for name in users if (user_expiry(name) or now) < now]


@contextlib.asynccontextmanager
async def admin_connection(
    host: str, port: int, credentials: AdminCredentials, where: str
) -> AsyncIterator[MysqlAdmin]:
    try:
        connection = await _connect(host, port, credentials.username, credentials.password, None)
    except (pymysql.err.MySQLError, OSError, TimeoutError) as error:
        raise database_error(error, where) from None
    admin = MysqlAdmin(connection, where)
    try:
        yield admin
    except (pymysql.err.MySQLError, TimeoutError) as error:
        connection.close()
        raise database_error(error, where) from None
    except BaseException:
        connection.close()
        raise
    else:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await connection.ensure_closed()
        except (pymysql.err.MySQLError, OSError, TimeoutError):
            connection.close()


async def run_read_query(
    host: str,
    port: int,
    user: TemporaryUser,
    schema: str,
    statement: str,
    *,
    timeout: timedelta,
    row_limit: int,
    max_result_bytes: int,
    max_cell_bytes: int,
    where: str,
) -> QueryResult:
    """One statement as `user`, in a READ ONLY transaction with a server-side time limit.

    Rows are streamed from an unbuffered cursor one at a time, and kept while they fit in
    `row_limit` rows and `max_result_bytes` bytes, each cell cut to `max_cell_bytes`. A bigger
    result is cut by closing the connection, which ends the query on the server, not by
    reading it to the end.
    """
    started = time.monotonic()
    try:
        connection = await _connect(host, port, user.name, user.password, schema)
    except (pymysql.err.MySQLError, OSError, TimeoutError) as error:
        raise database_error(error, where) from None
    budget = ResultBudget(row_limit, max_result_bytes, max_cell_bytes)
    finished = False
    try:
        async with asyncio.timeout(timeout.total_seconds() + QUERY_GRACE):
            await prepare_read_session(connection, timeout)
            cursor = await connection.cursor(aiomysql.SSCursor)
            await cursor.execute(statement)
            columns = [str(d[0]) for d in cursor.description or ()]
            while columns and (row := await cursor.fetchone()) is not None:
                if not budget.take(tuple(row)):
                    break
            if budget.cut is None:
                await cursor.close()
                finished = True
    except TimeoutError:
        raise OperationFailed("the query ran past the statement timeout and was stopped") from None
    except pymysql.err.MySQLError as error:
        raise database_error(error, where) from None
    finally:
        if finished:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await connection.ensure_closed()
            except (pymysql.err.MySQLError, OSError, TimeoutError):
                connection.close()
        else:
            # The rest of the result is still on its way: drop it with the connection.
            connection.close()
    return QueryResult(
        columns=columns,
        rows=budget.rows,
        elapsed=timedelta(seconds=time.monotonic() - started),
        cut=budget.cut,
        cut_cells=budget.cut_cells,
    )


async def prepare_read_session(connection: Any, timeout: timedelta) -> None:
    """Set up a `sql` connection before its statement runs.

    One statement per query, the statement timeout enforced by the server, the sql_mode the
    guard read the statement with, and READ ONLY transactions.
    """
    await _single_statements_only(connection)
    async with connection.cursor() as cursor:
        if "mariadb" in connection.get_server_info().lower():
            await cursor.execute("SET SESSION max_statement_time = %s", (timeout.total_seconds(),))
        else:
            await cursor.execute(
                "SET SESSION max_execution_time = %s", (int(timeout.total_seconds() * 1000),)
            )
        await _lexed_as_checked(cursor)
        await cursor.execute("SET SESSION TRANSACTION READ ONLY")


async def _lexed_as_checked(cursor: Any) -> None:
    """Have the server read the statement as the guard did, whatever its configured sql_mode.

    The guard reads `\\'` inside a string as an escaped quote and `"…"` as a string, not a name.
    """
    await cursor.execute("SELECT @@SESSION.sql_mode")
    row = await cursor.fetchone()
    modes = str(row[0] if row else "").split(",")
    kept = ",".join(m for m in modes if m and m.upper() not in _LEXICAL_SQL_MODES)
    await cursor.execute("SET SESSION sql_mode = %s", (kept,))


async def _single_statements_only(connection: Any) -> None:
    """Turn off multiple statements per query, which aiomysql always asks for at login.

    COM_SET_OPTION has no public call in aiomysql; without it a `;` inside one query could
    still reach the server as a second statement.
    """
    await connection._execute_command(
        COMMAND.COM_SET_OPTION, struct.pack("<H", _MULTI_STATEMENTS_OFF)
    )
    await connection._read_packet()
