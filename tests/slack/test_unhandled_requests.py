"""Every authentic request Slack sends gets a 2xx, handled or not: the events a workspace's
subscriptions bring besides `app_mention`, and interactions meant for nothing here. Without
one, Slack retries, and turns the app's event delivery off after enough failures.

The payloads are Slack's own shapes, copied from slack-bolt's test suite:
slackapi/bolt-python tests/scenario_tests_async/test_events.py (reaction_added_body,
message_file_share_body, member_joined_channel), test_message.py (message_body) and
test_shortcut.py (global_shortcut_body, message_shortcut_body).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.fake_slack import FakeSlack, SlackSender

REACTION_ADDED = {
    "token": "verification_token",
    "team_id": "T111",
    "enterprise_id": "E111",
    "api_app_id": "A111",
    "event": {
        "type": "reaction_added",
        "user": "W111",
        "item": {"type": "message", "channel": "C111", "ts": "1599529504.000400"},
        "reaction": "heart_eyes",
        "item_user": "W111",
        "event_ts": "1599616881.000800",
    },
    "type": "event_callback",
    "event_id": "Ev111",
    "event_time": 1599616881,
    "authed_users": ["W111"],
}

MESSAGE = {
    "token": "verification_token",
    "team_id": "T111",
    "enterprise_id": "E111",
    "api_app_id": "A111",
    "event": {
        "client_msg_id": "a8744611-0210-4f85-9f15-5faf7fb225c8",
        "type": "message",
        "text": "Hello World!",
        "user": "W111",
        "ts": "1596183880.004200",
        "team": "T111",
        "blocks": [
            {
                "type": "rich_text",
                "block_id": "ezJ",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [{"type": "text", "text": "Hello World!"}],
                    }
                ],
            }
        ],
        "channel": "C111",
        "event_ts": "1596183880.004200",
        "channel_type": "channel",
    },
    "type": "event_callback",
    "event_id": "Ev112",
    "event_time": 1596183880,
    "authed_users": ["W111"],
}

MESSAGE_FILE_SHARE = {
    "token": "verification-token",
    "team_id": "T111",
    "api_app_id": "A111",
    "event": {
        "type": "message",
        "text": "Here is your file!",
        "files": [
            {
                "id": "F111",
                "created": 1610493713,
                "timestamp": 1610493713,
                "name": "test.png",
                "title": "test.png",
                "mimetype": "image/png",
                "filetype": "png",
                "pretty_type": "PNG",
                "user": "U111",
                "editable": False,
                "size": 42706,
                "mode": "hosted",
                "is_external": False,
                "external_type": "",
                "is_public": False,
                "public_url_shared": False,
                "display_as_bot": False,
                "username": "",
                "url_private": "https://files.slack.com/files-pri/T111-F111/test.png",
                "permalink": "https://xxx.slack.com/files/U111/F111/test.png",
                "has_rich_preview": False,
            }
        ],
        "upload": False,
        "user": "U111",
        "display_as_bot": False,
        "ts": "1610493715.001000",
        "channel": "G111",
        "subtype": "file_share",
        "event_ts": "1610493715.001000",
        "channel_type": "group",
    },
    "type": "event_callback",
    "event_id": "Ev113",
    "event_time": 1610493715,
    "authorizations": [
        {
            "enterprise_id": None,
            "team_id": "T111",
            "user_id": "U111",
            "is_bot": True,
            "is_enterprise_install": False,
        }
    ],
    "is_ext_shared_channel": False,
    "event_context": "1-message-T111-G111",
}

MEMBER_JOINED_CHANNEL = {
    "token": "verification_token",
    "team_id": "T111",
    "enterprise_id": "E111",
    "api_app_id": "A111",
    "event": {
        "type": "member_joined_channel",
        "user": "W111",
        "channel": "C111",
        "channel_type": "C",
        "team": "T111",
        "inviter": "U222",
    },
    "type": "event_callback",
    "event_id": "Ev114",
    "event_time": 1599616881,
    "authed_users": ["W111"],
}

GLOBAL_SHORTCUT = {
    "type": "shortcut",
    "token": "verification_token",
    "action_ts": "111.111",
    "team": {
        "id": "T111",
        "domain": "workspace-domain",
        "enterprise_id": "E111",
        "enterprise_name": "Org Name",
    },
    "user": {"id": "W111", "username": "primary-owner", "team_id": "T111"},
    "callback_id": "test-shortcut",
    "trigger_id": "111.111.xxxxxx",
}

MESSAGE_SHORTCUT = {
    "type": "message_action",
    "token": "verification_token",
    "action_ts": "1583637157.207593",
    "team": {
        "id": "T111",
        "domain": "test-test",
        "enterprise_id": "E111",
        "enterprise_name": "Org Name",
    },
    "user": {"id": "W111", "name": "test-test"},
    "channel": {"id": "C111", "name": "dev"},
    "callback_id": "test-shortcut",
    "trigger_id": "111.222.xxx",
    "message_ts": "1583636382.000300",
    "message": {
        "client_msg_id": "zzzz-111-222-xxx-yyy",
        "type": "message",
        "text": "<@W222> test",
        "user": "W111",
        "ts": "1583636382.000300",
        "team": "T111",
    },
    "response_url": "https://hooks.slack.com/app/T111/111/xxx",
}


@pytest.mark.parametrize(
    "event",
    [REACTION_ADDED, MESSAGE, MESSAGE_FILE_SHARE, MEMBER_JOINED_CHANNEL],
    ids=lambda e: str(e["event"].get("subtype") or e["event"]["type"]),
)
async def test_an_event_nobody_listens_to_is_acknowledged_with_200_and_left_alone(
    sender: SlackSender, fake_slack: FakeSlack, event: dict[str, Any]
) -> None:
    status, _ = await sender.send_json(event)
    assert status == 200
    # Still answering, and the event changed nothing: a command right after is answered alone.
    await sender.slash("help")
    await fake_slack.wait_for(lambda: bool(fake_slack.said()))
    assert [text.split()[0] for text in fake_slack.said()] == ["commands"]


@pytest.mark.parametrize("shortcut", [GLOBAL_SHORTCUT, MESSAGE_SHORTCUT], ids=["global", "message"])
async def test_an_interaction_meant_for_nothing_here_is_acknowledged_with_200(
    sender: SlackSender, fake_slack: FakeSlack, shortcut: dict[str, Any]
) -> None:
    status, _ = await sender.send_form({"payload": json.dumps(shortcut)})
    assert status == 200
    assert fake_slack.posted == []


async def test_the_same_event_unsigned_is_still_refused(sender: SlackSender) -> None:
    body = json.dumps(REACTION_ADDED)
    status, _ = await sender.send(
        body, "application/json", headers=sender.sign(body, secret="not-the-secret")
    )
    assert status == 401
