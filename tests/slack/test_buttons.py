"""Approve/deny buttons: the clicker's identity and role are checked on the server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.slack.conftest import jobs_in_store
from tests.support.fake_slack import FakeSlack, Posted, SlackSender


def _request_message(fake_slack: FakeSlack) -> Posted | None:
    return next((p for p in fake_slack.posted if '"kajitori_approve"' in p.block_text()), None)


async def test_second_member_approves_by_button_and_requester_cannot(
    sender: SlackSender, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    await sender.slash("deploy api production v2", user="U0ALICE")
    await fake_slack.wait_for(lambda: _request_message(fake_slack) is not None)
    request = _request_message(fake_slack)
    assert request is not None
    assert "needs approval" in request.text and request.thread_ts is None
    actions = next(b for b in request.blocks if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["kajitori_approve", "kajitori_deny"]

    # The requester clicks approve: refused, privately, and nothing starts.
    status, _ = await sender.click(request, "kajitori_approve", user="U0ALICE")
    assert status == 200
    await fake_slack.wait_for(lambda: len(fake_slack.hook_posts()) == 1)
    refusal = fake_slack.hook_posts()[0]
    assert refusal["response_type"] == "ephemeral" and refusal["replace_original"] is False
    assert "cannot approve your own request" in refusal["text"]
    # A developer is no approver either.
    await sender.click(request, "kajitori_approve", user="U0CAROL")
    await fake_slack.wait_for(lambda: len(fake_slack.hook_posts()) == 2)
    assert "approvers have role sre" in fake_slack.hook_posts()[1]["text"]
    assert await jobs_in_store(tmp_path) == []
    assert fake_slack.updates_of(request.ts) == []

    # A second sre approves: the buttons give way to who decided, and the deploy runs.
    await sender.click(request, "kajitori_approve", user="U0BOB")
    await fake_slack.wait_for(lambda: len(fake_slack.updates_of(request.ts)) == 1)
    update = fake_slack.updates_of(request.ts)[0]
    assert not any(b["type"] == "actions" for b in update["blocks"])
    assert "approved by <@U0BOB>" in json.dumps(update["blocks"], ensure_ascii=False)
    await fake_slack.wait_for(lambda: len(fake_slack.heads()) == 1)
    head = fake_slack.heads()[0]
    assert "deploy api v2 to production" in head.text

    await fake_slack.wait_for(
        lambda: any(p.text.startswith("✅") for p in fake_slack.in_thread(head.ts)), timeout=60
    )
    jobs = await jobs_in_store(tmp_path)
    assert len(jobs) == 1 and jobs[0].member == "slack:U0ALICE"
    assert jobs[0].status.value == "succeeded"
    # Only the two refusals were private; the approval was not.
    assert len(fake_slack.hook_posts()) == 2


async def test_deny_button_cancels_the_request(
    sender: SlackSender, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    await sender.slash("deploy api production v3", user="U0ALICE")
    await fake_slack.wait_for(lambda: _request_message(fake_slack) is not None)
    request = _request_message(fake_slack)
    assert request is not None

    await sender.click(request, "kajitori_deny", user="U0BOB")
    await fake_slack.wait_for(lambda: len(fake_slack.updates_of(request.ts)) == 1)
    blocks = json.dumps(fake_slack.updates_of(request.ts)[0]["blocks"], ensure_ascii=False)
    assert "denied by <@U0BOB>" in blocks and "kajitori_approve" not in blocks
    # A late click on the stale buttons is refused privately.
    await sender.click(request, "kajitori_approve", user="U0BOB")
    await fake_slack.wait_for(lambda: len(fake_slack.hook_posts()) == 1)
    assert "already denied" in fake_slack.hook_posts()[0]["text"]
    assert await jobs_in_store(tmp_path) == []


async def test_typed_approve_also_replaces_the_buttons(
    sender: SlackSender, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    await sender.slash("deploy api production v2", user="U0ALICE")
    await fake_slack.wait_for(lambda: _request_message(fake_slack) is not None)
    request = _request_message(fake_slack)
    assert request is not None
    request_id = next(b for b in request.blocks if b["type"] == "actions")["elements"][0]["value"]

    await sender.slash(f"approve {request_id}", user="U0BOB")
    await fake_slack.wait_for(lambda: len(fake_slack.updates_of(request.ts)) == 1)
    blocks = json.dumps(fake_slack.updates_of(request.ts)[0]["blocks"], ensure_ascii=False)
    assert "approved by <@U0BOB>" in blocks and "kajitori_approve" not in blocks
    await fake_slack.wait_for(lambda: len(fake_slack.heads()) == 1)
    assert "deploy api v2 to production" in fake_slack.heads()[0].text


async def test_promote_button_lets_a_waiting_canary_go_on(
    sender: SlackSender, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    await sender.slash("deploy web staging v2", user="U0CAROL")

    def canary_message() -> Posted | None:
        return next((p for p in fake_slack.posted if '"kajitori_promote"' in p.block_text()), None)

    await fake_slack.wait_for(lambda: canary_message() is not None, timeout=60)
    waiting = canary_message()
    assert waiting is not None
    actions = next(b for b in waiting.blocks if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["kajitori_promote", "kajitori_abort"]
    # Someone who neither started the job nor approves cannot press it.
    await sender.click(waiting, "kajitori_promote", user="U0DAVE")
    await sender.click(waiting, "kajitori_promote", user="U0CAROL")
    await fake_slack.wait_for(
        lambda: any("promoted by slack:U0CAROL" in text for text in fake_slack.said()),
        timeout=60,
    )
    await fake_slack.wait_for(
        lambda: any(p.text.startswith("✅ deployed web v2") for p in fake_slack.posted),
        timeout=60,
    )
    jobs = await jobs_in_store(tmp_path)
    assert [j.status.value for j in jobs] == ["succeeded"]
