"""Block Kit rendering, Slack markup, delivery keys and status lines, without a server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from adapters.chat.slack.blocks import (
    FIELDS_PER_SECTION,
    MAX_BLOCKS,
    SECTION_LIMIT,
    fallback_text,
    message_blocks,
    with_status,
    without_request_actions,
)
from adapters.chat.slack.payloads import (
    action_key,
    command_text,
    event_key,
    mention_origin,
    slash_command_key,
    slash_command_origin,
)
from adapters.chat.slack.status_line import StatusLines
from bot.messages import Button, Message, Table, Tone


def _texts(blocks: list[dict[str, object]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]  # type: ignore[index]


def test_fields_become_section_fields_ten_at_a_time() -> None:
    fields = {f"key{i}": f"value{i}" for i in range(13)}
    blocks = message_blocks(Message(text="api in staging", fields=fields))
    sections = [b for b in blocks if "fields" in b]
    assert [len(s["fields"]) for s in sections] == [FIELDS_PER_SECTION, 3]
    assert sections[0]["fields"][0]["text"] == "*key0*\nvalue0"


def test_text_is_escaped_and_split_to_fit_sections() -> None:
    long = "\n".join(f"line {i} <b> & co" for i in range(600))
    blocks = message_blocks(Message(text=long, tone=Tone.FAILURE))
    texts = _texts(blocks)
    assert len(texts) > 1 and all(len(t) <= SECTION_LIMIT for t in texts)
    assert texts[0].startswith("❌ line 0 &lt;b&gt; &amp; co")
    assert "<b>" not in fallback_text(Message(text="<b>"))


def test_narrow_table_is_monospace_and_wide_table_is_a_list() -> None:
    narrow = Table(
        columns=["quota", "used", "limit"], rows=[["vCPU", "8", "64"]], note="ap-northeast-1"
    )
    blocks = message_blocks(Message(text="limits", table=narrow))
    grid = _texts(blocks)[1]
    assert grid.startswith("```") and grid.endswith("```") and "vCPU" in grid
    assert blocks[-1]["type"] == "context"

    columns = ["when", "kind", "version", "task definition", "by", "took", "outcome"]
    wide = Table(
        columns=columns, rows=[["06-01 10:00", "deploy", "v2", "api:2", "slack:U1", "1m", "ok"]]
    )
    blocks = message_blocks(Message(text="history", table=wide))
    assert blocks[1]["elements"][0]["text"] == " · ".join(columns)
    assert _texts(blocks)[1] == "• `06-01 10:00` deploy · v2 · api:2 · slack:U1 · 1m · ok"


def test_message_never_exceeds_fifty_blocks_and_keeps_its_buttons() -> None:
    rows = [[f"r{i}", "x" * 2900] for i in range(80)]
    buttons = [
        Button(action="approve", request_id="7", label="Approve"),
        Button(action="deny", request_id="7", label="Deny"),
    ]
    blocks = message_blocks(
        Message(text="big", table=Table(columns=["a", "b"], rows=rows), buttons=buttons)
    )
    assert len(blocks) == MAX_BLOCKS
    actions = blocks[-1]
    assert actions["type"] == "actions" and actions["block_id"] == "kajitori_request:7"
    assert [(e["action_id"], e["value"], e["style"]) for e in actions["elements"]] == [
        ("kajitori_approve", "7", "primary"),
        ("kajitori_deny", "7", "danger"),
    ]
    assert without_request_actions(blocks) == blocks[:-1]


def test_status_line_is_replaced_not_added() -> None:
    blocks = with_status(message_blocks(Message(text="deploy: job J1")), "⏳ running")
    blocks = with_status(blocks, "✅ done")
    lines = [b for b in blocks if b.get("block_id") == "kajitori_status"]
    assert len(lines) == 1 and lines[0]["elements"][0]["text"] == "✅ done"


def test_command_text_undoes_slack_markup() -> None:
    assert command_text("<@UKAJITORI> deploy api staging v2") == "deploy api staging v2"
    assert command_text("<@UKAJITORI|kajitori>, status api staging") == "status api staging"
    assert command_text("deploy web staging <http://v2.example.com|v2.example.com>") == (
        "deploy web staging v2.example.com"
    )
    assert (
        command_text("lock api staging “hot fix” &amp; &lt;db&gt;")
        == 'lock api staging "hot fix" & <db>'
    )


def test_origins_and_delivery_keys() -> None:
    slash = {
        "team_id": "T1",
        "channel_id": "C1",
        "user_id": "U1",
        "text": "jobs",
        "response_url": "https://hooks.slack.com/commands/1",
        "trigger_id": "1.2.abc",
    }
    origin = slash_command_origin(slash)
    assert (origin.adapter, origin.channel, origin.member, origin.thread) == (
        "slack",
        "slack:C1",
        "slack:U1",
        None,
    )
    assert origin.extra["response_url"] == "https://hooks.slack.com/commands/1"
    assert slash_command_key(slash) == slash_command_key(dict(slash))
    assert slash_command_key(slash) != slash_command_key({**slash, "trigger_id": "1.2.abd"})
    without_trigger = {k: v for k, v in slash.items() if k != "trigger_id"}
    assert slash_command_key(without_trigger) != slash_command_key(
        {**without_trigger, "response_url": "https://hooks.slack.com/commands/2"}
    )

    event: dict[str, Any] = {
        "team_id": "T1",
        "event_id": "Ev1",
        "event": {"channel": "C1", "user": "U1", "ts": "5.1"},
    }
    assert event_key(event) == "slack:event:Ev1"
    assert mention_origin(event).thread == "5.1"
    threaded = {**event, "event": {**event["event"], "thread_ts": "4.0"}}
    assert mention_origin(threaded).thread == "4.0"
    assert action_key({"trigger_id": "9.9.x"}) == "slack:action:9.9.x"


async def test_status_lines_coalesce_progress_and_always_end_with_the_final_line() -> None:
    sent: list[str] = []
    first_sent = asyncio.Event()

    async def send(_channel: str, _ts: str, _head: Message, line: Callable[[], str]) -> None:
        sent.append(line())
        first_sent.set()

    lines = StatusLines(send, min_interval=3600)
    head = Message(text="deploy: job J1")
    lines.progress("C1", "1.0", head, "⏳ step 1")
    await first_sent.wait()
    lines.progress("C1", "1.0", head, "⏳ step 2")
    lines.progress("C1", "1.0", head, "⏳ step 3")
    await lines.final("C1", "1.0", head, "✅ done")
    await lines.close()
    # Step 1 went at once; steps 2 and 3 waited for the interval and were overtaken.
    assert sent == ["⏳ step 1", "✅ done"]
