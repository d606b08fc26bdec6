"""`sql DATABASE ENV ...` against a real MariaDB behind a real sshd bastion."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.bootstrap import Bot, build_bot
from adapters.tunnel.queries import TunnelReadQueries
from bot.config import Config, Settings, parse_config
from bot.errors import OperationFailed
from bot.model import Origin, Outcome
from bot.ports.database import CutValue, QueryResult, ResultCut, database_target
from commands.database.sql import render_result
from tests.db.conftest import db_config_data, startup_sweep
from tests.db.servers import MariaDbServer, SshBastion
from tests.support.chat import RecordingChat

DAVE = Origin(adapter="local", channel="local", member="local:dave")
CAROL = Origin(adapter="local", channel="local", member="local:carol")


def queries_of(bot: Bot) -> TunnelReadQueries:
    return bot.read_queries


async def test_a_select_answers_with_a_table(
    bot: Bot, mariadb: MariaDbServer, bastion: SshBastion
) -> None:
    await startup_sweep(bot)
    connections, logins = mariadb.connections_made(), bastion.accepted_logins()
    result = await bot.dispatcher.handle(
        DAVE,
        "sql main staging SELECT id, customer, amount, note FROM orders WHERE id <= 3 ORDER BY id",
    )
    assert result.outcome is Outcome.OK, result.text
    [message] = result.messages
    assert message.text.startswith("SELECT on main/staging: 3 rows in ")
    assert message.table is not None
    assert message.table.columns == ["id", "customer", "amount", "note"]
    assert message.table.rows == [
        ["1", "customer-1", "12.50", "NULL"],
        ["2", "customer-2", "25.00", "NULL"],
        ["3", "customer-3", "37.50", "line one line two"],
    ]
    assert message.attachment is None
    # It went through the bastion to the database (what the refusals below never do).
    assert mariadb.connections_made() > connections
    assert bastion.accepted_logins() > logins
    await queries_of(bot).settled()
    assert mariadb.kajitori_users() == []


async def test_show_explain_and_describe_are_reads(bot: Bot) -> None:
    shown = await bot.dispatcher.handle(DAVE, "sql main production SHOW TABLES")
    assert shown.outcome is Outcome.OK, shown.text
    assert shown.messages[0].table is not None
    assert ["orders"] in shown.messages[0].table.rows
    described = await bot.dispatcher.handle(DAVE, "sql main production DESCRIBE orders")
    assert described.outcome is Outcome.OK, described.text
    explained = await bot.dispatcher.handle(
        DAVE, "sql main production EXPLAIN SELECT * FROM orders WHERE id = 1"
    )
    assert explained.outcome is Outcome.OK, explained.text
    assert explained.messages[0].text.startswith("EXPLAIN on main/production")


@pytest.mark.parametrize(
    ("statement", "says"),
    [
        ("INSERT INTO orders VALUES (99, 'x', 1, NULL)", "this is INSERT"),
        ("UPDATE orders SET amount = 0", "this is UPDATE"),
        ("CREATE TABLE copy AS SELECT * FROM orders", "this is CREATE"),
        ("SELECT 1; DROP TABLE orders", "one statement at a time"),
        ("SELECT * FROM orders INTO OUTFILE '/tmp/orders.csv'", "INTO OUTFILE"),
        ("SELECT * FROM orders FOR UPDATE", "locking reads"),
        ("SELECT 1 /*! ; DELETE FROM orders */", "an executable comment"),
        ("SELECT 1 --\u00a0, GET_LOCK('x', 0)\nFROM (SELECT 1 AS `\u00a0`) t", "U+00A0"),
    ],
)
async def test_a_statement_that_is_not_one_read_is_refused_before_anything_connects(
    bot: Bot, mariadb: MariaDbServer, bastion: SshBastion, statement: str, says: str
) -> None:
    await startup_sweep(bot)
    connections, logins = mariadb.connections_made(), bastion.accepted_logins()
    result = await bot.dispatcher.handle(DAVE, f"sql main staging {statement}")
    assert result.outcome is Outcome.REFUSED
    assert says in result.text
    assert mariadb.connections_made() == connections
    assert bastion.accepted_logins() == logins


async def test_a_large_result_is_cut_at_the_row_limit_and_attached_as_csv(bot: Bot) -> None:
    result = await bot.dispatcher.handle(
        DAVE, "sql main staging SELECT id, kind FROM events ORDER BY id"
    )
    assert result.outcome is Outcome.OK, result.text
    [message] = result.messages
    assert message.text.startswith("SELECT on main/staging: 200+ rows")
    assert message.table is not None and message.table.note is not None
    assert len(message.table.rows) == 20
    assert "showing 20 of 200 rows" in message.table.note
    assert "row limit of 200" in message.table.note
    assert message.attachment is not None
    rows = list(csv.reader(io.StringIO(message.attachment.content)))
    assert rows[0] == ["id", "kind"]
    assert rows[1:] == [[str(i), ("signup", "login", "purchase")[i % 3]] for i in range(1, 201)]


async def test_the_statement_timeout_stops_a_long_query(bot: Bot, mariadb: MariaDbServer) -> None:
    # Staging's statement timeout is 1s; a four-way join of 250 rows runs far longer.
    result = await bot.dispatcher.handle(
        DAVE, "sql main staging SELECT COUNT(*) FROM events a, events b, events c, events d"
    )
    assert result.outcome is Outcome.FAILED
    assert "statement timeout" in result.text
    await queries_of(bot).settled()
    assert mariadb.kajitori_users() == []


async def test_the_database_refuses_what_gets_past_the_check(bot: Bot) -> None:
    """The temporary user, the READ ONLY transaction and the connection hold on their own."""
    target = database_target(bot.config, "main", "production")
    queries = queries_of(bot)
    with pytest.raises(OperationFailed, match="1064"):
        await queries.run(target, "SELECT 1; SELECT 2", member="local:dave")
    with pytest.raises(OperationFailed, match="refused it"):
        await queries.run(target, "INSERT INTO orders VALUES (99, 'x', 1, NULL)", member="test")
    with pytest.raises(OperationFailed, match="refused it"):
        await queries.run(target, "SELECT * FROM mysql.user", member="test")


async def test_sql_needs_the_sql_permission(bot: Bot) -> None:
    result = await bot.dispatcher.handle(CAROL, "sql main staging SELECT 1")
    assert result.outcome is Outcome.REFUSED
    assert "lacks permission sql:staging" in result.text


async def test_the_query_reads_quotes_as_the_check_did_whatever_the_server_sql_mode(
    bot: Bot, mariadb: MariaDbServer
) -> None:
    """With ANSI_QUOTES "…" would be a name, with NO_BACKSLASH_ESCAPES \\' would end a string."""
    (before,) = mariadb.query("SELECT @@GLOBAL.sql_mode")[0]
    mariadb.query("SET GLOBAL sql_mode = 'ANSI,NO_BACKSLASH_ESCAPES'")
    try:
        result = await bot.dispatcher.handle(
            DAVE, "sql main staging SELECT \"a\\\"b\" AS quoted, 'c\\'d' AS backslashed"
        )
    finally:
        mariadb.query("SET GLOBAL sql_mode = %s", (before,))
    assert result.outcome is Outcome.OK, result.text
    table = result.messages[0].table
    assert table is not None
    assert table.rows == [['a"b', "c'd"]]


async def test_cells_longer_than_max_cell_bytes_are_cut_with_a_visible_ellipsis(bot: Bot) -> None:
    # 40 cells of 200,000 bytes each; max_cell_bytes is 64 KB by default.
    result = await bot.dispatcher.handle(
        DAVE, "sql main production SELECT id, REPEAT('a', 200000) AS big FROM events LIMIT 40"
    )
    assert result.outcome is Outcome.OK, result.text
    [message] = result.messages
    assert message.text.startswith("SELECT on main/production: 40 rows in ")
    assert message.table is not None and message.table.note is not None
    assert "40 cells were longer than 64 KB (max_cell_bytes), cut where it ends in …" in (
        message.table.note
    )
    assert "result cut" not in message.table.note
    assert message.table.rows[0][1].endswith("…")
    assert message.attachment is not None
    rows = list(csv.reader(io.StringIO(message.attachment.content)))
    assert [row[1] for row in rows[1:]] == ["a" * 64_000 + "…"] * 40


@pytest.fixture
async def small_budget_bot(
    sandbox: Any, chat: RecordingChat, mariadb: MariaDbServer, bastion: SshBastion
) -> AsyncIterator[Bot]:
    data = db_config_data(mariadb, bastion, max_result_bytes="1MB", max_cell_bytes="40KB")
    built = await build_bot(
        parse_config(data), Settings(aws_endpoint_url=sandbox.url), chats=[chat], runner="test"
    )
    try:
        yield built
    finally:
        await built.close()


async def test_a_result_over_max_result_bytes_is_cut_while_it_streams_with_a_note(
    small_budget_bot: Bot, mariadb: MariaDbServer
) -> None:
    bot = small_budget_bot
    # 250 rows of 30 KB: 7.5 MB in all, a budget of 1 MB, the row limit of 200 not reached.
    result = await bot.dispatcher.handle(
        DAVE, "sql main staging SELECT id, REPEAT('b', 30000) AS big FROM events ORDER BY id"
    )
    assert result.outcome is Outcome.OK, result.text
    [message] = result.messages
    # Each row is 30,000 bytes of cell, its id and two separators.
    kept = 1_000_000 // 30_004
    assert message.text.startswith(f"SELECT on main/staging: {kept}+ rows in ")
    assert message.table is not None and message.table.note is not None
    assert (
        "result cut at 1 MB (max_result_bytes); add a LIMIT or select fewer columns"
        in message.table.note
    )
    assert "row limit" not in message.table.note
    assert f"showing 20 of {kept} rows; all of them are in the CSV file" in message.table.note
    assert message.attachment is not None
    assert len(message.attachment.content.encode()) <= 1_000_000
    rows = list(csv.reader(io.StringIO(message.attachment.content)))
    assert [int(row[0]) for row in rows[1:]] == list(range(1, kept + 1))
    await queries_of(bot).settled()
    # The unread rest of the result went with the connection: nothing of it still runs.
    running = mariadb.query(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER LIKE 'kj\\_%%'"
    )
    assert running == [(0,)]


def test_the_csv_file_keeps_within_max_result_bytes_however_cells_are_written(
    demo_config: Config,
) -> None:
    # Binary cells come out as base64, a third longer than what was counted as they streamed.
    target = database_target(demo_config, "main", "staging")
    blob = bytes(range(256)) * 4_000
    result = QueryResult(
        columns=["id", "blob"],
        rows=[(i, CutValue(blob[:64_000])) for i in range(150)],
        elapsed=timedelta(seconds=1),
        cut=ResultCut.MAX_RESULT_BYTES,
        cut_cells=150,
    )
    message = render_result(target, "SELECT", result, datetime.now(UTC))
    assert message.attachment is not None
    assert len(message.attachment.content.encode()) <= 10_000_000
    assert message.table is not None and message.table.note is not None
    held = len(message.attachment.content.splitlines()) - 1
    assert held < 150
    assert f"the CSV file holds the first {held}, as many as fit in 10 MB" in (message.table.note)
