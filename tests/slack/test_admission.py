"""Acknowledgements first: how the work behind Slack's requests is admitted."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr

from adapters.bootstrap import build_bot, build_web_app
from adapters.chat.slack.admission import Admission
from adapters.chat.slack.app import SLACK_LISTENERS_KEY
from adapters.chat.slack.listeners import SlackListeners
from bot.config import Settings, parse_config
from tests.reliability.helpers import serving
from tests.slack.conftest import BOT_TOKEN, SIGNING_SECRET, slack_config
from tests.support.fake_slack import FakeSlack, SlackSender


async def _enter(
    admission: Admission,
    entered: list[int],
    n: int,
    release: asyncio.Event,
    member: str | None = None,
) -> None:
    async with admission.slot(member):
        entered.append(n)
        await release.wait()


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_at_most_limit_run_at_once_in_arrival_order() -> None:
    admission = Admission(limit=2, hold=3600)
    entered: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_enter(admission, entered, n, release)) for n in range(5)]
    await _settle()
    assert entered == [0, 1]
    release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3, 4]


async def test_new_work_waits_while_a_request_awaits_its_acknowledgement() -> None:
    admission = Admission(limit=8, patience=3600)
    entered: list[int] = []
    release = asyncio.Event()
    release.set()
    with admission.acknowledging():
        task = asyncio.create_task(_enter(admission, entered, 1, release))
        await _settle()
        assert entered == []
    await asyncio.wait_for(task, 5)
    assert entered == [1]


async def test_work_held_back_by_acknowledgements_starts_once_its_patience_runs_out() -> None:
    admission = Admission(limit=8, patience=0.05)
    entered: list[int] = []
    release = asyncio.Event()
    release.set()
    with admission.acknowledging():
        await asyncio.wait_for(_enter(admission, entered, 1, release), 5)
    assert entered == [1]


async def test_slow_work_gives_its_slot_back_after_hold() -> None:
    admission = Admission(limit=1, hold=0.05)
    entered: list[int] = []
    slow, quick = asyncio.Event(), asyncio.Event()
    quick.set()
    first = asyncio.create_task(_enter(admission, entered, 1, slow))
    await asyncio.wait_for(_enter(admission, entered, 2, quick), 5)
    assert entered == [1, 2] and not first.done()
    slow.set()
    await first


async def test_cancelled_waiter_leaves_no_slot_taken() -> None:
    admission = Admission(limit=1, hold=3600)
    entered: list[int] = []
    release = asyncio.Event()
    holder = asyncio.create_task(_enter(admission, entered, 1, release))
    waiter = asyncio.create_task(_enter(admission, entered, 2, release))
    await _settle()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    await asyncio.wait_for(_enter(admission, entered, 3, release), 5)
    assert entered == [1, 3]


async def test_no_room_once_backlog_pieces_of_work_wait_or_run() -> None:
    admission = Admission(limit=1, hold=3600, backlog=3)
    entered: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_enter(admission, entered, n, release)) for n in range(3)]
    await _settle()
    # One runs, two wait: the backlog is full, whatever runs or waits.
    assert entered == [0] and admission.pending == 3
    assert not admission.has_room()
    release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2]
    assert admission.pending == 0 and admission.has_room()


async def test_a_cancelled_waiter_frees_its_place_in_the_backlog() -> None:
    admission = Admission(limit=1, hold=3600, backlog=2)
    entered: list[int] = []
    release = asyncio.Event()
    holder = asyncio.create_task(_enter(admission, entered, 1, release))
    waiter = asyncio.create_task(_enter(admission, entered, 2, release))
    await _settle()
    assert not admission.has_room()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    assert admission.has_room()
    release.set()
    await holder


async def test_no_room_once_the_oldest_waiting_work_has_waited_max_wait() -> None:
    admission = Admission(limit=1, hold=3600, max_wait=0.05)
    entered: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_enter(admission, entered, n, release)) for n in range(2)]
    await _settle()
    # A burst just taken on: the one waiting has not waited long yet.
    assert entered == [0] and admission.has_room()
    await asyncio.sleep(0.1)
    assert not admission.has_room()
    release.set()
    await asyncio.gather(*tasks)
    assert admission.has_room()


async def test_no_room_once_the_work_waiting_would_take_max_wait_to_start_at_its_pace() -> None:
    # Work starts 20 a second (each gives its slot back after 0.05 s); a new piece may wait
    # up to 2 s.
    admission = Admission(limit=1, hold=0.05, max_wait=2.0)
    entered: list[int] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(_enter(admission, entered, n, release)) for n in range(100)]
    await _settle()
    # A burst from idle is taken on while no pace is known yet.
    assert admission.has_room()
    await asyncio.sleep(1.2)
    # About 24 started and 76 wait: at 20 a second the last of them starts in nearly 4 s,
    # though none has waited 2 s yet.
    assert 10 < len(entered) < 60
    assert not admission.has_room()
    release.set()
    await asyncio.gather(*tasks)
    assert admission.has_room()


async def test_past_its_bounds_a_member_with_no_work_waiting_is_still_taken_on() -> None:
    admission = Admission(backlog=1)
    release = asyncio.Event()
    entered: list[int] = []
    alice = asyncio.create_task(_enter(admission, entered, 1, release, member="slack:UA"))
    await _settle()
    assert not admission.has_room()
    assert not admission.has_room("slack:UA")
    assert admission.has_room("slack:UB")
    bob = asyncio.create_task(_enter(admission, entered, 2, release, member="slack:UB"))
    await _settle()
    assert entered == [1, 2]
    assert admission.pending == 2
    assert not admission.has_room("slack:UB")
    assert not admission.has_room("slack:UA")
    release.set()
    await asyncio.gather(alice, bob)
    assert admission.pending == 0
    assert admission.has_room() and admission.has_room("slack:UA")


# -- refused in the acknowledgement, through the real server ---------------------------


@contextlib.asynccontextmanager
async def _busy_server(
    sandbox: Any, fake_slack: FakeSlack, tmp_path: Path
) -> AsyncIterator[tuple[SlackSender, SlackListeners]]:
    """The real server in this process, with one slot of room for work, taken."""
    settings = Settings(
        slack_signing_secret=SecretStr(SIGNING_SECRET),
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_api_url=fake_slack.api_url,
        aws_endpoint_url=sandbox.url,
    )
    bot = await build_bot(parse_config(slack_config(tmp_path)), settings, runner="test")
    release = asyncio.Event()
    try:
        app = build_web_app(bot)
        listeners = app[SLACK_LISTENERS_KEY]
        listeners.admission = Admission(backlog=1)
        holder = asyncio.create_task(
            _enter(listeners.admission, [], 0, release, member="slack:U0ALICE")
        )
        await _settle()
        assert not listeners.admission.has_room("slack:U0ALICE")
        async with serving(bot, settings, app=app) as url:
            yield SlackSender(url, SIGNING_SECRET, fake_slack.url), listeners
        release.set()
        await holder
    finally:
        release.set()
        await bot.close()


async def test_a_signed_slash_command_past_capacity_is_refused_in_its_acknowledgement(
    sandbox: Any, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    async with _busy_server(sandbox, fake_slack, tmp_path) as (sender, listeners):
        status, body = await sender.slash("deploy api staging v2")
        assert status == 200
        answer = json.loads(body)
        assert answer["response_type"] == "ephemeral"
        assert "kajitori is busy" in answer["text"]
        assert "`/ops deploy api staging v2` was not run" in answer["text"]
        # A repeated field reads as bolt reads it: the last one.
        form = sender.slash_body("status") | {"text": "status"}
        status, body = await sender.send(
            urlencode(form) + "&text=history", "application/x-www-form-urlencoded"
        )
        assert "`/ops history` was not run" in json.loads(body)["text"]
        # Unsigned, or signed with another secret: bolt's 401, whatever the load.
        body_text = urlencode(sender.slash_body("deploy api staging v2"))
        status, _ = await sender.send(
            body_text,
            "application/x-www-form-urlencoded",
            headers=sender.sign(body_text, secret="not-the-secret"),
        )
        assert status == 401
        # Not a slash command (Slack's SSL check of the command URL): bolt answers it.
        ssl_check = urlencode({"ssl_check": "1", "token": "legacy-verification-token"})
        status, _ = await sender.send(ssl_check, "application/x-www-form-urlencoded")
        assert status == 200
        # Another member, with no work waiting, is taken on despite the load, and answered.
        status, body = await sender.slash("status api staging", user="U0BOB")
        assert (status, json.loads(body)) == (200, {"text": "", "response_type": "in_channel"})
        await fake_slack.wait_for(lambda: len(fake_slack.hook_posts()) == 1)
        await asyncio.sleep(0.2)
    # Of the busy member's commands, none ran and nothing was posted: they learnt why in the
    # acknowledgement.
    assert len(fake_slack.hook_posts()) == 1
    assert "api in staging" in json.dumps(fake_slack.hook_posts())
    assert listeners.admission.pending == 0
