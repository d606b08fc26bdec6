"""Block Kit for kajitori's chat-neutral messages.

Fields become section fields, narrow tables a monospace block, wide tables (history, jobs) a
list with one line per row, and a pending request its approve/deny buttons. Slack's limits
(3,000 characters a section, 10 fields a section, 50 blocks a message) are respected here so
that no answer is ever rejected for its size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bot.messages import Button, Message, Table, Tone, render_table

Block = dict[str, Any]

APPROVE_ACTION = "kajitori_approve"
DENY_ACTION = "kajitori_deny"
PROMOTE_ACTION = "kajitori_promote"
ABORT_ACTION = "kajitori_abort"
# A button's action id by the command it runs (`approve 3`, `promote 42`), and back.
ACTION_IDS = {
    "approve": APPROVE_ACTION,
    "deny": DENY_ACTION,
    "promote": PROMOTE_ACTION,
    "abort": ABORT_ACTION,
}
ACTION_VERBS = {action_id: verb for verb, action_id in ACTION_IDS.items()}
REQUEST_BLOCK_PREFIX = "kajitori_request:"
SUGGEST_ACTION = "kajitori_suggest"  # a suggested command: its dry run first
RUN_ACTION = "kajitori_run"  # a command to run, after its dry run
COMMANDS_BLOCK_ID = "kajitori_commands"
COMMAND_VALUE_LIMIT = 2000  # Slack's limit for a button's value
STATUS_BLOCK_ID = "kajitori_status"

SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FIELDS_PER_SECTION = 10
MAX_BLOCKS = 50
FALLBACK_LIMIT = 3000
# A table wider than this reads better as a list than as a monospace grid in a chat column.
MONOSPACE_MAX_COLUMNS = 4

TONE_MARKS = {
    Tone.SUCCESS: "✅ ",
    Tone.FAILURE: "❌ ",
    Tone.WARNING: "⚠️ ",
    Tone.PROGRESS: "⏳ ",
    Tone.INFO: "",
}


def escape(text: str) -> str:
    """Slack's mrkdwn gives &, < and > a meaning; user-visible text must not."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fallback_text(message: Message) -> str:
    """The plain text Slack shows in notifications and to clients without Block Kit."""
    return _clip(TONE_MARKS[message.tone] + escape(message.plain()), FALLBACK_LIMIT)


def message_blocks(message: Message) -> list[Block]:
    blocks = list(_text_sections(TONE_MARKS[message.tone] + escape(message.text)))
    if message.fields:
        blocks.extend(_field_sections(message.fields))
    if message.table is not None:
        blocks.extend(table_blocks(message.table))
    if message.attachment is not None:
        blocks.append(context(f"attached: {escape(message.attachment.filename)}"))
    requests = [b for b in message.buttons if not b.runs_command]
    commands = [b for b in message.buttons if b.runs_command]
    actions = [request_actions(requests)] if requests else []
    if commands:
        actions.append(command_actions(commands))
    room = MAX_BLOCKS - len(actions)
    if len(blocks) > room:
        blocks = [*blocks[: room - 1], context("… (cut to fit one message)")]
    return blocks + actions


def context(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text, 3000)}]}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def status_block(line: str) -> Block:
    return context(line, STATUS_BLOCK_ID)


def with_status(blocks: list[Block], line: str) -> list[Block]:
    """`blocks` with its status line (the last context of a job's head message) set to `line`."""
    kept = [b for b in blocks if b.get("block_id") != STATUS_BLOCK_ID][: MAX_BLOCKS - 1]
    return [*kept, status_block(line)]


def without_request_actions(blocks: list[Block]) -> list[Block]:
    return [
        b
        for b in blocks
        if not (
            b.get("type") == "actions"
            and str(b.get("block_id", "")).startswith(REQUEST_BLOCK_PREFIX)
        )
    ]


def request_actions(buttons: list[Button]) -> Block:
    request_id = buttons[0].request_id
    elements = []
    for button in buttons:
        goes_on = button.action in ("approve", "promote")
        elements.append(
            {
                "type": "button",
                "action_id": ACTION_IDS.get(button.action, DENY_ACTION),
                "text": {"type": "plain_text", "text": _clip(button.label, 75)},
                "value": button.request_id,
                "style": "primary" if goes_on else "danger",
            }
        )
    return {
        "type": "actions",
        "block_id": f"{REQUEST_BLOCK_PREFIX}{request_id}",
        "elements": elements,
    }


def command_actions(buttons: list[Button]) -> Block:
    """One button per command (at most 5, as Slack shows them on one row)."""
    elements = [
        {
            "type": "button",
            "action_id": f"{SUGGEST_ACTION if b.action == 'suggest' else RUN_ACTION}:{i}",
            "text": {"type": "plain_text", "text": _clip(b.label, 75)},
            "value": b.command[:COMMAND_VALUE_LIMIT],
            **({"style": "danger"} if b.action == "run" else {}),
        }
        for i, b in enumerate(buttons[:5])
    ]
    return {"type": "actions", "block_id": COMMANDS_BLOCK_ID, "elements": elements}


def without_command_actions(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.get("block_id") != COMMANDS_BLOCK_ID]


def _text_sections(text: str) -> Iterator[Block]:
    for chunk in _chunks(text.splitlines() or [""], SECTION_LIMIT):
        yield {"type": "section", "text": {"type": "mrkdwn", "text": chunk or " "}}


def _field_sections(fields: dict[str, str]) -> Iterator[Block]:
    items = [
        {"type": "mrkdwn", "text": _clip(f"*{escape(name)}*\n{escape(value) or '—'}", FIELD_LIMIT)}
        for name, value in fields.items()
    ]
    for start in range(0, len(items), FIELDS_PER_SECTION):
        yield {"type": "section", "fields": items[start : start + FIELDS_PER_SECTION]}


def table_blocks(table: Table) -> list[Block]:
    if not table.rows:
        blocks = [context("(no rows)")]
    elif len(table.columns) <= MONOSPACE_MAX_COLUMNS:
        grid = render_table(table.model_copy(update={"note": None})).splitlines()
        # Each chunk is wrapped in ``` fences, so leave room for them.
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{chunk}```"}}
            for chunk in _chunks([escape(line) for line in grid], SECTION_LIMIT - 6)
        ]
    else:
        blocks = [context(" · ".join(escape(c) for c in table.columns))]
        lines = [_list_line(row) for row in table.rows]
        blocks.extend(
            {"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
            for chunk in _chunks(lines, SECTION_LIMIT)
        )
    if table.note:
        blocks.append(context(escape(table.note)))
    return blocks


def _list_line(row: list[str]) -> str:
    cells = [escape(cell) for cell in row]
    head, rest = (cells[0], cells[1:]) if cells else ("", [])
    tail = " · ".join(cell for cell in rest if cell)
    return f"• `{head}` {tail}" if head else f"• {tail}"


def _chunks(lines: list[str], limit: int) -> Iterator[str]:
    """Join lines into pieces of at most `limit` characters, cutting overlong lines."""
    current: list[str] = []
    size = 0
    for raw in lines:
        line = _clip(raw, limit)
        if current and size + len(line) + 1 > limit:
            yield "\n".join(current)
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        yield "\n".join(current)
