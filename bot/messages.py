"""What the bot says: a chat-neutral message that each adapter renders its own way."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Tone(StrEnum):
    INFO = "info"
    PROGRESS = "progress"
    SUCCESS = "success"
    FAILURE = "failure"
    WARNING = "warning"


class Table(BaseModel, defer_build=True):
    columns: list[str]
    rows: list[list[str]]
    note: str | None = None


class Button(BaseModel, defer_build=True):
    """An answer to a pending request: approve/deny (or confirm/cancel) with its id; or
    (action `suggest` or `run`) a command offered to whoever presses it."""

    action: str  # "approve", "deny", "suggest" (dry run first) or "run"
    request_id: str = ""
    label: str
    command: str = ""  # the command a suggest/run button stands for

    @property
    def runs_command(self) -> bool:
        return self.action in COMMAND_ACTIONS

    def typed(self) -> str:
        """What to type instead of pressing."""
        return self.command if self.runs_command else f"{self.action} {self.request_id}"


COMMAND_ACTIONS = frozenset({"suggest", "run"})


class Attachment(BaseModel, defer_build=True):
    filename: str
    content: str
    mime: str = "text/csv"


class Message(BaseModel, defer_build=True):
    text: str
    tone: Tone = Tone.INFO
    fields: dict[str, str] = Field(default_factory=dict)
    table: Table | None = None
    buttons: list[Button] = Field(default_factory=list)
    attachment: Attachment | None = None
    # Only the member it is about may see it (ephemeral message or DM, never the channel).
    private: bool = False

    def plain(self) -> str:
        """The message as plain text, for terminals and chats without rich layout."""
        parts = [self.text]
        parts.extend(f"{k}: {v}" for k, v in self.fields.items())
        if self.table is not None:
            parts.append(render_table(self.table))
        if self.buttons:
            parts.append("  ".join(f"[{b.label}: `{b.typed()}`]" for b in self.buttons))
        if self.attachment is not None:
            parts.append(f"(attached: {self.attachment.filename})")
        return "\n".join(parts)


def render_table(table: Table) -> str:
    from tabulate import tabulate

    text = tabulate(table.rows, headers=table.columns, tablefmt="simple", disable_numparse=True)
    return text if table.note is None else f"{text}\n{table.note}"
