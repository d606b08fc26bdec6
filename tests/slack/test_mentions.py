"""`@kajitori ...` mentions: the same grammar, answered in the mention's thread."""

from __future__ import annotations

import json

from tests.support.fake_slack import CHANNEL, FakeSlack, SlackSender


async def test_mentioned_deploy_runs_in_the_mentions_thread(
    sender: SlackSender, fake_slack: FakeSlack
) -> None:
    event = sender.mention_body("deploy api staging v2")
    assert (await sender.send_json(event))[0] == 200
    mention_ts = event["event"]["ts"]

    def final() -> bool:
        return any(p.text.startswith("✅") for p in fake_slack.in_thread(mention_ts))

    await fake_slack.wait_for(final, timeout=60)
    thread = fake_slack.in_thread(mention_ts)
    head, *progress = thread
    assert "deploy api v2 to staging: job J1 started by slack:U0ALICE" in head.text
    assert progress and progress[-1].text.startswith("✅ deployed api v2 to staging")
    assert all(p.channel == CHANNEL for p in thread)
    # The head (a reply in the mention's thread) carries the job's status line.
    await fake_slack.wait_for(
        lambda: any(
            "✅ deployed" in json.dumps(u["blocks"], ensure_ascii=False)
            for u in fake_slack.updates_of(head.ts)
        )
    )


async def test_refusals_are_private(sender: SlackSender, fake_slack: FakeSlack) -> None:
    # A slash command's refusal goes to its response_url, for the member's eyes only.
    await sender.slash("deploy api production v2", user="U0CAROL")
    await fake_slack.wait_for(lambda: len(fake_slack.hook_posts()) == 1)
    refusal = fake_slack.hook_posts()[0]
    assert refusal["response_type"] == "ephemeral"
    assert "slack:U0CAROL lacks permission deploy:production" in refusal["text"]

    # A mention has no response_url: the refusal is an ephemeral message in its thread.
    event = sender.mention_body("deploy api production v2", user="U0CAROL")
    await sender.send_json(event)
    await fake_slack.wait_for(lambda: len(fake_slack.calls("chat.postEphemeral")) == 1)
    ephemeral = fake_slack.calls("chat.postEphemeral")[0]
    assert ephemeral["user"] == "U0CAROL" and ephemeral["channel"] == CHANNEL
    assert ephemeral["thread_ts"] == event["event"]["ts"]
    assert "lacks permission" in ephemeral["text"]

    # A member not in the config, and a usage mistake: private as well.
    await sender.slash("status api staging", user="U0MALLORY")
    await sender.slash("deploy api", user="U0ALICE")
    await fake_slack.wait_for(lambda: len(fake_slack.hook_posts()) == 3)
    texts = sorted(p["text"] for p in fake_slack.hook_posts()[1:])
    assert "slack:U0MALLORY is not a member of this bot" in " ".join(texts)
    assert "usage: deploy SERVICE ENV VERSION" in " ".join(texts)
    assert fake_slack.posted == []
