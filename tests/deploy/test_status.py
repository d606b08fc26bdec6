"""`status` through the real dispatcher against the sandbox: one service with everything that
matters while deciding (version and digest, who deployed it, the lock, jobs, requests), one
environment, every environment; and `unlock` and dry runs that agree with it."""

from __future__ import annotations

from typing import Any

from adapters.bootstrap import Bot
from bot.model import JobStatus, Outcome
from sandbox import SandboxTiming
from tests.deploy.helpers import SLOW, deploy_and_wait, finish, say
from tests.support.chat import RecordingChat


async def test_status_of_a_service_shows_version_digest_and_who_deployed_it(bot: Bot) -> None:
    assert await deploy_and_wait(bot, "deploy api staging v2") is JobStatus.SUCCEEDED
    result = await say(bot, "local:carol", "status api staging")
    assert result.outcome is Outcome.OK, result.text
    fields = result.messages[0].fields
    assert fields["version"].startswith("v2 (sha256:")
    assert fields["task definition"] == "api-staging:2"
    assert fields["tasks"] == "desired 2, running 2, pending 0"
    assert fields["rollout"].startswith("COMPLETED (")
    jobs = await bot.services.store.list_jobs()
    assert fields["deployed"].startswith("v2 by local:alice at ")
    assert fields["deployed"].endswith(f"deploy (job {jobs[0].ref})")
    assert fields["lock"] == "none"
    assert fields["running jobs"] == "none" and fields["pending requests"] == "none"


async def test_status_shows_a_manual_lock_a_running_job_and_a_pending_request(
    bot: Bot, chat: RecordingChat, sandbox: Any
) -> None:
    # A rollout long enough to be still going while every status below is read.
    sandbox.set_timing(SandboxTiming(ecs_task_step=30.0))
    await say(bot, "local:alice", "lock web staging load test")
    started = await say(bot, "local:bob", "deploy api staging v2")
    assert started.job is not None
    pending = await say(bot, "local:alice", "deploy api production v3")
    assert pending.request is not None

    api = (await say(bot, "local:carol", "status api staging")).messages[0].fields
    assert (
        api["lock"]
        == f"held by job {started.job.ref} (deploy api v2 to staging) for local:bob, until it ends"
    )
    assert api["running jobs"].startswith(f"{started.job.ref} deploy api v2 to staging (local:bob")
    web = (await say(bot, "local:carol", "status web staging")).messages[0].fields
    assert web["lock"].startswith("local:alice: load test (by hand, since ")
    prod = (await say(bot, "local:carol", "status api production")).messages[0].fields
    assert prod["pending requests"].startswith(
        f"{pending.request.ref} deploy api v3 to production (approval asked by local:alice"
    )

    overview = await say(bot, "local:carol", "status staging")
    assert overview.outcome is Outcome.OK, overview.text
    table = overview.messages[0].table
    assert table is not None
    rows = {row[0]: row for row in table.rows}
    assert set(rows) == {"api", "web", "worker", "main"}
    assert rows["api"][1] == "ECS" and rows["api"][-2] == started.job.ref
    assert rows["web"][5].startswith("local:alice until ")
    assert rows["main"][1] == "aurora-mysql" and "2 × db.r6g.large" in rows["main"][2]

    everything = await say(bot, "local:carol", "status")
    table = everything.messages[0].table
    assert table is not None and table.columns[0] == "env"
    assert {(r[0], r[1]) for r in table.rows} >= {("staging", "api"), ("production", "api")}
    prod_api = next(r for r in table.rows if r[:2] == ["production", "api"])
    assert prod_api[-1] == pending.request.ref
    await bot.jobs.cancel(started.job.id)


async def test_unlock_of_a_job_lock_says_which_job_and_how_to_cancel_it(
    bot: Bot, sandbox: Any
) -> None:
    sandbox.set_timing(SLOW)
    started = await say(bot, "local:alice", "deploy api staging v2")
    assert started.job is not None
    refused = await say(bot, "local:bob", "deploy api staging v3")
    assert f"locked by local:alice (job {started.job.ref})" in refused.text
    assert f"`cancel {started.job.ref}`" in refused.text

    unlock = await say(bot, "local:alice", "unlock api staging")
    assert unlock.outcome is Outcome.REFUSED
    assert f"held by running job {started.job.ref} (deploy api v2 to staging" in unlock.text
    assert f"`cancel {started.job.ref}`" in unlock.text

    await finish(bot, started)
    after = await say(bot, "local:alice", "unlock api staging")
    assert after.outcome is Outcome.OK
    assert f"not locked: job {started.job.ref} (deploy api v2 to staging) held it" in after.text
    assert "ended succeeded at" in after.text


async def test_dry_run_under_someone_elses_lock_says_it_would_be_refused(bot: Bot) -> None:
    await say(bot, "local:alice", "lock api staging checking the cache")
    dry = await say(bot, "local:bob", "deploy api staging v2 --dry-run")
    assert dry.outcome is Outcome.REFUSED, dry.text
    assert "lock free" not in dry.text and "✓ lock" not in dry.text
    assert "✗ lock api/staging is held by local:alice: checking the cache" in dry.text
    assert "the command would be refused now" in dry.text

    own = await say(bot, "local:alice", "deploy api staging v2 --dry-run")
    assert own.outcome is Outcome.OK
    assert "✓ lock api/staging is yours" in own.text
