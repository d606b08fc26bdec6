"""Many jobs in one channel against a stand-in Slack that enforces Slack's rate limits
(sped up): nothing is lost, limits are honoured, and people go before routine progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.bootstrap import Bot, build_bot
from adapters.chat.slack.chat import SlackChat
from bot.config import Settings, parse_config
from bot.jobs.context import JobContext
from bot.messages import Message, Tone
from bot.model import JobStatus, Origin
from bot.plan import Plan
from tests.slack.conftest import BOT_TOKEN, slack_config
from tests.support.fake_slack import CHANNEL, FakeSlack, SlackLimits

# Slack's limits ten times faster, so that the test takes seconds, not minutes.
SPEED = 10.0
ORIGIN = Origin(adapter="slack", channel=f"slack:{CHANNEL}", member="slack:U0ALICE")
JOBS = 30
LINES = 4

BotFactory = Callable[[FakeSlack, float], Awaitable[Bot]]


@pytest.fixture
async def limited_slack() -> AsyncIterator[FakeSlack]:
    slack = await FakeSlack(SlackLimits(speed=SPEED)).start()
    try:
        yield slack
    finally:
        await slack.stop()


@pytest.fixture
async def slack_bot(tmp_path: Path) -> AsyncIterator[BotFactory]:
    built: list[Bot] = []

    async def build(fake: FakeSlack, post_rate: float) -> Bot:
        data = slack_config(tmp_path)
        data["store"] = "sqlite://:memory:"
        data["slack"] = {"command": "/ops", "post_rate": post_rate, "post_burst": 3}
        data["slack"]["updates_per_minute"] = 50 * SPEED
        settings = Settings(
            slack_bot_token=SecretStr(BOT_TOKEN),
            slack_api_url=fake.api_url,
            aws_endpoint_url="http://127.0.0.1:9",
        )
        bot = await build_bot(parse_config(data), settings, runner="test")
        built.append(bot)
        return bot

    yield build
    for bot in built:
        await bot.close()


def reporting_job(number: int) -> Plan:
    async def run(job: JobContext) -> Message:
        for line in range(LINES):
            await job.progress(f"job {number} step {line}")
        return Message(text=f"job {number} done")

    return Plan(title=f"task {number}", changes=[], run=run, kind="test", state={})


async def run_jobs(bot: Bot, count: int) -> list[JobStatus]:
    records = await asyncio.gather(
        *(
            bot.jobs.start(reporting_job(n), origin=ORIGIN, command=f"task {n}")
            for n in range(count)
        )
    )
    return list(await asyncio.gather(*(bot.jobs.wait(r.id) for r in records)))


def slack_chat(bot: Bot) -> SlackChat:
    assert bot.slack is not None
    return bot.slack.chat


def texts(fake: FakeSlack) -> list[str]:
    return [p.text for p in fake.posted]


async def test_thirty_jobs_in_one_channel_stay_within_the_limit_and_lose_nothing(
    limited_slack: FakeSlack, slack_bot: BotFactory
) -> None:
    # A little under Slack's pace, and a smaller burst than Slack tolerates (the default).
    bot = await slack_bot(limited_slack, SPEED * 0.8)
    statuses = await run_jobs(bot, JOBS)

    assert statuses == [JobStatus.SUCCEEDED] * JOBS
    # Final messages told together in the channel follow in their threads, with the lines
    # that waited there, as routine progress does: wait for the last of them.
    everything = {f"job {n} step {line}" for n in range(JOBS) for line in range(LINES)}
    await limited_slack.wait_for(
        lambda: all(line in "\n".join(texts(limited_slack)) for line in everything)
    )
    posted = "\n".join(texts(limited_slack))
    # Every job's final message and every progress line arrived (lines may share a post).
    for n in range(JOBS):
        assert f"job {n} done" in posted
        for line in range(LINES):
            assert f"job {n} step {line}" in posted
    # Paced at the channel's rate: Slack never had to say 429.
    assert limited_slack.rate_limited == []
    assert slack_chat(bot).pacer.rate_limited == 0
    # Progress lines waiting in a thread went out together: fewer posts than lines.
    assert len(limited_slack.posted) < JOBS * (LINES + 2)


async def test_a_bot_faster_than_slack_waits_out_every_429_and_loses_nothing(
    limited_slack: FakeSlack, slack_bot: BotFactory
) -> None:
    # Configured at five times what the stand-in accepts: Slack answers 429 again and again.
    bot = await slack_bot(limited_slack, SPEED * 5)
    statuses = await run_jobs(bot, JOBS)

    assert statuses == [JobStatus.SUCCEEDED] * JOBS
    assert limited_slack.rate_limited, "the stand-in should have rate-limited the bot"
    posted = "\n".join(texts(limited_slack))
    for n in range(JOBS):
        assert f"job {n} done" in posted
    # Each thread kept its order: the final message after the job's last progress line.
    for n in range(JOBS):
        order = [t for t in texts(limited_slack) if f"job {n} " in t]
        assert f"job {n} done" in order[-1]


async def test_an_answer_to_a_person_goes_before_routine_progress(
    limited_slack: FakeSlack, slack_bot: BotFactory
) -> None:
    bot = await slack_bot(limited_slack, SPEED)
    chat = slack_chat(bot)
    # Fill the channel's queue with progress in many threads, then answer a person.
    threads = [ORIGIN.in_thread(f"1700000000.{n:06d}") for n in range(40)]
    for n, thread in enumerate(threads):
        await chat.reply(thread, Message(text=f"progress {n}", tone=Tone.PROGRESS))
    await chat.reply(ORIGIN, Message(text="request R1 needs approval", tone=Tone.WARNING))
    await limited_slack.wait_for(lambda: len(limited_slack.posted) == len(threads) + 1)

    order = texts(limited_slack)
    answer = next(i for i, t in enumerate(order) if "needs approval" in t)
    after = [t for t in order[answer:] if "progress" in t]
    assert len(after) > len(threads) // 2, order


async def test_final_messages_waiting_together_go_out_in_one_post_and_then_in_each_thread(
    limited_slack: FakeSlack, slack_bot: BotFactory
) -> None:
    bot = await slack_bot(limited_slack, SPEED)
    chat = slack_chat(bot)
    threads = [
        await chat.start_thread(ORIGIN, Message(text=f"task {n}: job J{n} started"))
        for n in range(8)
    ]
    heads = {t.thread for t in threads}
    # The channel is busy: answers to people wait in its queue before any progress.
    busy = [
        asyncio.create_task(chat.reply(ORIGIN, Message(text=f"answer {n}", tone=Tone.INFO)))
        for n in range(6)
    ]
    for n, thread in enumerate(threads):
        for line in range(3):
            await chat.reply(thread, Message(text=f"task {n} step {line}", tone=Tone.PROGRESS))
    await asyncio.gather(
        *(
            chat.reply(thread, Message(text=f"task {n} done", tone=Tone.SUCCESS))
            for n, thread in enumerate(threads)
        ),
        *busy,
    )

    # Eight jobs ended while the channel was busy: their endings waited together, and went
    # out together as soon as the channel had room, each under the head of its job.
    together = [
        p for p in limited_slack.posted if p.thread_ts is None and "jobs ended" in p.block_text()
    ]
    told = "\n".join(p.block_text() for p in together)
    for n in range(8):
        assert f"task {n} done" in told and f"task {n}: job J{n} started" in told
    assert len(together) < 8 and chat.pacer.told_together == 8
    # Then each thread got its own final message, carrying the lines that waited, in order.
    await limited_slack.wait_for(
        lambda: all(limited_slack.in_thread(str(t.thread)) for t in threads)
    )
    assert limited_slack.rate_limited == []
    for n, thread in enumerate(threads):
        (final,) = limited_slack.in_thread(str(thread.thread))
        assert final.text.startswith(f"✅ task {n} done")
        shown = final.block_text()
        where = [shown.index(f"task {n} step {line}") for line in range(3)]
        assert where == sorted(where) and where[-1] < shown.index(f"task {n} done")
    in_threads = [p for p in limited_slack.posted if p.thread_ts in heads]
    assert len(in_threads) == len(threads)
    assert chat.pacer.folded == len(threads)


async def test_a_final_too_big_to_carry_the_waiting_lines_follows_them_in_order(
    limited_slack: FakeSlack, slack_bot: BotFactory
) -> None:
    bot = await slack_bot(limited_slack, SPEED)
    chat = slack_chat(bot)
    thread = await chat.start_thread(ORIGIN, Message(text="task 1: job J1 started"))
    for line in range(3):
        await chat.reply(thread, Message(text=f"step {line} " + "y" * 2900, tone=Tone.PROGRESS))
    # The lines and the final message together are more than one Slack message takes.
    await chat.reply(thread, Message(text="done\n" + "x" * 4000, tone=Tone.SUCCESS))

    posts = limited_slack.in_thread(str(thread.thread))
    assert [p.text.split("\n")[0] for p in posts][-1].startswith("✅ done")
    assert "step 0" in posts[0].block_text() and "step 2" in posts[0].block_text()
    assert len(posts) == 2 and chat.pacer.folded == 0


async def test_final_messages_at_the_channel_pace_leave_no_room_for_progress_posts(
    limited_slack: FakeSlack, slack_bot: BotFactory
) -> None:
    # Half the stand-in's pace: every post waits for the channel's budget, never for a 429.
    bot = await slack_bot(limited_slack, SPEED / 2)
    chat = slack_chat(bot)
    threads = [
        await chat.start_thread(ORIGIN, Message(text=f"task {n}: job J{n} started"))
        for n in range(6)
    ]
    for n, thread in enumerate(threads):
        await chat.reply(thread, Message(text=f"task {n} halfway", tone=Tone.PROGRESS))
    # Jobs ending one after another, each as soon as the previous final message went out:
    # the channel runs at its pace for people, and progress gets no spare post.
    for n, thread in enumerate(threads):
        await chat.reply(thread, Message(text=f"task {n} done", tone=Tone.SUCCESS))

    assert limited_slack.rate_limited == []
    for n, thread in enumerate(threads):
        (final,) = limited_slack.in_thread(str(thread.thread))
        assert final.text.startswith(f"✅ task {n} done")
        assert f"task {n} halfway" in final.block_text()


async def test_progress_goes_out_on_its_own_when_the_channel_has_room(
    limited_slack: FakeSlack, slack_bot: BotFactory
) -> None:
    bot = await slack_bot(limited_slack, SPEED)
    chat = slack_chat(bot)
    thread = await chat.start_thread(ORIGIN, Message(text="task 1: job J1 started"))
    await chat.reply(thread, Message(text="task 1 halfway", tone=Tone.PROGRESS))
    await limited_slack.wait_for(lambda: len(limited_slack.in_thread(str(thread.thread))) == 1)
    await chat.reply(thread, Message(text="task 1 done", tone=Tone.SUCCESS))

    posts = limited_slack.in_thread(str(thread.thread))
    assert [p.text for p in posts] == ["⏳ task 1 halfway", "✅ task 1 done"]
    # An ending that waits alone goes to its thread only.
    assert chat.pacer.told_together == 0


async def test_a_job_works_while_its_head_waits_for_the_channel_and_its_thread_keeps_order(
    limited_slack: FakeSlack, slack_bot: BotFactory
) -> None:
    bot = await slack_bot(limited_slack, SPEED / 2)
    # The channel is busy: twenty answers to people wait before the job's head.
    busy = [
        asyncio.create_task(slack_chat(bot).reply(ORIGIN, Message(text=f"answer {n}")))
        for n in range(20)
    ]
    heads_when_it_worked: list[int] = []

    async def run(job: JobContext) -> Message:
        heads_when_it_worked.append(len(limited_slack.heads()))
        for line in range(3):
            await job.progress(f"step {line}")
        return Message(text="work done")

    record = await bot.jobs.start(
        Plan(title="task 1", changes=[], run=run, kind="test", state={}),
        origin=ORIGIN,
        command="task 1",
    )
    assert await bot.jobs.wait(record.id) is JobStatus.SUCCEEDED
    await asyncio.gather(*busy)

    # The work did not wait for the head; what it said meanwhile followed the head, in order.
    assert heads_when_it_worked == [0]
    (head,) = limited_slack.heads()
    assert head.text.startswith("task 1: job J")
    shown = "\n".join(p.block_text() for p in limited_slack.in_thread(head.ts))
    where = [shown.index(text) for text in ("step 0", "step 1", "step 2", "work done")]
    assert where == sorted(where)
