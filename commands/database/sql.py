"""`sql DATABASE ENV SELECT ...`: one read-only statement, the result as a table.

The statement is checked before anything is connected; it then runs as a temporary
SELECT-only user with the database's statement timeout, row limit and byte budget
(`max_result_bytes`, cells cut at `max_cell_bytes`). A result longer than the chat table comes
along as a CSV file, within the same budget.
"""

from __future__ import annotations

import base64
import csv
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from bot.messages import Attachment, Message, Table
from bot.ports.database import (
    CutValue,
    DatabaseTarget,
    QueryResult,
    ResultCut,
    database_target,
)
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
    config = target.config
    count = len(result.rows)
    took = f"{result.elapsed.total_seconds():.2f}s"
    more = "+" if result.truncated else ""
    text = f"{kind} on {target}: {count}{more} row{'' if count == 1 else 's'} in {took}"
    if not result.columns:
        return Message(text=text)
    notes = []
    attachment = None
    if count > DISPLAY_ROWS:
        content, written = to_csv(result, config.max_result_bytes)
        attachment = Attachment(
            filename=f"{target.name}-{target.env}-{now:%Y%m%d-%H%M%S}.csv", content=content
        )
        held = (
            "all of them are in the CSV file"
            if written == count
            else f"the CSV file holds the first {written}, as many as fit in "
            f"{format_bytes(config.max_result_bytes)} (max_result_bytes)"
        )
        notes.append(f"showing {DISPLAY_ROWS} of {count} rows; {held}")
    if result.cut is ResultCut.ROW_LIMIT:
        notes.append(
            f"the result was cut at the row limit of {config.row_limit} rows; "
            "add a LIMIT or a narrower WHERE"
        )
    elif result.cut is ResultCut.MAX_RESULT_BYTES:
        notes.append(
            f"result cut at {format_bytes(config.max_result_bytes)} (max_result_bytes); "
            "add a LIMIT or select fewer columns"
        )
    if result.cut_cells:
        cells = "1 cell was" if result.cut_cells == 1 else f"{result.cut_cells} cells were"
        notes.append(
            f"{cells} longer than {format_bytes(config.max_cell_bytes)} (max_cell_bytes), "
            "cut where it ends in …"
        )
    rows = [[_short(_cell(value)) for value in row] for row in result.rows[:DISPLAY_ROWS]]
    table = Table(columns=result.columns, rows=rows, note="\n".join(notes) or None)
    return Message(text=text, table=table, attachment=attachment)


def to_csv(result: QueryResult, max_bytes: int) -> tuple[str, int]:
    """The result as CSV of at most `max_bytes` (UTF-8), and how many rows it holds."""
    out = _SizedText()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for written, row in enumerate(result.rows):
        mark = out.mark()
        writer.writerow([_cell(value) for value in row])
        if out.size > max_bytes:
            out.rewind(mark)
            return out.text(), written
    return out.text(), len(result.rows)


class _SizedText:
    """Text written in pieces, with its size in UTF-8 bytes; the last pieces can be taken back."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self._parts.append(text)
        self.size += len(text) if text.isascii() else len(text.encode("utf-8"))

    def mark(self) -> tuple[int, int]:
        return len(self._parts), self.size

    def rewind(self, mark: tuple[int, int]) -> None:
        del self._parts[mark[0] :]
        self.size = mark[1]

    def text(self) -> str:
        return "".join(self._parts)


def format_bytes(size: int) -> str:
    """10000000 -> 10 MB, 65536 -> 64 KiB: as exact as the config value was written."""
    for unit, scale in (("MiB", 1 << 20), ("MB", 10**6), ("KiB", 1 << 10), ("KB", 10**3)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    if size >= 10**6:
        return f"{size / 10**6:.1f} MB"
    return f"{size:,} bytes"


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, CutValue):
        return _cell(value.head) + "…"
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
            "Writes, several statements, SELECT ... INTO, locking reads, functions that act "
            "outside the result (GET_LOCK, SLEEP, ...), executable comments, optimizer hints "
            "and characters other than ASCII outside quotes are refused before anything "
            "connects. The query runs as a temporary SELECT-only "
            "user with the database's statement timeout and row limit, and keeps at most "
            "max_result_bytes of the result (10 MB unless configured), each cell cut at "
            f"max_cell_bytes (64 KB); more than {DISPLAY_ROWS} rows come as a CSV file as well."
        ),
    )
]
