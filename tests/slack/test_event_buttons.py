"""An alarm's suggested commands on Slack, in `kajitori serve`: the sandbox's alarm fires,
the rule puts the event on the demo queue, the alarm is posted in C0DEMO with its buttons;
a developer's press is refused privately; an SRE's first press answers with the dry run and
a Run button in the alarm's thread, the second runs the scale-out as that SRE; the recovery
edits the alarm's message with chat.update."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from tests.slack.conftest import jobs_in_store
from tests.support.fake_slack import FakeSlack, Posted, SlackSender


def set_state(sandbox: Any, state: str) -> None:
    boto3.client(
        "cloudwatch", region_name="ap-northeast-1", endpoint_url=sandbox.url
    ).set_alarm_state(AlarmName="api-5xx-staging", StateValue=state, StateReason="test")


def with_button(fake_slack: FakeSlack, prefix: str, thread: str | None = None) -> Posted | None:
    return next(
        (
            p
            for p in fake_slack.posted
            if f'"{prefix}:' in p.block_text() and (thread is None or p.thread_ts == thread)
        ),
        None,
    )


async def test_alarm_buttons_run_the_command_as_the_member_who_pressed(
    sandbox: Any, sender: SlackSender, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    set_state(sandbox, "ALARM")
    await fake_slack.wait_for(lambda: with_button(fake_slack, "kajitori_suggest") is not None)
    alarm = with_button(fake_slack, "kajitori_suggest")
    assert alarm is not None and alarm.channel == "C0DEMO"
    assert "ALARM api-5xx-staging" in alarm.text

    status, _ = await sender.click(alarm, "kajitori_suggest:0", user="U0CAROL")
    assert status == 200
    await fake_slack.wait_for(lambda: len(fake_slack.hook_posts()) == 1)
    refusal = fake_slack.hook_posts()[0]
    assert refusal["response_type"] == "ephemeral"
    assert "slack:U0CAROL" in refusal["text"] and "scale" in refusal["text"]

    await sender.click(alarm, "kajitori_suggest:0", user="U0ALICE")
    await fake_slack.wait_for(
        lambda: with_button(fake_slack, "kajitori_run", thread=alarm.ts) is not None
    )
    assert any("dry run" in p.text for p in fake_slack.in_thread(alarm.ts))
    assert await jobs_in_store(tmp_path) == []
    run = with_button(fake_slack, "kajitori_run", thread=alarm.ts)
    assert run is not None
    await sender.click(run, "kajitori_run:0", user="U0ALICE")
    # The job's head and progress go to the alarm's thread, where it was pressed.
    await fake_slack.wait_for(
        lambda: any(
            "kajitori_status" in p.block_text() and "scale out" in p.text
            for p in fake_slack.in_thread(alarm.ts)
        )
    )
    jobs = await jobs_in_store(tmp_path)
    assert len(jobs) == 1 and jobs[0].member == "slack:U0ALICE"

    set_state(sandbox, "OK")
    await fake_slack.wait_for(
        lambda: any(
            "recovered" in json.dumps(u.get("blocks"), ensure_ascii=False)
            for u in fake_slack.updates_of(alarm.ts)
        )
    )
