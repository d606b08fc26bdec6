"""`history` and `jobs` through the real dispatcher against the sandbox: deploys, rollbacks,
scale jobs and locks with requester, approver, channel, outcome and detail; paging; and the
versions a rollback offers."""

from __future__ import annotations

from adapters.bootstrap import Bot
from bot.model import JobStatus, Outcome
from tests.deploy.helpers import deploy_and_wait, finish, say

COLUMNS = ["when (UTC)", "job", "what", "by", "approved by", "channel", "outcome", "detail"]


def rows(result: object) -> list[dict[str, str]]:
    table = result.messages[0].table  # type: ignore[attr-defined]
    assert table is not None, result.text  # type: ignore[attr-defined]
    assert table.columns == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in table.rows]


async def test_empty_history_says_nothing_is_recorded_yet(bot: Bot) -> None:
    result = await say(bot, "local:carol", "history api staging")
    assert result.outcome is Outcome.OK
    assert result.text.startswith("nothing recorded yet for api in staging")
    assert result.messages[0].table is None


async def test_history_lists_deploys_scale_jobs_and_locks_with_who_and_how(bot: Bot) -> None:
    assert await deploy_and_wait(bot, "deploy api staging v2") is JobStatus.SUCCEEDED
    scaled = await say(bot, "local:bob", "scale out api staging +1")
    assert await finish(bot, scaled) is JobStatus.SUCCEEDED
    await say(bot, "local:alice", "lock api staging cache test")
    await say(bot, "local:alice", "unlock api staging")
    asked = await say(bot, "local:alice", "deploy api production v2")
    assert asked.request is not None
    approved = await say(bot, "local:bob", f"approve {asked.request.ref}")
    assert await finish(bot, approved) is JobStatus.SUCCEEDED

    staging = rows(await say(bot, "local:carol", "history api staging"))
    assert [r["what"] for r in staging] == [
        "unlock api staging",
        "lock api staging cache test",
        "scale out api in staging from 2 to 3",
        "deploy api v2 to staging",
    ]
    deploy = staging[-1]
    assert (deploy["by"], deploy["channel"], deploy["outcome"]) == (
        "local:alice",
        "local",
        "succeeded",
    )
    assert deploy["job"].startswith("J")
    assert deploy["detail"].startswith("v1 → v2 (api-staging:2), succeeded")
    assert staging[-2]["by"] == "local:bob" and staging[-2]["outcome"] == "succeeded"

    production = rows(await say(bot, "local:carol", "history api production"))
    assert [(r["what"], r["by"], r["approved by"]) for r in production] == [
        ("deploy api v2 to production", "local:alice", "local:bob")
    ]

    everything = rows(await say(bot, "local:carol", "history"))
    assert len(everything) == 5
    one = await say(bot, "local:carol", "history --limit 1")
    assert len(rows(one)) == 1 and "--before" in one.text
    job_rows = [r for r in everything if r["job"]]
    older = rows(await say(bot, "local:carol", f"history --before {job_rows[0]['job']}"))
    assert [r["job"] for r in older if r["job"]] == [r["job"] for r in job_rows[1:]]

    every_command = rows(await say(bot, "local:carol", "history api staging --all"))
    assert any(r["what"] == "scale out api staging +1" for r in every_command)

    bad = await say(bot, "local:carol", "history --limit lots")
    assert bad.outcome is Outcome.USAGE
    assert "usage: history [SERVICE ENV] [--all] [--limit N] [--before ID]" in bad.text


async def test_jobs_shows_approvers_and_whole_results(bot: Bot) -> None:
    asked = await say(bot, "local:alice", "deploy api production v2")
    assert asked.request is not None
    approved = await say(bot, "local:bob", f"approve {asked.request.id}")
    assert await finish(bot, approved) is JobStatus.SUCCEEDED
    record = await bot.services.store.get_job(approved.job.id if approved.job else 0)
    assert record is not None and len(record.result) > 60

    listed = await say(bot, "local:carol", "jobs")
    table = listed.messages[0].table
    assert table is not None
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert row["job"] == record.ref
    assert row["approved by"] == "local:bob"
    assert row["result"] == record.result


async def test_rollback_to_an_unknown_version_lists_every_successful_one(bot: Bot) -> None:
    assert await deploy_and_wait(bot, "deploy api staging v2") is JobStatus.SUCCEEDED
    asked = await say(bot, "local:alice", "rollback api staging")
    assert asked.request is not None, asked.text
    assert "(recorded as it ran before deploy job J1; reused" in asked.text
    confirmed = await say(bot, "local:alice", f"approve {asked.request.ref}")
    assert await finish(bot, confirmed) is JobStatus.SUCCEEDED
    assert await deploy_and_wait(bot, "deploy api staging v3") is JobStatus.SUCCEEDED

    refused = await say(bot, "local:alice", "rollback api staging v77")
    assert refused.outcome is Outcome.REFUSED
    assert "recorded: v1, v2, v3;" in refused.text
