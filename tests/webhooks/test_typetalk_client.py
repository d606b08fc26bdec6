"""The Typetalk chat adapter against the stand-in Typetalk API, over HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from adapters.chat.typetalk import MAX_CHARS, TypetalkChat, TypetalkError
from bot.messages import Button, Message, Table, Tone
from bot.model import Origin
from tests.support.recorder import Recorded
from tests.support.typetalk_api import TypetalkApi

TOKEN = "tt-client-test-token"
ORIGIN = Origin(
    adapter="typetalk", channel="typetalk:topic/42", member="typetalk:alice", thread="900"
)


@pytest.fixture
async def api() -> AsyncIterator[TypetalkApi]:
    stand_in = await TypetalkApi(TOKEN).start()
    try:
        yield stand_in
    finally:
        await stand_in.stop()


@pytest.fixture
async def chat(api: TypetalkApi) -> AsyncIterator[TypetalkChat]:
    adapter = TypetalkChat(
        api.url, SecretStr(TOKEN), bot_name="kajitori", retry_delays=(0.01, 0.01)
    )
    try:
        yield adapter
    finally:
        await adapter.close()


async def test_reply_posts_to_the_topic_as_a_reply_with_the_bot_token(
    api: TypetalkApi, chat: TypetalkChat
) -> None:
    await chat.reply(ORIGIN, Message(text="rolling out", tone=Tone.PROGRESS))

    [post] = api.posts
    assert (post.topic, post.reply_to, post.message) == (42, 900, "⏳ rolling out")
    [call] = api.calls("/api/v1/topics/42")
    assert call.headers["X-Typetalk-Token"] == TOKEN
    assert call.json == {"message": "⏳ rolling out", "replyTo": 900}


async def test_announce_starts_a_thread_that_follow_ups_reply_to(
    api: TypetalkApi, chat: TypetalkChat
) -> None:
    thread = await chat.announce("typetalk:topic/7", Message(text="release v2 published"))
    await chat.reply(thread, Message(text="deployed", tone=Tone.SUCCESS))

    head, follow_up = api.posts
    assert head.reply_to is None
    assert thread.thread == str(head.id)
    assert follow_up.reply_to == head.id
    assert follow_up.message == "✅ deployed"


async def test_a_busy_typetalk_is_tried_again_and_the_message_posted_once(
    api: TypetalkApi, chat: TypetalkChat
) -> None:
    answers = iter([503, 429])

    def busy_then_fine(recorded: Recorded) -> Any:
        status = next(answers, None)
        if status is not None:
            return web.json_response({"error": "busy"}, status=status)
        return api._post_message(recorded)

    api.responders["/api/v1/topics/42"] = busy_then_fine

    await chat.reply(ORIGIN, Message(text="once"))

    assert len(api.calls("/api/v1/topics/42")) == 3
    assert [p.message for p in api.posts] == ["once"]


async def test_a_refused_post_raises_for_the_notifier_to_log(api: TypetalkApi) -> None:
    wrong = TypetalkChat(api.url, SecretStr("not-the-token"))
    try:
        with pytest.raises(TypetalkError, match="HTTP 401"):
            await wrong.reply(ORIGIN, Message(text="hello"))
    finally:
        await wrong.close()
    assert api.posts == []


async def test_long_messages_go_in_parts_typetalk_accepts(
    api: TypetalkApi, chat: TypetalkChat
) -> None:
    rows = [[f"i-{n:05d}", "t3.medium", "running"] for n in range(400)]
    table = Table(columns=["instance", "type", "state"], rows=rows)

    await chat.reply(ORIGIN, Message(text="instances", table=table))

    assert len(api.posts) > 1
    assert all(len(p.message) <= MAX_CHARS and p.reply_to == 900 for p in api.posts)
    assert all(p.message.count("```") % 2 == 0 for p in api.posts)
    text = "".join(p.message for p in api.posts)
    assert all(f"i-{n:05d}" in text for n in range(400))


async def test_private_answers_never_reach_the_topic(api: TypetalkApi, chat: TypetalkChat) -> None:
    secret = Message(text="user tmp_alice password Zq8-secret", private=True)

    await chat.reply(ORIGIN, secret)

    [post] = api.posts
    assert "Zq8-secret" not in post.message
    assert "typetalk:alice" in post.message
    assert "shell or Slack" in post.message


async def test_request_buttons_become_mentions_to_type(
    api: TypetalkApi, chat: TypetalkChat
) -> None:
    buttons = [
        Button(action="approve", request_id="3", label="Approve"),
        Button(action="deny", request_id="3", label="Deny"),
    ]

    await chat.reply(ORIGIN, Message(text="needs approval", tone=Tone.WARNING, buttons=buttons))

    [post] = api.posts
    assert "Approve: `@kajitori+ approve 3`" in post.message
    assert "Deny: `@kajitori+ deny 3`" in post.message
