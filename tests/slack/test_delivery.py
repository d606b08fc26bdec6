"""Answers that reach their member whatever the channel, and whatever their size, against
the stand-in Slack Web API: through the real `kajitori serve` for a channel the bot is not
in, and through the Slack chat port for answers too big for one message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from adapters.chat.slack.blocks import MAX_BLOCKS, MESSAGE_CHARS, block_size
from adapters.chat.slack.chat import SlackChat
from bot.messages import Button, Message, Table
from bot.model import Origin
from tests.slack.conftest import BOT_TOKEN, SIGNING_SECRET, slack_config
from tests.support.fake_slack import CHANNEL, FakeSlack, SlackSender
from tests.support.serve import ServeProcess

PRIVATE = "C0PRIVATE"


@pytest.fixture
async def private_serve(
    sandbox: Any, fake_slack: FakeSlack, tmp_path: Path
) -> AsyncIterator[SlackSender]:
    """`kajitori serve` accepting commands from a private channel the bot was never invited to."""
    config = slack_config(tmp_path)
    config["access"]["channels"].append(f"slack:{PRIVATE}")
    fake_slack.not_member_of.add(PRIVATE)
    process = ServeProcess(
        config,
        {
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": fake_slack.api_url,
            "AWS_ENDPOINT_URL": sandbox.url,
        },
        tmp_path,
    )
    await process.start()
    try:
        yield SlackSender(process.url, SIGNING_SECRET, fake_slack.url)
    finally:
        await process.stop()


async def test_an_answer_in_a_channel_the_bot_is_not_in_goes_through_the_response_url(
    private_serve: SlackSender, fake_slack: FakeSlack
) -> None:
    body = private_serve.slash_body("status api staging", channel=PRIVATE)
    hook = body["response_url"].rsplit("/", 1)[1]
    status, _ = await private_serve.send_form(body)
    assert status == 200

    await fake_slack.wait_for(lambda: bool(fake_slack.hook_posts(hook)))
    answer = fake_slack.hook_posts(hook)[0]
    assert answer["response_type"] == "in_channel"
    assert "api in staging" in answer["text"]
    # A command's answer goes through its response_url first: nothing was posted at all.
    assert fake_slack.calls("chat.postMessage") == []
    assert fake_slack.posted == []


async def test_without_a_usable_response_url_the_answer_is_a_direct_message(
    private_serve: SlackSender, fake_slack: FakeSlack
) -> None:
    fake_slack.api.responders["/expired/1"] = lambda _r: web.Response(
        status=404, text="expired_url"
    )
    body = private_serve.slash_body("status api staging", channel=PRIVATE)
    body["response_url"] = f"{fake_slack.url}/expired/1"
    status, _ = await private_serve.send_form(body)
    assert status == 200

    await fake_slack.wait_for(lambda: any(p.channel == "DU0ALICE" for p in fake_slack.posted))
    opened = fake_slack.calls("conversations.open")
    assert [c["users"] for c in opened] == ["U0ALICE"]
    direct = next(p for p in fake_slack.posted if p.channel == "DU0ALICE")
    assert "api in staging" in direct.text
    assert f"I am not a member of channel {PRIVATE}" in direct.text


async def test_a_job_from_a_channel_the_bot_is_not_in_runs_its_thread_in_a_direct_message(
    private_serve: SlackSender, fake_slack: FakeSlack
) -> None:
    body = private_serve.slash_body("deploy api staging v2", channel=PRIVATE)
    status, _ = await private_serve.send_form(body)
    assert status == 200

    await fake_slack.wait_for(lambda: len(fake_slack.heads()) == 1)
    head = fake_slack.heads()[0]
    assert head.channel == "DU0ALICE" and "deploy api v2 to staging" in head.text

    def finished() -> bool:
        return any(p.text.startswith("✅") for p in fake_slack.in_thread(head.ts))

    await fake_slack.wait_for(finished, timeout=60)
    assert all(p.channel == "DU0ALICE" for p in fake_slack.in_thread(head.ts))


# -- answers too big for one message ----------------------------------------------------------

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


def _within_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    assert sum(block_size(b) for b in blocks) <= MESSAGE_CHARS
    for block in blocks:
        text = block.get("text", {}).get("text", "")
        assert len(text) <= 3000


async def test_a_long_answer_is_split_into_messages_slack_accepts_in_order(
    chat: SlackChat, fake_slack: FakeSlack
) -> None:
    lines = [f"line {i:03d} " + "x" * 300 for i in range(120)]  # about 37,000 characters
    buttons = [
        Button(action="approve", request_id="9", label="Approve"),
        Button(action="deny", request_id="9", label="Deny"),
    ]
    await chat.reply(ORIGIN, Message(text="\n".join(lines), buttons=buttons))

    posts = fake_slack.posted
    assert len(posts) >= 4
    for post in posts:
        _within_limits(post.blocks)
    shown = "\n".join(b["text"]["text"] for p in posts for b in p.blocks if b["type"] == "section")
    assert [line for line in shown.splitlines() if line.startswith("line")] == lines
    assert posts[1].text == f"(continued, 2/{len(posts)})"
    # The buttons come last, and deciding replaces them there.
    assert [b["type"] for b in posts[-1].blocks][-1] == "actions"
    await chat.close_request("9", "✅ approved by <@U0BOB>")
    assert fake_slack.updates_of(posts[-1].ts)


async def test_a_long_table_is_cut_to_one_message_and_attached_whole_as_a_csv_file(
    chat: SlackChat, fake_slack: FakeSlack
) -> None:
    rows = [[f"quota-{i}", f"{i}", f"{i * 2}"] for i in range(600)]
    table = Table(columns=["quota", "used", "limit"], rows=rows)
    await chat.reply(ORIGIN, Message(text="limits in staging", table=table))

    assert len(fake_slack.posted) == 1
    answer = fake_slack.posted[0]
    _within_limits(answer.blocks)
    text = json.dumps(answer.blocks, ensure_ascii=False)
    assert "quota-0 " in text and "quota-599" not in text
    assert "rows shown; all of them are in limits-in-staging.csv" in text
    uploaded = fake_slack.uploads()
    assert len(uploaded) == 1
    csv_lines = uploaded[0].decode().splitlines()
    assert csv_lines[0] == "quota,used,limit" and csv_lines[-1] == "quota-599,599,1198"
    assert len(csv_lines) == 601
    completed = fake_slack.calls("files.completeUploadExternal")[0]
    assert (completed["channel_id"], completed["thread_ts"]) == (CHANNEL, answer.ts)


async def test_a_long_private_answer_is_split_too_and_stays_private(
    chat: SlackChat, fake_slack: FakeSlack
) -> None:
    lines = [f"row {i:03d} " + "y" * 300 for i in range(100)]
    origin = ORIGIN.model_copy(update={"extra": {"response_url": f"{fake_slack.url}/hooks/p"}})
    await chat.reply(origin, Message(text="\n".join(lines), private=True))

    posts = fake_slack.hook_posts("p")
    assert len(posts) >= 3
    for post in posts:
        assert post["response_type"] == "ephemeral"
        _within_limits(post["blocks"])
    shown = "\n".join(b["text"]["text"] for p in posts for b in p["blocks"])
    assert [line for line in shown.splitlines() if line.startswith("row")] == lines
    assert fake_slack.posted == []
