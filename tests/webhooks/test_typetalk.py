"""Typetalk's outgoing webhook into the real `kajitori serve`, with a stand-in Typetalk API."""

from __future__ import annotations

import base64
import json
import re

import pytest

from adapters.chat.typetalk import MAX_CHARS
from tests.support.typetalk_api import TypetalkApi
from tests.webhooks.conftest import (
    PEOPLE_TOPIC,
    TYPETALK_SECRET,
    TYPETALK_TOKEN,
    Kajitori,
    module_server,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("fresh_world")]
kajitori = module_server([])


async def test_mention_runs_status_and_answers_in_the_response(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    status, answer = await kajitori.typetalk("alice", "@kajitori+ status api staging", 501)

    assert status == 200
    assert answer["replyTo"] == 501
    assert "api in staging (ECS staging/api)" in answer["message"]
    assert "version: v1 (sha256:" in answer["message"]
    assert "tasks: desired 2, running 2, pending 0" in answer["message"]
    assert typetalk_api.posts == []  # a quick answer needs no API call


async def test_request_without_the_shared_secret_is_refused_and_changes_nothing(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    for token in (None, "wrong-secret", TYPETALK_SECRET[:-1]):
        status, answer = await kajitori.typetalk(
            "bob", "@kajitori+ lock api staging", 502, token=token
        )
        assert status == 401
        assert "secret" in answer["error"]
    wrong_basic = {"Authorization": "Basic " + base64.b64encode(b"typetalk:nope").decode()}
    status, _ = await kajitori.typetalk(
        "bob", "@kajitori+ lock api staging", 504, token=None, headers=wrong_basic
    )
    assert status == 401
    # Nothing ran: api/staging is still free for anyone.
    status, answer = await kajitori.typetalk("alice", "@kajitori+ lock api staging", 505)
    assert status == 200
    assert "locked by typetalk:alice" in answer["message"]
    # The secret may also come as the password of HTTP Basic (`https://user:secret@host/`).
    basic = base64.b64encode(f"typetalk:{TYPETALK_SECRET}".encode()).decode()
    status, answer = await kajitori.typetalk(
        "alice",
        "@kajitori+ unlock api staging",
        506,
        token=None,
        headers={"Authorization": f"Basic {basic}"},
    )
    assert status == 200
    assert "unlocked" in answer["message"]


async def test_bad_bodies_get_a_clear_400(kajitori: Kajitori) -> None:
    url = f"/typetalk/webhook?token={TYPETALK_SECRET}"
    headers = {"Content-Type": "application/json"}

    status, answer = await kajitori.request(url, b"{not json", headers)
    assert status == 400
    assert "not JSON" in answer["error"]

    status, answer = await kajitori.request(url, b"[1, 2]", headers)
    assert status == 400
    assert "JSON object" in answer["error"]

    no_account = {"topic": {"id": 1}, "post": {"id": 7, "message": "@kajitori+ jobs"}}
    status, answer = await kajitori.request(url, json.dumps(no_account).encode(), headers)
    assert status == 400
    assert answer["error"].startswith("post.account")


async def test_a_poster_is_known_by_account_id_not_by_the_name_in_the_body(
    kajitori: Kajitori,
) -> None:
    # alice's account (101) posting with carol's name (an sre) in the body stays alice:
    # `typetalk:carol` in the config is resolved through the topic's members on the API.
    status, answer = await kajitori.typetalk(
        "carol", "@kajitori+ deploy api production v2", 520, account_id=101
    )
    assert status == 200
    assert "typetalk:alice lacks permission deploy:production" in answer["message"]


async def test_guardrails_answer_in_the_reply(kajitori: Kajitori) -> None:
    status, answer = await kajitori.typetalk("mallory", "@kajitori+ status api staging", 507)
    assert status == 200
    assert answer["replyTo"] == 507
    # Known by the account id: the name in the webhook's body proves nothing.
    assert "typetalk:666 is not a member" in answer["message"]

    status, answer = await kajitori.typetalk(
        "alice", "@kajitori+ status api staging", 508, topic=99
    )
    assert "not accepted in typetalk:topic/99" in answer["message"]

    status, answer = await kajitori.typetalk("alice", "@kajitori+ deploy api production v2", 509)
    assert "typetalk:alice lacks permission deploy:production" in answer["message"]

    status, answer = await kajitori.typetalk("alice", "@kajitori+ lock api", 510)
    assert "missing ENV" in answer["message"]
    assert "usage: lock SERVICE ENV [REASON...]" in answer["message"]


async def test_an_answer_past_typetalks_limit_is_split_in_parts(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    word = "x" * 6000  # echoed back in the error, so the answer is over 6,000 characters

    status, answer = await kajitori.typetalk("alice", f"@kajitori+ {word}", 511)

    assert status == 200
    assert answer["replyTo"] == 511
    assert len(answer["message"]) <= MAX_CHARS
    assert answer["message"].startswith("⚠️ unknown command")
    assert answer["message"].endswith("(1/2)")
    # The rest follows through the API, as a reply to the same post (the stand-in refuses
    # anything over 4,000 characters).
    [rest] = await typetalk_api.wait_for_posts(lambda posts: len(posts) == 1)
    assert rest.reply_to == 511
    assert rest.message.endswith("(2/2)")
    assert (answer["message"] + rest.message).count("x") == len(word)


async def test_deploy_posts_progress_and_result_as_replies_to_the_post(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    status, answer = await kajitori.typetalk("alice", "@kajitori+ deploy api staging v2", 601)

    assert status == 200
    assert answer["replyTo"] == 601
    match = re.search(r"deploy api v2 to staging: job J(\d+)", answer["message"])
    assert match, answer
    await typetalk_api.wait_for_posts(
        lambda posts: any("deployed api v2 to staging" in p.message for p in posts)
    )
    posts = typetalk_api.posts
    assert {(p.topic, p.reply_to) for p in posts} == {(PEOPLE_TOPIC, 601)}
    assert f"job J{match.group(1)} started by typetalk:alice" in posts[0].message
    assert any("ECS deployment" in p.message and "started" in p.message for p in posts)
    assert len(posts) >= 3  # head, progress, result
    assert all(
        r.headers.get("X-Typetalk-Token") == TYPETALK_TOKEN
        for r in typetalk_api.calls(f"/api/v1/topics/{PEOPLE_TOPIC}")
    )
    status, answer = await kajitori.typetalk("alice", "@kajitori+ status api staging", 602)
    assert "version: v2 (sha256:" in answer["message"]


async def test_protected_deploy_waits_for_a_second_member_who_answers_approve_id(
    kajitori: Kajitori, typetalk_api: TypetalkApi
) -> None:
    _, answer = await kajitori.typetalk("bob", "@kajitori+ deploy api production v2", 701)
    match = re.search(r"needs approval: request R(\d+)", answer["message"])
    assert match, answer
    request_id = match.group(1)
    assert f"`@kajitori+ approve R{request_id}`" in answer["message"]

    _, answer = await kajitori.typetalk("bob", f"@kajitori+ approve {request_id}", 702)
    assert "cannot approve your own request" in answer["message"]
    assert typetalk_api.posts == []  # nothing started

    _, answer = await kajitori.typetalk("carol", f"@kajitori+ approve {request_id}", 703)
    assert f"request R{request_id}" in answer["message"]
    assert "approved by typetalk:carol" in answer["message"]
    assert answer["replyTo"] == 703

    await typetalk_api.wait_for_posts(
        lambda posts: any("deployed api v2 to production" in p.message for p in posts)
    )
    # The job speaks under the request's post, where the requester asked.
    assert {p.reply_to for p in typetalk_api.posts} == {701}
    # Task definition names reach the chat whole (`api-production:2` is no `-p` password).
    assert any("api-production:2" in p.message for p in typetalk_api.posts)
