"""One person is one approver whatever id they use; a trigger's announcement channel is not
a way in; re-locking never frees the lock. Through the real dispatcher and store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.config import parse_config
from bot.errors import ConfigError
from bot.jobs.locks import LockKey
from bot.model import JobStatus, Origin, Outcome
from tests.conftest import demo_data
from tests.guardrails.conftest import BotFactory
from tests.guardrails.test_stored_plans import desired, finish, say


def with_people(data: dict[str, Any]) -> None:
    access = data["access"]
    access["people"] = {"alice": ["local:alice", "typetalk:alice", "slack:U0ALICE"]}
    del access["members"]["local:alice"]
    access["members"]["alice"] = ["sre"]


async def test_one_person_with_two_ids_cannot_approve_their_own_request(
    make_bot: BotFactory,
) -> None:
    bot = await make_bot(change=with_people)
    request = await say(bot, "local:alice", "scale out api production +2")
    assert request.outcome is Outcome.PENDING and request.request is not None, request.text
    assert "request R1 by alice (local:alice)" in request.text
    as_other_id = Origin(adapter="typetalk", channel="typetalk:topic/1", member="typetalk:alice")
    refused = await bot.dispatcher.handle(as_other_id, f"approve {request.request.id}")
    assert refused.outcome is Outcome.REFUSED, refused.text
    assert refused.text.splitlines()[0] == (
        f"you cannot approve your own request {request.request.ref} "
        "(as typetalk:alice; it was asked as local:alice)"
    )
    assert await desired(bot, "production") == 2
    approved = await say(bot, "local:bob", f"approve {request.request.id}")
    assert approved.outcome is Outcome.STARTED, approved.text
    assert await finish(bot, approved) is JobStatus.SUCCEEDED
    # A role given to the person holds for each of their ids; the records show both.
    jobs = await bot.dispatcher.handle(as_other_id, "jobs")
    assert jobs.messages[0].table is not None
    assert jobs.messages[0].table.rows[0][3] == "alice (local:alice)"
    history = await say(bot, "local:bob", "history --all")
    assert history.messages[0].table is not None
    who = [row[3] for row in history.messages[0].table.rows]
    assert "alice (typetalk:alice)" in who and "alice (local:alice)" in who
    audit = await bot.services.store.list_audit()
    assert {(a.person, a.member) for a in audit} >= {
        ("alice", "typetalk:alice"),
        ("alice", "local:alice"),
        ("local:bob", "local:bob"),
    }


def test_check_config_refuses_an_id_listed_under_two_people() -> None:
    data = demo_data()
    data["access"]["people"] = {
        "alice": ["local:alice", "typetalk:12345"],
        "bob": ["local:bob", "typetalk:12345"],
    }
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert (
        "access.people.bob: typetalk:12345 is already listed under alice; an id belongs to "
        "one person" in str(raised.value)
    )


def test_check_config_refuses_roles_for_an_unknown_person() -> None:
    data = demo_data()
    data["access"]["members"]["erin"] = ["sre"]
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert "access.members.erin: neither a member id" in str(raised.value)


def with_announcing_trigger(data: dict[str, Any]) -> None:
    data["triggers"] = [
        {
            "ci": "jenkins",
            "deploy": {"service": "api", "env": "staging"},
            "channels": ["slack:C0ANNOUNCE"],
        }
    ]


async def test_a_triggers_announcement_channel_does_not_accept_commands(
    make_bot: BotFactory,
) -> None:
    bot = await make_bot(change=with_announcing_trigger)
    announce = Origin(adapter="slack", channel="slack:C0ANNOUNCE", member="local:alice")
    refused = await bot.dispatcher.handle(announce, "scale out api staging +1")
    assert refused.outcome is Outcome.REFUSED, refused.text
    assert refused.text.splitlines()[0] == "commands are not accepted in slack:C0ANNOUNCE"
    assert await desired(bot, "staging") == 2
    # The trigger's own channel (its deliveries) and the configured channels still work.
    own = Origin(adapter="ci", channel="ci:jenkins", member="ci:jenkins")
    assert (await bot.dispatcher.handle(own, "status api staging")).outcome is Outcome.OK
    listed = Origin(adapter="slack", channel="slack:C0DEMO", member="local:alice")
    assert (await bot.dispatcher.handle(listed, "status api staging")).outcome is Outcome.OK


async def test_relocking_never_frees_the_lock_for_a_racing_member(
    make_bot: BotFactory, store_url: str
) -> None:
    bot = await make_bot(store_url)
    first = await say(bot, "local:alice", "lock api staging first")
    assert first.outcome is Outcome.OK, first.text
    key = LockKey("api", "staging")
    token = (await bot.kernel.locks.holder(key) or pytest.fail("not locked")).token
    for attempt in range(40):

        async def race(yields: int) -> Any:
            for _ in range(yields):
                await asyncio.sleep(0)
            return await say(bot, "local:bob", "lock api staging mine")

        relocked, raced = await asyncio.gather(
            say(bot, "local:alice", f"lock api staging reason {attempt}"), race(attempt % 8)
        )
        assert relocked.outcome is Outcome.OK, relocked.text
        assert raced.outcome is Outcome.REFUSED, raced.text
        assert raced.text.startswith("api/staging is locked by local:alice")
        holder = await bot.kernel.locks.holder(key)
        assert holder is not None and holder.owner == "local:alice"
        assert holder.reason == f"reason {attempt}" and holder.token == token
