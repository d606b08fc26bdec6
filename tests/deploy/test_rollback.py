"""Rollbacks from chat against the AWS sandbox: the target comes from the deploy history and
its recorded task definition revision is reused, never registered anew."""

from __future__ import annotations

from adapters.bootstrap import Bot
from bot.model import JobStatus, Outcome
from tests.deploy.helpers import (
    deploy_and_wait,
    finish,
    history,
    is_image,
    revisions,
    running_definition,
    say,
)
from tests.support.chat import RecordingChat


async def test_rollback_goes_back_one_successful_version_at_a_time(
    bot: Bot, chat: RecordingChat
) -> None:
    assert await deploy_and_wait(bot, "deploy api staging v2") is JobStatus.SUCCEEDED
    assert await deploy_and_wait(bot, "deploy api staging broken") is JobStatus.FAILED
    assert await deploy_and_wait(bot, "deploy api staging v3") is JobStatus.SUCCEEDED
    registered = await revisions(bot)
    assert len(registered) == 4  # v1 seeded, v2, broken, v3

    asked = await say(bot, "local:carol", "rollback api staging")
    assert asked.outcome is Outcome.PENDING, asked.text
    assert asked.request is not None
    assert "is destructive: confirm with" in asked.text
    assert "api:v3 → api:v2" in asked.text
    assert "api-staging:4 → api-staging:2 (recorded as deployed by job J1; reused" in asked.text

    confirmed = await say(bot, "local:carol", f"approve {asked.request.id}")
    assert confirmed.outcome is Outcome.STARTED, confirmed.text
    assert await finish(bot, confirmed) is JobStatus.SUCCEEDED
    assert chat.texts()[-1].startswith("rolled back api in staging to v2 in ")
    now = await running_definition(bot)
    assert now["taskDefinitionArn"] == registered[1]
    assert await is_image(bot, now, "v2")
    assert await revisions(bot) == registered

    # A second rollback goes further back (to the seeded v1), not forward to v3.
    again = await say(bot, "local:alice", "rollback api staging --yes")
    assert again.outcome is Outcome.STARTED, again.text
    assert await finish(bot, again) is JobStatus.SUCCEEDED
    now = await running_definition(bot)
    assert now["taskDefinitionArn"] == registered[0]
    assert await revisions(bot) == registered

    records = await history(bot)
    assert [(r.kind, r.version, r.outcome) for r in records] == [
        ("rollback", "v1", "succeeded"),
        ("rollback", "v2", "succeeded"),
        ("deploy", "v3", "succeeded"),
        ("deploy", "broken", "rolled_back"),
        ("deploy", "v2", "succeeded"),
    ]
    assert records[1].triggered_by == "local:carol"
    assert records[1].task_definition == registered[1]
    assert records[1].previous_version == "v3"

    nothing = await say(bot, "local:alice", "rollback api staging")
    assert nothing.outcome is Outcome.REFUSED
    assert "no earlier successful version of api in staging is recorded" in nothing.text


async def test_rollback_to_a_named_version_reuses_its_revision(bot: Bot) -> None:
    assert await deploy_and_wait(bot, "deploy api staging v2") is JobStatus.SUCCEEDED
    assert await deploy_and_wait(bot, "deploy api staging v3") is JobStatus.SUCCEEDED
    registered = await revisions(bot)

    dry = await say(bot, "local:alice", "rollback api staging v1 --dry-run")
    assert dry.outcome is Outcome.OK, dry.text
    assert "api-staging:3 → api-staging:1 (recorded as it ran before deploy job J1" in dry.text
    assert "would ask for confirmation" in dry.text
    assert await is_image(bot, await running_definition(bot), "v3")

    result = await say(bot, "local:alice", "rollback api staging v1 --yes")
    assert result.outcome is Outcome.STARTED, result.text
    assert await finish(bot, result) is JobStatus.SUCCEEDED
    now = await running_definition(bot)
    assert now["taskDefinitionArn"] == registered[0]
    assert await is_image(bot, now, "v1")
    assert await revisions(bot) == registered

    current = await say(bot, "local:alice", "rollback api staging v1 --yes")
    assert current.outcome is Outcome.REFUSED
    assert "already runs v1" in current.text

    unknown = await say(bot, "local:alice", "rollback api staging broken --yes")
    assert unknown.outcome is Outcome.REFUSED
    assert "no successful deploy of broken to staging is recorded" in unknown.text
    assert "`deploy api staging broken`" in unknown.text


async def test_rollback_with_no_history_is_refused(bot: Bot) -> None:
    result = await say(bot, "local:alice", "rollback api staging")
    assert result.outcome is Outcome.REFUSED
    assert "no earlier successful version of api in staging is recorded" in result.text
    assert "runs v1, api-staging:1" in result.text
    assert result.request is None and result.job is None
