"""`sql DATABASE ENV SELECT ...`: one read-only statement, the result as a table.

The statement is checked before anything is connected; it then runs as a temporary
SELECT-only user with the database's statement timeout and row limit. A result longer than
the chat table comes along as a CSV file.
"""

from __future__ import annotations

import base64
import csv
import io
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from bot.messages import Attachment, Message, Table
from bot.ports.database import DatabaseTarget, QueryResult, database_target
from bot.spec import Arg, ArgKind, CommandSpec, Context

# Rows shown in chat; the CSV attachment holds every row read.
DISPLAY_ROWS = 20
CELL_WIDTH = 60


async def sql(ctx: Context) -> Message:
    # sqlglot loads with the first query, not with every start of kajitori.
    from commands.database.sql_guard import check_read_only, normalize_chat_sql

    command = ctx.command
    target = database_target(ctx.services.config, command.word("database"), command.word("env"))
    statement = check_read_only(normalize_chat_sql(str(command.args["statement"])))
    queries = ctx.services.read_queries
    result = await queries.run(target, statement.text, member=ctx.member)
    return render_result(target, statement.kind, result, ctx.services.clock.now())


def render_result(target: DatabaseTarget, kind: str, result: QueryResult, now: datetime) -> Message:
    count = len(result.rows)
    took = f"{result.elapsed.total_seconds():.2f}s"
    more = "+" if result.truncated else ""
    text = f"{kind} on {target}: {count}{more} row{'' if count == 1 else 's'} in {took}"
    if not result.columns:
        return Message(text=text)
    notes = []
    if count > DISPLAY_ROWS:
        notes.append(f"showing {DISPLAY_ROWS} of {count} rows; all of them are in the CSV file")
    if result.truncated:
        limit = target.config.row_limit
        notes.append(
            f"the result was cut at the row limit of {limit} rows; add a LIMIT or a narrower WHERE"
        )
    rows = [[_short(_cell(value)) for value in row] for row in result.rows[:DISPLAY_ROWS]]
    table = Table(columns=result.columns, rows=rows, note="\n".join(notes) or None)
    attachment = None
    if count > DISPLAY_ROWS:
        attachment = Attachment(
            filename=f"{target.name}-{target.env}-{now:%Y%m%d-%H%M%S}.csv",
            content=to_csv(result),
        )
    return Message(text=text, table=table, attachment=attachment)


def to_csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_cell(value) for value in row] for row in result.rows)
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _short(text: str) -> str:
    flat = " ".join(text.split()) if ("\n" in text or "\t" in text) else text
    return flat if len(flat) <= CELL_WIDTH else flat[: CELL_WIDTH - 1] + "…"


SPECS = [
    CommandSpec(
        name="sql",
        usage="sql DATABASE ENV SELECT ...",
        summary="one read-only query (SELECT, SHOW, EXPLAIN, DESCRIBE), the result as a table",
        handler=sql,
        permission="sql",
        args=(Arg("database"), Arg("env"), Arg("statement", ArgKind.REST)),
        examples=(
            "sql main staging SELECT id, status FROM orders ORDER BY id DESC LIMIT 10",
            "sql main production SHOW TABLES",
        ),
        details=(
            "Writes, several statements, SELECT ... INTO, locking reads and executable comments "
            "are refused before anything connects. The query runs as a temporary SELECT-only "
            "user with the database's statement timeout and row limit; more than "
            f"{DISPLAY_ROWS} rows come as a CSV file as well."
        ),
    )
]
