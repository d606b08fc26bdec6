"""The `sql` guard against a corpus of statements (tests/db/sql_corpus.py), and MariaDB against
whatever the guard lets through.

Every read the guard accepts is run on the real MariaDB as a temporary user made by the same
code as `sql`'s (SELECT on the schema only), on a connection set up by the same code, and must
leave nothing behind: no row or table lock that blocks a writer, no named lock, no change to any
table, sequence, user or file. Every refused statement is then run on MariaDB too, to show what
the database's own permissions stop (writes, files, sequences) and what they do not (named locks,
SLEEP, locking reads), which the guard alone keeps out.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomysql
import pymysql
import pytest

from adapters.aws.secrets import AdminCredentials
from adapters.tunnel.mysql import (
    TemporaryUser,
    admin_connection,
    prepare_read_session,
)
from bot.errors import Refused
from commands.database.sql_guard import check_read_only, normalize_chat_sql
from tests.db.conftest import PRODUCTION_ADMIN
from tests.db.servers import MariaDbServer
from tests.db.sql_corpus import HIDING_PLACES, PAYLOADS, READS, REFUSED

STATEMENT_TIMEOUT = timedelta(seconds=2)
FILES_WRITTEN = "kajitori-corpus*"
# Tables with rows: a locking read on them holds record locks that a writer would wait for.
LOCKABLE_TABLES = ("app.orders", "app.events")
_LOCK_WAIT = 1205


def refused_statements() -> list[tuple[str, str]]:
    statements = list(REFUSED)
    for place, says in HIDING_PLACES:
        for payload, payload_says in PAYLOADS:
            statements.append((place.format(payload=payload), says or payload_says))
    return statements


ALL_REFUSED = refused_statements()


def verdict(statement: str) -> str | None:
    """None if the guard lets it through, else its reason; as `sql` calls it."""
    try:
        check_read_only(normalize_chat_sql(statement))
    except Refused as refused:
        return str(refused)
    return None


def test_the_corpus_is_a_few_hundred_distinct_statements() -> None:
    statements = READS + [s for s, _ in ALL_REFUSED]
    assert len(statements) >= 500
    assert len(set(statements)) == len(statements)


def test_the_guard_lets_every_read_through() -> None:
    refused = {s: reason for s in READS if (reason := verdict(s)) is not None}
    assert refused == {}


def test_the_guard_refuses_every_other_statement_with_its_reason() -> None:
    wrong = {}
    for statement, says in ALL_REFUSED:
        reason = verdict(statement)
        if reason is None or says not in reason:
            wrong[statement] = f"expected {says!r}, got {reason!r}"
    assert wrong == {}


@pytest.fixture
def sequence(mariadb: MariaDbServer) -> Iterator[None]:
    mariadb.query("CREATE SEQUENCE IF NOT EXISTS app.corpus_seq")
    try:
        yield
    finally:
        mariadb.query("DROP SEQUENCE IF EXISTS app.corpus_seq")


@contextlib.asynccontextmanager
async def temporary_user(mariadb: MariaDbServer) -> AsyncIterator[TemporaryUser]:
    """A user as `sql` makes one, by the same code, straight to 127.0.0.1 (no bastion)."""
    credentials = AdminCredentials(PRODUCTION_ADMIN["username"], PRODUCTION_ADMIN["password"])
    user = TemporaryUser.new(f"c{secrets.token_hex(3)}", datetime.now(UTC) + timedelta(minutes=10))
    async with admin_connection("127.0.0.1", mariadb.port, credentials, "corpus") as admin:
        # More than `sql`'s one: the server may still count a closed connection for a moment
        # when the next one logs in.
        await admin.create_user(user, "app", max_connections=10)
    try:
        yield user
    finally:
        async with admin_connection("127.0.0.1", mariadb.port, credentials, "corpus") as admin:
            await admin.drop_user(user.name)


@contextlib.asynccontextmanager
async def read_session(mariadb: MariaDbServer, user: TemporaryUser) -> AsyncIterator[Any]:
    connection = await aiomysql.connect(
        host="127.0.0.1",
        port=mariadb.port,
        user=user.name,
        password=user.password,
        db="app",
        autocommit=True,
        charset="utf8mb4",
    )
    try:
        await prepare_read_session(connection, STATEMENT_TIMEOUT)
        yield connection
    finally:
        try:
            await connection.ensure_closed()
        except (pymysql.err.MySQLError, OSError):
            connection.close()


async def run(connection: Any, statement: str) -> None:
    async with connection.cursor() as cursor:
        await cursor.execute(statement)
        await cursor.fetchall()


async def named_locks_released(connection: Any) -> int:
    async with connection.cursor() as cursor:
        await cursor.execute("SELECT RELEASE_ALL_LOCKS()")
        (count,) = await cursor.fetchone()
        return int(count)


def blocked_writers(root: Any) -> list[str]:
    """The tables whose rows a writer could not lock right now (NOWAIT: it does not wait)."""
    blocked = []
    with root.cursor() as cursor:
        cursor.execute("START TRANSACTION")
        try:
            for table in LOCKABLE_TABLES:
                try:
                    cursor.execute(f"SELECT COUNT(*) FROM {table} FOR UPDATE NOWAIT")
                except pymysql.err.MySQLError as error:
                    if error.args[0] != _LOCK_WAIT:
                        raise
                    blocked.append(table)
        finally:
            cursor.execute("ROLLBACK")
    return blocked


def snapshot(root: Any) -> dict[str, Any]:
    """Everything a statement let through could have changed, as root sees it."""
    with root.cursor() as cursor:
        cursor.execute("CHECKSUM TABLE app.orders, app.events, app.secrets_kept_elsewhere")
        checksums = cursor.fetchall()
        cursor.execute(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = 'app' ORDER BY TABLE_NAME"
        )
        tables = cursor.fetchall()
        cursor.execute("SELECT next_not_cached_value FROM app.corpus_seq")
        sequence = cursor.fetchall()
        cursor.execute("SELECT User, Host FROM mysql.user ORDER BY User, Host")
        users = cursor.fetchall()
        cursor.execute("SELECT @@GLOBAL.sql_mode, @@GLOBAL.read_only, @@GLOBAL.max_connections")
        settings = cursor.fetchall()
    return {
        "checksums": checksums,
        "tables": tables,
        "sequence": sequence,
        "users": users,
        "settings": settings,
        "files": sorted(str(p) for p in Path("/tmp").glob(FILES_WRITTEN)),
    }


@pytest.mark.usefixtures("sequence")
async def test_what_the_guard_lets_through_changes_nothing_and_holds_no_lock(
    mariadb: MariaDbServer,
) -> None:
    accepted = [check_read_only(normalize_chat_sql(s)).text for s in READS]
    problems: dict[str, str] = {}
    with contextlib.closing(mariadb.root()) as root:
        async with temporary_user(mariadb) as user:
            before = snapshot(root)
            # One connection for every read. Each runs in a transaction left open until the
            # checks are done: a lock the statement took would still be held then. READ WRITE
            # so that a locking read would take its locks rather than be refused by READ ONLY;
            # the user still has nothing but SELECT.
            async with read_session(mariadb, user) as connection:
                for statement in accepted:
                    await run(connection, "START TRANSACTION READ WRITE")
                    try:
                        await run(connection, statement)
                    except pymysql.err.MySQLError as error:
                        problems[statement] = f"MariaDB refused a read the guard accepted: {error}"
                    if blocked := blocked_writers(root):
                        problems[statement] = f"holds locks that block writers on {blocked}"
                    if held := await named_locks_released(connection):
                        problems[statement] = f"held {held} named lock(s)"
                    await run(connection, "COMMIT")
            after = snapshot(root)
    assert problems == {}
    assert after == before


@pytest.mark.usefixtures("sequence")
@pytest.mark.filterwarnings("ignore::pymysql.err.Warning")
async def test_mariadb_alone_stops_writes_but_not_locks_which_is_why_the_guard_is_first(
    mariadb: MariaDbServer,
) -> None:
    """The second line: each refused statement, run anyway as the temporary user.

    The user's grants (SELECT on the schema only) and the READ ONLY session stop every write,
    file and sequence change here; nothing in the snapshot moves. But they do not stop a named
    lock, a SLEEP or a locking read, which MariaDB runs for any user: those only the guard keeps
    out. Each statement gets a fresh connection, as `sql` gives it, since some (SET, XA, HANDLER)
    change the session they run in.
    """
    ran: list[str] = []
    took_named_lock: list[str] = []
    with contextlib.closing(mariadb.root()) as root:
        async with temporary_user(mariadb) as user:
            before = snapshot(root)
            for statement, _ in ALL_REFUSED:
                async with read_session(mariadb, user) as connection:
                    try:
                        await run(connection, statement)
                    except (pymysql.err.MySQLError, UnicodeEncodeError):
                        pass
                    else:
                        ran.append(statement)
                    if await named_locks_released(connection):
                        took_named_lock.append(statement)
            after = snapshot(root)
    assert after == before
    writes = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE")
    assert [s for s in ran if s.startswith(writes)] == []
    assert "SELECT GET_LOCK('corpus', 0)" in took_named_lock
    assert "SHOW TABLES WHERE GET_LOCK('corpus', 0)" in took_named_lock
    assert "SELECT SLEEP(0)" in ran
    assert "(SELECT * FROM orders LIMIT 1) FOR UPDATE" in ran
    assert "SELECT 1 /*! , GET_LOCK('corpus', 0) */" in took_named_lock
