"""The Slack chat port against the fake Web API, in process: threads, status lines,
ephemeral answers and their fallbacks, files, and request buttons."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.chat.slack.chat import SlackChat
from bot.messages import Attachment, Button, Message, Tone
from bot.model import Origin
from tests.slack.conftest import BOT_TOKEN
from tests.support.fake_slack import CHANNEL, FakeSlack

ORIGIN = Origin(adapter="slack", channel=f"slack:{CHANNEL}", member="slack:U0ALICE")


@pytest.fixture
async def chat(fake_slack: FakeSlack) -> AsyncIterator[SlackChat]:
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url, session=session)
        adapter = SlackChat(client, session, status_interval=0)
        try:
            yield adapter
        finally:
            await adapter.close()


def _status(update: dict[str, object]) -> str:
    blocks = update["blocks"]
    assert isinstance(blocks, list)
    line = next(b for b in blocks if b.get("block_id") == "kajitori_status")
    return str(line["elements"][0]["text"])


async def test_job_thread_under_a_head_whose_status_line_ends_with_the_outcome(
    chat: SlackChat, fake_slack: FakeSlack
) -> None:
    thread = await chat.start_thread(
        ORIGIN.model_copy(update={"extra": {"response_url": "http://x/hooks/1"}}),
        Message(text="deploy api v2 to staging: job J7 started by slack:U0ALICE"),
    )
    head = fake_slack.posted[0]
    assert thread.thread == head.ts and thread.extra["head"] == head.ts
    assert "response_url" not in thread.extra  # it expires long before a job does
    assert _status({"blocks": head.blocks}) == "⏳ running"

    await chat.reply(thread, Message(text="2/2 running", tone=Tone.PROGRESS))
    await chat.reply(thread, Message(text="deployed api v2 to staging", tone=Tone.SUCCESS))
    # The progress line had not gone out yet when the job ended: it went in the final post.
    assert [p.thread_ts for p in fake_slack.posted[1:]] == [head.ts]
    final = fake_slack.posted[1]
    assert final.text.startswith("✅ deployed api v2 to staging")
    assert final.block_text().index("2/2 running") < final.block_text().index("deployed api")
    updates = fake_slack.updates_of(head.ts)
    assert updates and _status(updates[-1]) == "✅ deployed api v2 to staging"
    assert "job J7 started" in json.dumps(updates[-1]["blocks"])


async def test_private_answers_use_the_response_url_then_ephemeral_then_a_direct_message(
    chat: SlackChat, fake_slack: FakeSlack
) -> None:
    secret = Message(text="user kajitori_ro_1, password s3cr3t", private=True)
    with_url = ORIGIN.model_copy(update={"extra": {"response_url": f"{fake_slack.url}/hooks/a"}})
    await chat.reply(with_url, secret)
    assert fake_slack.hook_posts("a")[0]["response_type"] == "ephemeral"

    in_thread = ORIGIN.in_thread("1700000000.000100")
    await chat.reply(in_thread, secret)
    ephemeral = fake_slack.calls("chat.postEphemeral")[0]
    assert (ephemeral["user"], ephemeral["thread_ts"]) == ("U0ALICE", "1700000000.000100")

    fake_slack.api.responders["/api/chat.postEphemeral"] = lambda _r: {
        "ok": False,
        "error": "user_not_in_channel",
    }
    await chat.reply(in_thread, secret)
    direct = fake_slack.posted[-1]
    assert direct.channel == "U0ALICE" and "s3cr3t" in direct.text
    # Never in the channel.
    assert all(p.channel != CHANNEL for p in fake_slack.posted)


async def test_attachment_is_uploaded_into_the_thread_and_inlined_when_private(
    chat: SlackChat, fake_slack: FakeSlack
) -> None:
    fake_slack.api.responders["/api/files.getUploadURLExternal"] = lambda _r: {
        "ok": True,
        "upload_url": f"{fake_slack.url}/upload/F1",
        "file_id": "F1",
    }
    fake_slack.api.responders["/api/files.completeUploadExternal"] = lambda _r: {
        "ok": True,
        "files": [{"id": "F1"}],
    }
    csv = Attachment(filename="result.csv", content="id,name\n1,alice\n")
    await chat.reply(ORIGIN, Message(text="2 rows", attachment=csv))
    answer = fake_slack.posted[0]
    uploaded = fake_slack.api.calls("/upload/F1")[0]
    assert uploaded.body == csv.content.encode()
    completed = fake_slack.calls("files.completeUploadExternal")[0]
    assert (completed["channel_id"], completed["thread_ts"]) == (CHANNEL, answer.ts)

    await chat.reply(ORIGIN, Message(text="2 rows", attachment=csv, private=True))
    ephemeral = fake_slack.calls("chat.postEphemeral")[0]
    assert "1,alice" in json.dumps(ephemeral["blocks"])


async def test_announcement_heads_a_thread_and_request_buttons_can_be_closed(
    chat: SlackChat, fake_slack: FakeSlack
) -> None:
    origin = await chat.announce("slack:C0OPS", Message(text="release v3: deploying api"))
    assert (origin.channel, origin.thread) == ("slack:C0OPS", fake_slack.posted[0].ts)
    assert origin.extra["head"] == origin.thread

    buttons = [
        Button(action="approve", request_id="4", label="Approve"),
        Button(action="deny", request_id="4", label="Deny"),
    ]
    await chat.reply(ORIGIN, Message(text="deploy needs approval", buttons=buttons))
    request = fake_slack.posted[-1]
    await chat.close_request("4", "✅ approved by <@U0BOB>")
    update = fake_slack.updates_of(request.ts)[0]
    assert not any(b["type"] == "actions" for b in update["blocks"])
    assert update["blocks"][-1]["elements"][0]["text"] == "✅ approved by <@U0BOB>"
    # Closed once: a second decision has nothing left to replace.
    await chat.close_request("4", "❌ denied")
    assert len(fake_slack.updates_of(request.ts)) == 1
