"""A request Slack delivers more than once runs once: deduplicated through the store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from tests.slack.conftest import jobs_in_store
from tests.support.fake_slack import FakeSlack, SlackSender


async def test_slash_command_retried_three_times_and_redelivered_starts_one_job(
    sender: SlackSender, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    body = urlencode(sender.slash_body("deploy api staging v2"))
    form = "application/x-www-form-urlencoded"
    statuses = [(await sender.send(body, form))[0]]
    for retry in (1, 2, 3):
        statuses.append((await sender.send(body, form, retry=retry))[0])
    statuses.append((await sender.send(body, form))[0])  # the same payload, delivered again
    assert statuses == [200] * 5

    await fake_slack.wait_for(lambda: len(fake_slack.heads()) == 1)
    head = fake_slack.heads()[0]
    await fake_slack.wait_for(
        lambda: any(p.text.startswith("✅") for p in fake_slack.in_thread(head.ts)), timeout=60
    )
    # A later command is answered after every earlier delivery was dealt with.
    await sender.slash("jobs")
    await fake_slack.wait_for(lambda: any(t.startswith("jobs") for t in fake_slack.said()))

    assert len(await jobs_in_store(tmp_path)) == 1
    assert len(fake_slack.heads()) == 1
    # No duplicate was refused for the lock either: duplicates never reach the dispatcher,
    # and the one answer through a response_url is the `jobs` list.
    assert [b["text"].split()[0] for b in fake_slack.hook_posts()] == ["jobs"]


async def test_mention_event_retried_is_answered_once_in_its_thread(
    sender: SlackSender, fake_slack: FakeSlack
) -> None:
    event = sender.mention_body("status api staging")
    for retry in (None, 1, 2, 3):
        assert (await sender.send_json(event, retry=retry))[0] == 200

    mention_ts = event["event"]["ts"]
    await fake_slack.wait_for(lambda: len(fake_slack.in_thread(mention_ts)) == 1)
    await sender.slash("jobs")
    await fake_slack.wait_for(lambda: any(t.startswith("no jobs") for t in fake_slack.said()))

    answers = [p for p in fake_slack.posted if "api in staging" in p.text]
    assert len(answers) == 1 and answers[0].thread_ts == mention_ts
