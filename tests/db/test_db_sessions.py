"""`db open` / `db close` / `db list` against a real MariaDB behind a real sshd bastion."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh
import pymysql
import pytest

from adapters.bootstrap import Bot, build_bot
from adapters.store.sqlite import SqliteStore
from bot.config import Settings, parse_config
from bot.dispatcher import Result
from bot.messages import Message
from bot.model import DbSessionRecord, Origin, Outcome
from sandbox.seed import SEED
from tests.db.conftest import db_config_data, sessions_of, startup_sweep
from tests.db.servers import (
    MariaDbServer,
    SshBastion,
    own_connections_to,
    own_listening_ports,
)
from tests.support.chat import RecordingChat

DAVE = Origin(adapter="local", channel="local", member="local:dave", thread="t-dave")
ALICE = Origin(adapter="local", channel="local", member="local:alice", thread="t-alice")
CAROL = Origin(adapter="local", channel="local", member="local:carol")

# MySQL error numbers the database answers a read-only user's writes with.
COMMAND_DENIED = 1142
DB_ACCESS_DENIED = 1044


def credentials(result: Result) -> Message:
    assert result.outcome is Outcome.OK, result.text
    private = [m for m in result.messages if m.private]
    assert len(private) == 1, result.text
    return private[0]


def connect(message: Message, **extra: Any) -> Any:
    fields = message.fields
    return pymysql.connect(
        host=fields["host"],
        port=int(fields["port"]),
        user=fields["user"],
        password=fields["password"],
        database=fields["database"],
        connect_timeout=5,
        read_timeout=10,
        **extra,
    )


def port_is_closed(port: int) -> bool:
    try:
        with contextlib.closing(
            pymysql.connect(host="127.0.0.1", port=port, user="x", password="x", connect_timeout=3)
        ):
            return False
    except pymysql.err.OperationalError as error:
        # 2003: nothing listens there any more.
        return bool(error.args[0] == 2003)


async def test_db_open_gives_private_credentials_that_read_through_the_tunnel(
    bot: Bot, chat: RecordingChat, mariadb: MariaDbServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await bot.dispatcher.handle(DAVE, "db open main staging")
    message = credentials(result)
    password = message.fields["password"]
    assert message.fields["user"] in mariadb.kajitori_users()
    assert message.fields["mysql"].startswith(
        f"mysql -h 127.0.0.1 -P {message.fields['port']} -u {message.fields['user']} -p{password}"
    )

    def read() -> list[Any]:
        with contextlib.closing(connect(message)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*), SUM(amount) FROM orders")
            return list(cursor.fetchall())

    assert await asyncio.to_thread(read) == [(30, pytest.approx(5812.5))]

    # The channel sees who opened which session until when, and nothing to connect with.
    public = [p for p in chat.posted if not p.message.private]
    assert any("local:dave opened read-only database session" in p.text for p in public)
    admin_password = SEED.db_password("staging")
    for secret in (password, admin_password):
        assert all(secret not in p.text for p in chat.posted)
        audit = await bot.services.store.list_audit(limit=50)
        assert audit and all(secret not in f"{a.text} {a.detail}" for a in audit)
        assert secret not in caplog.text

    listing = await bot.dispatcher.handle(CAROL, "db list")
    assert listing.messages[0].table is not None
    assert listing.messages[0].table.rows[0][:3] == ["1", "main/staging", "local:dave"]


async def test_a_session_user_cannot_write(bot: Bot) -> None:
    message = credentials(await bot.dispatcher.handle(DAVE, "db open main staging"))

    def attempt(statement: str) -> int:
        with contextlib.closing(connect(message)) as connection, connection.cursor() as cursor:
            try:
                cursor.execute(statement)
            except pymysql.err.MySQLError as error:
                return int(error.args[0])
        return 0

    refusals = {
        statement: await asyncio.to_thread(attempt, statement)
        for statement in (
            "INSERT INTO orders VALUES (99, 'mallory', 1, NULL)",
            "UPDATE orders SET amount = 0",
            "DELETE FROM orders",
            "CREATE TABLE app.mine (id INT)",
            "CREATE DATABASE mine",
            "DROP TABLE orders",
        )
    }
    assert refusals == {
        "INSERT INTO orders VALUES (99, 'mallory', 1, NULL)": COMMAND_DENIED,
        "UPDATE orders SET amount = 0": COMMAND_DENIED,
        "DELETE FROM orders": COMMAND_DENIED,
        "CREATE TABLE app.mine (id INT)": COMMAND_DENIED,
        "CREATE DATABASE mine": DB_ACCESS_DENIED,
        "DROP TABLE orders": COMMAND_DENIED,
    }


async def test_at_expiry_the_port_closes_and_the_user_is_dropped(
    bot: Bot, chat: RecordingChat, mariadb: MariaDbServer
) -> None:
    message = credentials(await bot.dispatcher.handle(DAVE, "db open main staging for 3s"))
    port, user = int(message.fields["port"]), message.fields["user"]
    connection = await asyncio.to_thread(connect, message)
    try:
        await chat.wait_for(lambda posted: any("closed: expired" in p.text for p in posted))
        assert user not in mariadb.users()
        assert await asyncio.to_thread(port_is_closed, port)
        with pytest.raises(pymysql.err.OperationalError):
            await asyncio.to_thread(connection.query, "SELECT 1")
    finally:
        connection.close()
    assert await bot.services.store.list_db_sessions() == []
    listing = await bot.dispatcher.handle(DAVE, "db list")
    assert listing.text == "no open database sessions"


async def test_db_close_ends_a_session_for_its_owner_or_an_approver(
    bot: Bot, chat: RecordingChat, mariadb: MariaDbServer
) -> None:
    first = credentials(await bot.dispatcher.handle(DAVE, "db open main staging"))
    second = credentials(await bot.dispatcher.handle(DAVE, "db open main production for 10m"))

    refused = await bot.dispatcher.handle(CAROL, "db close 1")
    assert refused.outcome is Outcome.REFUSED
    assert "belongs to local:dave" in refused.text
    assert first.fields["user"] in mariadb.kajitori_users()

    closed = await bot.dispatcher.handle(DAVE, "db close 1")
    assert closed.outcome is Outcome.OK, closed.text
    assert first.fields["user"] not in mariadb.users()
    assert await asyncio.to_thread(port_is_closed, int(first.fields["port"]))

    by_approver = await bot.dispatcher.handle(ALICE, "db close 2")
    assert by_approver.outcome is Outcome.OK, by_approver.text
    assert second.fields["user"] not in mariadb.users()
    # Closed from another thread: the session's own thread is told too.
    assert any(
        p.origin.thread == DAVE.thread and "closed: closed by local:alice" in p.text
        for p in chat.posted
    )
    again = await bot.dispatcher.handle(DAVE, "db close 2")
    assert again.outcome is Outcome.REFUSED


async def test_a_duration_above_the_maximum_is_capped(bot: Bot) -> None:
    message = credentials(await bot.dispatcher.handle(DAVE, "db open main staging for 5h"))
    assert "capped at 2h" in message.text
    [record] = await bot.services.store.list_db_sessions()
    assert record.expires_at - record.opened_at == timedelta(hours=2)


async def test_production_needs_the_permission_but_no_approval(bot: Bot) -> None:
    refused = await bot.dispatcher.handle(CAROL, "db open main production")
    assert refused.outcome is Outcome.REFUSED
    assert "lacks permission db:production" in refused.text
    # Read-only and time-limited: an analyst gets it without an engineer in the loop.
    opened = await bot.dispatcher.handle(DAVE, "db open main production")
    assert credentials(opened).fields["database"] == "app"


async def test_a_wrong_bastion_host_key_is_refused(
    sandbox: Any,
    chat: RecordingChat,
    mariadb: MariaDbServer,
    bastion: SshBastion,
) -> None:
    data = db_config_data(mariadb, bastion)
    data["environments"]["staging"]["databases"]["main"]["bastion"]["known_hosts"] = str(
        bastion.wrong_known_hosts
    )
    listening = own_listening_ports()
    bot = await build_bot(
        parse_config(data), Settings(aws_endpoint_url=sandbox.url), chats=[chat], runner="test"
    )
    try:
        await startup_sweep(bot)
        logins = bastion.accepted_logins()
        result = await bot.dispatcher.handle(DAVE, "db open main staging")
        await sessions_of(bot).settled()
        assert result.outcome is Outcome.FAILED
        assert "host key that is not in" in result.text
        assert mariadb.kajitori_users() == []
        assert own_listening_ports() == listening
        assert own_connections_to(bastion.port) == 0
        assert bastion.accepted_logins() == logins
        assert await bot.services.store.list_db_sessions() == []
    finally:
        await bot.close()


async def test_a_cancelled_open_leaves_nothing_behind(
    bot: Bot, mariadb: MariaDbServer, bastion: SshBastion
) -> None:
    listening = own_listening_ports()
    blocker = await asyncio.to_thread(mariadb.root)
    try:
        # Holding the grant tables stalls the admin's CREATE USER inside the server.
        await asyncio.to_thread(blocker.query, "LOCK TABLES mysql.db WRITE")
        opening = asyncio.create_task(bot.dispatcher.handle(DAVE, "db open main staging"))
        await _wait_until_blocked(mariadb, "CREATE USER")
        opening.cancel()
    finally:
        await asyncio.to_thread(blocker.query, "UNLOCK TABLES")
        blocker.close()
    # The cancelled open undoes its setup before it ends, and nothing stops that undo.
    with pytest.raises(asyncio.CancelledError):
        await opening
    await sessions_of(bot).settled()
    assert mariadb.kajitori_users() == []
    assert own_listening_ports() == listening
    assert own_connections_to(bastion.port) == 0
    assert await bot.services.store.list_db_sessions() == []
    assert sessions_of(bot).open_ids == []


async def _wait_until_blocked(mariadb: MariaDbServer, statement: str) -> None:
    async with asyncio.timeout(30):
        while True:
            rows = await asyncio.to_thread(
                mariadb.query,
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                "WHERE STATE LIKE 'Waiting for table%%' AND INFO LIKE %s",
                (statement + "%",),
            )
            if rows[0][0]:
                return
            await asyncio.sleep(0.02)


async def test_shutdown_closes_every_session(
    sandbox: Any, demo_config: Any, chat: RecordingChat, mariadb: MariaDbServer, bastion: SshBastion
) -> None:
    bot = await build_bot(
        demo_config, Settings(aws_endpoint_url=sandbox.url), chats=[chat], runner="test"
    )
    try:
        message = credentials(await bot.dispatcher.handle(DAVE, "db open main staging"))
    finally:
        await bot.close()
    assert message.fields["user"] not in mariadb.users()
    assert await asyncio.to_thread(port_is_closed, int(message.fields["port"]))
    assert own_connections_to(bastion.port) == 0
    assert any("closed: kajitori is shutting down" in p.text for p in chat.posted)


async def test_a_restart_sweeps_what_an_earlier_run_left(
    sandbox: Any,
    chat: RecordingChat,
    mariadb: MariaDbServer,
    bastion: SshBastion,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    past, future = (
        int((now - timedelta(minutes=5)).timestamp()),
        int((now + timedelta(hours=1)).timestamp()),
    )
    # Left by a run on this host that died: recorded, not expired yet, its tunnel gone.
    recorded = f"kj_s7_{future}"
    # Expired, and no record of it (the store was lost, or it was a one-off query's).
    expired = f"kj_qdeadbeef_{past}"
    # Another replica's live session: not expired, not recorded by a runner on this host.
    elsewhere = f"kj_s8_{future}"
    # A replica on this same host whose process still runs (here: the test's own process).
    neighbour = f"kj_s9_{future}"
    ended = await asyncio.create_subprocess_exec("true")  # a process of this host, ended
    await ended.wait()
    for name in (recorded, expired, elsewhere, neighbour):
        mariadb.query("CREATE USER %s@'%%' IDENTIFIED BY 'leftover-pw'", (name,))
    store_path = tmp_path / "state.db"
    store = await SqliteStore.open(str(store_path))
    for session_id, user, runner in (
        (7, recorded, f"test:{ended.pid}:a1"),
        (8, elsewhere, "elsewhere:2:b2"),
        (9, neighbour, f"test:{os.getpid()}:c3"),
    ):
        await store.put_db_session(
            DbSessionRecord(
                id=session_id,
                database="main",
                env="staging",
                member="local:dave",
                user=user,
                host="127.0.0.1",
                port=40000 + session_id,
                opened_at=now - timedelta(minutes=10),
                expires_at=now + timedelta(hours=1),
                runner=runner,
            )
        )
    data = db_config_data(mariadb, bastion)
    data["store"] = f"sqlite:///{store_path}"
    bot = await build_bot(
        parse_config(data),
        Settings(aws_endpoint_url=sandbox.url),
        store=store,
        chats=[chat],
        runner="test",
    )
    try:
        await startup_sweep(bot)
        users = mariadb.kajitori_users()
        assert recorded not in users and expired not in users
        assert elsewhere in users and neighbour in users
        assert [r.id for r in await bot.services.store.list_db_sessions()] == [8, 9]
    finally:
        await bot.close()
        for name in (elsewhere, neighbour):
            mariadb.query("DROP USER IF EXISTS %s@'%%'", (name,))


async def test_a_one_shot_run_sweeps_nothing_and_reaches_the_database_at_first_use(
    sandbox: Any,
    chat: RecordingChat,
    mariadb: MariaDbServer,
    bastion: SshBastion,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    # Left by a run on this host: a server's start sweeps it; a one-shot `run` leaves it.
    recorded = f"kj_s7_{int((now + timedelta(hours=1)).timestamp())}"
    mariadb.query("CREATE USER %s@'%%' IDENTIFIED BY 'leftover-pw'", (recorded,))
    store_path = tmp_path / "state.db"
    store = await SqliteStore.open(str(store_path))
    await store.put_db_session(
        DbSessionRecord(
            id=7,
            database="main",
            env="staging",
            member="local:dave",
            user=recorded,
            host="127.0.0.1",
            port=40007,
            opened_at=now - timedelta(minutes=10),
            expires_at=now + timedelta(hours=1),
            runner="test:1",
        )
    )
    data = db_config_data(mariadb, bastion)
    data["store"] = f"sqlite:///{store_path}"
    bot = await build_bot(
        parse_config(data),
        Settings(aws_endpoint_url=sandbox.url),
        store=store,
        chats=[chat],
        runner="test",
        one_shot=True,
    )
    try:
        assert bot.startup_sweep is None
        assert not bot.database.loaded
        logins = bastion.accepted_logins()
        result = await bot.dispatcher.handle(DAVE, "sql main staging SELECT COUNT(*) FROM orders")
        assert result.outcome is Outcome.OK, result.text
        assert bot.database.loaded
        assert bastion.accepted_logins() > logins
        await bot.read_queries.settled()
        assert recorded in mariadb.kajitori_users()
        assert [r.id for r in await bot.services.store.list_db_sessions()] == [7]
    finally:
        await bot.close()
        mariadb.query("DROP USER IF EXISTS %s@'%%'", (recorded,))


async def test_the_bastion_takes_keys_only_and_forwards_only_to_the_database(
    bastion: SshBastion, mariadb: MariaDbServer
) -> None:
    """The stand-in bastion is as strict as a real one (what the tests above rely on)."""
    options: dict[str, Any] = {
        "port": bastion.port,
        "username": bastion.user,
        "known_hosts": str(bastion.known_hosts),
        "config": [],
        "agent_path": None,
    }
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            "127.0.0.1", password="guess", client_keys=None, preferred_auth="password", **options
        )
    async with asyncssh.connect("127.0.0.1", client_keys=[str(bastion.key_file)], **options) as ssh:
        _reader, writer = await ssh.open_connection("127.0.0.1", mariadb.port)
        writer.close()
        with pytest.raises(asyncssh.ChannelOpenError):
            await ssh.open_connection("127.0.0.1", bastion.port)
