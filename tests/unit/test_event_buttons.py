"""Suggested commands on an event's message: Slack gets one button per command (its value
the command), the plain text and Typetalk the exact command to type."""

from __future__ import annotations

from adapters.chat.slack.blocks import COMMANDS_BLOCK_ID, RUN_ACTION, SUGGEST_ACTION, message_blocks
from adapters.chat.typetalk import render
from bot.messages import Button, Message


def alarm_message() -> Message:
    return Message(
        text="ALARM api-5xx-production · api in production",
        buttons=[
            Button(
                action="suggest",
                label="scale out api production +2",
                command="scale out api production +2",
            ),
            Button(
                action="run",
                label="Run: rollback api production",
                command="rollback api production",
            ),
        ],
    )


def test_slack_renders_one_button_per_suggested_command() -> None:
    actions = [b for b in message_blocks(alarm_message()) if b.get("block_id") == COMMANDS_BLOCK_ID]
    assert len(actions) == 1
    elements = actions[0]["elements"]
    assert [e["value"] for e in elements] == [
        "scale out api production +2",
        "rollback api production",
    ]
    assert elements[0]["action_id"] == f"{SUGGEST_ACTION}:0"
    assert elements[1]["action_id"] == f"{RUN_ACTION}:1"


def test_typetalk_and_plain_text_show_the_command_to_type() -> None:
    message = alarm_message()
    assert "`scale out api production +2`" in message.plain()
    assert "`@kajitori+ rollback api production`" in render(message, "kajitori")
