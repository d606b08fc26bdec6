"""An alarm in chat, end to end: CloudWatch changes state, EventBridge's rule puts the event
on the queue, the bot posts it with one button per suggested command; a press runs the
command as the member who pressed, through every guardrail; the recovery edits the message
and is said in its thread; a flapping alarm keeps one message."""

from __future__ import annotations

from typing import Any

from adapters.bootstrap import Bot
from bot.model import JobStatus, Origin, Outcome
from tests.events.conftest import BotMaker, client, in_channel
from tests.support.chat import Posted, RecordingChat


def set_state(sandbox: Any, alarm: str, state: str, reason: str = "test") -> None:
    client(sandbox, "cloudwatch").set_alarm_state(
        AlarmName=alarm, StateValue=state, StateReason=reason
    )


def alarm_post(chat: RecordingChat, channel: str, alarm: str) -> Posted:
    posts = [p for p in chat.posted if p.origin.channel == channel and alarm in p.text]
    assert len(posts) == 1, [p.text for p in chat.posted]
    return posts[0]


def presser(post: Posted, member: str) -> Origin:
    """Where a member pressing a button on `post` answers: the post's thread."""
    return Origin(
        adapter=post.origin.adapter,
        channel="local",
        member=member,
        thread=post.origin.thread,
    )


def desired_count(sandbox: Any, env: str) -> int:
    ecs = client(sandbox, "ecs")
    return int(ecs.describe_services(cluster=env, services=["api"])["services"][0]["desiredCount"])


async def wait_job(bot: Bot, job_id: int) -> JobStatus:
    return await bot.jobs.wait(job_id)


async def test_alarm_is_posted_with_suggestions_and_an_sre_press_scales_out_staging(
    sandbox: Any, make_bot: BotMaker
) -> None:
    chat = RecordingChat()
    bot = await make_bot(chat=chat)
    set_state(sandbox, "api-5xx-staging", "ALARM", "Threshold Crossed: 42 5xx in a minute")
    await chat.wait_for(in_channel("local:staging", "ALARM api-5xx-staging"))
    post = alarm_post(chat, "local:staging", "api-5xx-staging")
    assert "api in staging" in post.text
    assert "Threshold Crossed: 42 5xx" in post.text
    assert "#alarmsV2:alarm/api-5xx-staging" in post.message.fields["console"]
    commands = [b.command for b in post.message.buttons]
    assert commands == ["scale out api staging +2", "rollback api staging"]
    assert all(b.action == "suggest" for b in post.message.buttons)

    # carol is a developer: she may not scale, and her press says so.
    refused = await bot.dispatcher.press(presser(post, "local:carol"), commands[0], run=False)
    assert refused.outcome is Outcome.REFUSED
    assert "scale" in refused.text
    assert desired_count(sandbox, "staging") == 2

    # alice (sre): the first press shows the dry run and a Run button, nothing changes.
    preview = await bot.dispatcher.press(presser(post, "local:alice"), commands[0], run=False)
    assert preview.outcome is Outcome.OK
    assert "dry run" in preview.text and "nothing was changed" in preview.text
    run_button = preview.messages[-1].buttons[0]
    assert (run_button.action, run_button.command) == ("run", "scale out api staging +2")
    assert desired_count(sandbox, "staging") == 2

    started = await bot.dispatcher.press(presser(post, "local:alice"), run_button.command, run=True)
    assert started.outcome is Outcome.STARTED and started.job is not None
    assert await wait_job(bot, started.job.id) is JobStatus.SUCCEEDED
    assert desired_count(sandbox, "staging") == 4
    audit = await bot.services.store.list_audit(limit=10)
    assert any(a.member == "local:alice" and a.text == "scale out api staging +2" for a in audit)
    assert any(a.member == "local:carol" and a.outcome == "refused" for a in audit)

    # The alarm recovers: its message is edited and the recovery is said in its thread.
    set_state(sandbox, "api-5xx-staging", "OK", "Threshold Crossed: 0 5xx")
    await chat.wait_for_edit(lambda edits: any("recovered" in e.text for e in edits))
    edit = chat.edits[-1]
    assert edit.origin.thread == post.origin.thread
    assert edit.text.startswith("✅") or "OK api-5xx-staging" in edit.text
    assert edit.message.buttons == []
    await chat.wait_for(
        lambda posted: any(
            p.origin.thread == post.origin.thread and "recovered at" in p.text for p in posted
        )
    )
    assert len([p for p in chat.posted if "api-5xx-staging" in p.text and p is not post]) == 1


async def test_a_press_in_production_waits_for_a_second_members_approval(
    sandbox: Any, make_bot: BotMaker
) -> None:
    chat = RecordingChat()
    bot = await make_bot(chat=chat)
    set_state(sandbox, "api-5xx-production", "ALARM")
    await chat.wait_for(in_channel("local:production", "ALARM api-5xx-production"))
    post = alarm_post(chat, "local:production", "api-5xx-production")
    command = post.message.buttons[0].command
    assert command == "scale out api production +2"

    preview = await bot.dispatcher.press(presser(post, "local:alice"), command, run=False)
    assert "would need approval" in preview.text
    pending = await bot.dispatcher.press(presser(post, "local:alice"), command, run=True)
    assert pending.outcome is Outcome.PENDING and pending.request is not None
    assert desired_count(sandbox, "production") == 2

    own = await bot.dispatcher.handle(presser(post, "local:alice"), f"approve {pending.request.id}")
    assert own.outcome is Outcome.REFUSED
    approved = await bot.dispatcher.handle(
        presser(post, "local:bob"), f"approve {pending.request.id}"
    )
    assert approved.outcome is Outcome.STARTED and approved.job is not None
    assert approved.job.member == "local:alice"
    assert await wait_job(bot, approved.job.id) is JobStatus.SUCCEEDED
    assert desired_count(sandbox, "production") == 4


async def test_a_flapping_alarm_posts_once_and_counts_in_its_message(
    sandbox: Any, make_bot: BotMaker
) -> None:
    chat = RecordingChat()
    await make_bot(chat=chat)
    for state in ("ALARM", "OK", "ALARM", "OK", "ALARM"):
        set_state(sandbox, "api-5xx-staging", state)
    await chat.wait_for_edit(lambda edits: any("back in ALARM 2 times" in e.text for e in edits))
    heads = [p for p in chat.posted if "ALARM api-5xx-staging" in p.text]
    assert len(heads) == 1
    # Each edit replaces that one message.
    assert {e.origin.thread for e in chat.edits} == {heads[0].origin.thread}
    last = chat.edits[-1]
    assert "ALARM api-5xx-staging" in last.text and last.message.buttons


async def test_an_alarm_of_no_environment_goes_to_the_default_channel(
    sandbox: Any, make_bot: BotMaker
) -> None:
    chat = RecordingChat()
    await make_bot(chat=chat)
    client(sandbox, "cloudwatch").put_metric_alarm(
        AlarmName="billing-high",
        Namespace="AWS/Billing",
        MetricName="EstimatedCharges",
        Statistic="Maximum",
        Period=21600,
        EvaluationPeriods=1,
        Threshold=1000.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    set_state(sandbox, "billing-high", "ALARM")
    await chat.wait_for(in_channel("local:other", "ALARM billing-high"))
    assert not any(p.origin.channel == "local:staging" for p in chat.posted)
