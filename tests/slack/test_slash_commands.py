"""Slash commands into the real `kajitori serve`: acknowledged at once, answered after."""

from __future__ import annotations

import json

from tests.support.fake_slack import CHANNEL, FakeSlack, SlackSender


async def test_slash_status_is_acknowledged_then_answered_in_the_channel(
    sender: SlackSender, fake_slack: FakeSlack
) -> None:
    status, body = await sender.slash("status api staging")

    assert status == 200
    # The acknowledgement shows the member's command to the channel and answers nothing yet.
    assert json.loads(body) == {"text": "", "response_type": "in_channel"}
    await fake_slack.wait_for(lambda: any("api in staging" in t for t in fake_slack.said()))
    # Answered for everyone in the channel through the command's response_url, which does
    # not count against the channel's pace of posts.
    answer = next(b for b in fake_slack.in_channel_answers() if "api in staging" in b["text"])
    assert fake_slack.posted == []
    fields = [
        f["text"] for b in answer["blocks"] if b["type"] == "section" for f in b.get("fields", [])
    ]
    assert "*tasks*\ndesired 2, running 2, pending 0" in fields
    assert any(f.startswith("*version*\nv1 (sha256:") for f in fields)


async def test_deploy_progress_and_final_message_arrive_in_one_thread(
    sender: SlackSender, fake_slack: FakeSlack
) -> None:
    status, _ = await sender.slash("deploy api staging v2")
    assert status == 200

    await fake_slack.wait_for(lambda: len(fake_slack.heads()) == 1)
    head = fake_slack.heads()[0]
    assert "deploy" in head.text and "job" in head.text
    assert head.channel == CHANNEL

    def finished() -> bool:
        return any(p.text.startswith("✅") for p in fake_slack.in_thread(head.ts))

    await fake_slack.wait_for(finished, timeout=60)
    thread = fake_slack.in_thread(head.ts)
    assert all(p.text.startswith("⏳") for p in thread[:-1])
    assert thread[-1].text.startswith("✅ deployed api v2 to staging")
    # Every progress line arrived: on its own, or inside the final post when it was still
    # waiting for the channel as the job ended.
    shown = "\n".join(p.block_text() for p in thread)
    assert "registered api-staging:2" in shown
    assert shown.count("⏳") >= 2, [p.text for p in thread]
    # Nothing about the job went anywhere but that thread.
    outside = [p for p in fake_slack.posted if p.thread_ts is None and p is not head]
    assert outside == []

    # The head's status line followed the job to its end.
    def status_lines() -> list[str]:
        return [
            b["elements"][0]["text"]
            for u in fake_slack.updates_of(head.ts)
            for b in u["blocks"]
            if b.get("block_id") == "kajitori_status"
        ]

    await fake_slack.wait_for(lambda: any(s.startswith("✅") for s in status_lines()))
    assert status_lines()[-1].startswith("✅ deployed api v2 to staging")
    assert all(line.startswith("⏳") for line in status_lines()[:-1])
