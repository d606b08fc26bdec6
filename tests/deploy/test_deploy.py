"""Deploys from chat against the AWS sandbox over HTTP, through the whole bot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from adapters.bootstrap import Bot, build_bot
from bot.config import Settings, parse_config
from bot.jobs.locks import LockKey
from bot.model import JobStatus, Outcome
from bot.polling import Polling
from tests.conftest import demo_data
from tests.deploy.helpers import (
    ecs_client,
    finish,
    history,
    is_image,
    lock_holder,
    revisions,
    running_definition,
    say,
)
from tests.support.chat import RecordingChat

API_STAGING = LockKey("api", "staging")


async def test_deploy_registers_a_revision_with_only_the_image_changed(
    bot: Bot, chat: RecordingChat
) -> None:
    before = await running_definition(bot)
    assert await is_image(bot, before, "v1")

    result = await say(bot, "local:alice", "deploy api staging v2")
    assert result.outcome is Outcome.STARTED, result.text
    assert result.job is not None
    assert f"deploy api v2 to staging: job J{result.job.id}" in result.text
    assert await finish(bot, result) is JobStatus.SUCCEEDED

    after = await running_definition(bot)
    assert after["family"] == before["family"] == "api-staging"
    assert after["revision"] == before["revision"] + 1
    assert await is_image(bot, after, "v2")
    kept = (
        "cpu",
        "memory",
        "networkMode",
        "requiresCompatibilities",
        "executionRoleArn",
        "taskRoleArn",
    )
    assert {k: after.get(k) for k in kept} == {k: before.get(k) for k in kept}
    old_container, new_container = (
        before["containerDefinitions"][0],
        after["containerDefinitions"][0],
    )
    assert {k: v for k, v in new_container.items() if k != "image"} == {
        k: v for k, v in old_container.items() if k != "image"
    }
    assert new_container["secrets"][0]["name"] == "SECRET_KEY"

    ecs = await ecs_client(bot)
    service = (await ecs.describe_services(cluster="staging", services=["api"]))["services"][0]
    breaker = service["deploymentConfiguration"]["deploymentCircuitBreaker"]
    assert breaker == {"enable": True, "rollback": True}

    texts = chat.texts()
    progress = [t for t in texts if "running" in t and "elapsed" in t]
    assert progress, texts
    assert any("api-staging:2 IN_PROGRESS" in t for t in progress)
    final = texts[-1]
    assert final.startswith("deployed api v2 to staging in ")
    assert "api-staging:2, 2/2 running (was v1, api-staging:1)" in final

    [record] = await history(bot)
    assert (record.version, record.kind, record.outcome) == ("v2", "deploy", "succeeded")
    assert record.task_definition == after["taskDefinitionArn"]
    assert record.previous_version == "v1"
    assert record.previous_task_definition == before["taskDefinitionArn"]
    assert record.triggered_by == "local:alice"
    assert record.job_id == result.job.id
    assert record.ended_at is not None and record.ended_at >= record.started_at

    shown = await say(bot, "local:carol", "history api staging")
    assert shown.outcome is Outcome.OK
    assert "api-staging:2" in shown.text and "succeeded" in shown.text
    assert await lock_holder(bot) is None


async def test_broken_tag_is_rolled_back_by_the_circuit_breaker_and_said_so(
    bot: Bot, chat: RecordingChat
) -> None:
    before = await running_definition(bot)
    result = await say(bot, "local:alice", "deploy api staging broken")
    assert result.outcome is Outcome.STARTED, result.text
    assert await finish(bot, result) is JobStatus.FAILED

    texts = chat.texts()
    assert any(
        "circuit breaker tripped" in t and "rolling back to api-staging:1" in t for t in texts
    )
    tripped = next(i for i, t in enumerate(texts) if "circuit breaker tripped" in t)
    rolling_back = [t for t in texts[tripped + 1 : -1] if "elapsed" in t]
    assert rolling_back, texts
    # The revision ECS brings back is shown as restoring, never as an old one that stopped.
    assert all(t.startswith("api-staging:1 restoring: ") for t in rolling_back), rolling_back
    assert not any("api-staging:1 (old)" in t for t in rolling_back)
    final = texts[-1]
    assert final.startswith("deploy api broken to staging failed: ECS rolled it back.")
    assert "ECS restored api-staging:1 (v1), 2/2 running again" in final
    assert "Essential container in task exited (app: exit code 1)" in final

    after = await running_definition(bot)
    assert after["taskDefinitionArn"] == before["taskDefinitionArn"]
    assert await is_image(bot, after, "v1")

    [record] = await history(bot)
    assert (record.version, record.outcome) == ("broken", "rolled_back")
    assert record.task_definition.endswith("api-staging:2")
    assert "ECS rolled it back" in record.detail
    assert await lock_holder(bot) is None

    again = await say(bot, "local:alice", "deploy api staging v2")
    assert again.outcome is Outcome.STARTED, again.text
    assert await finish(bot, again) is JobStatus.SUCCEEDED


async def test_unknown_tag_is_refused_before_anything_changes(bot: Bot) -> None:
    before = await running_definition(bot)
    families = await revisions(bot)

    result = await say(bot, "local:alice", "deploy api staging v9")

    assert result.outcome is Outcome.REFUSED
    assert result.job is None
    assert "image tag 'v9' is not in ECR repository api" in result.text
    assert "recent tags:" in result.text and "v3" in result.text
    assert await running_definition(bot) == before
    assert await revisions(bot) == families
    assert await history(bot) == []
    assert bot.jobs.running == []
    assert await lock_holder(bot) is None


async def test_dry_run_shows_the_change_and_changes_nothing(bot: Bot) -> None:
    before = await running_definition(bot)
    families = await revisions(bot)

    result = await say(bot, "local:alice", "deploy api production v3 --dry-run")

    assert result.outcome is Outcome.OK, result.text
    text = result.text
    assert "dry run: deploy api v3 to production" in text
    assert "image of container app: api:v1 → api:v3" in text
    assert "task definition: api-production:1 → api-production:2" in text
    assert "image api:v3 is in ECR (sha256:" in text
    assert "✓ lock api/production is free" in text
    assert "would need approval" in text
    assert text.endswith("nothing was changed")
    assert result.job is None and result.request is None
    assert await running_definition(bot) == before
    assert await revisions(bot) == families
    assert await history(bot, "production") == []

    missing = await say(bot, "local:alice", "deploy api staging nope --dry-run")
    assert missing.outcome is Outcome.REFUSED
    assert "image tag 'nope' is not in ECR" in missing.text


async def test_twenty_concurrent_deploys_run_one_and_refuse_the_rest_naming_the_holder(
    bot: Bot,
) -> None:
    members = ["local:alice", "local:bob", "local:carol"]
    results = await asyncio.gather(
        *(say(bot, members[i % 3], "deploy api staging v2") for i in range(20))
    )

    started = [r for r in results if r.outcome is Outcome.STARTED]
    refused = [r for r in results if r.outcome is Outcome.REFUSED]
    assert len(started) == 1, [r.text for r in results]
    assert len(refused) == 19
    job = started[0].job
    assert job is not None
    for result in refused:
        assert f"api/staging is locked by {job.member} (job J{job.id})" in result.text
    assert await finish(bot, started[0]) is JobStatus.SUCCEEDED
    assert len(await history(bot)) == 1
    assert len(await revisions(bot)) == 2


async def test_lock_is_free_after_a_cancelled_deploy(bot: Bot, chat: RecordingChat) -> None:
    result = await say(bot, "local:alice", "deploy api staging v2")
    assert result.job is not None
    holder = await lock_holder(bot)
    assert holder is not None and holder.job_id == result.job.id
    await chat.wait_for(lambda posted: any("ECS deployment" in p.text for p in posted))

    await bot.jobs.cancel(result.job.id)

    assert await bot.jobs.wait(result.job.id) is JobStatus.CANCELLED
    assert await lock_holder(bot) is None
    [record] = await history(bot)
    # The job stopped; the rollout it started did not: the record says so, not "cancelled".
    assert record.outcome == "unwatched"
    assert "cancelled while ECS rolled it out; ECS carries on" in record.detail
    assert record.ended_at is not None
    assert chat.texts()[-1].startswith(
        f"deploy api v2 to staging: job J{result.job.id} was cancelled\nlast progress: "
    )

    again = await say(bot, "local:bob", "deploy api staging v3")
    assert again.outcome is Outcome.STARTED, again.text
    assert await finish(bot, again) is JobStatus.SUCCEEDED
    assert await is_image(bot, await running_definition(bot), "v3")


async def test_production_deploy_waits_for_a_second_approver(bot: Bot) -> None:
    before = await running_definition(bot, "production")
    asked = await say(bot, "local:alice", "deploy api production v2")

    assert asked.outcome is Outcome.PENDING, asked.text
    assert asked.request is not None
    assert "needs approval" in asked.text
    assert "api:v1 → api:v2" in asked.text
    assert "api-production:1 → api-production:2" in asked.text
    request_id = asked.request.id

    own = await say(bot, "local:alice", f"approve {request_id}")
    assert own.outcome is Outcome.REFUSED
    assert "cannot approve your own request" in own.text
    assert await running_definition(bot, "production") == before

    approved = await say(bot, "local:bob", f"approve {request_id}")
    assert approved.outcome is Outcome.STARTED, approved.text
    assert "approved by local:bob" in approved.text
    assert await finish(bot, approved) is JobStatus.SUCCEEDED
    assert await is_image(bot, await running_definition(bot, "production"), "v2")
    [record] = await history(bot, "production")
    assert record.triggered_by == "local:alice"
    assert "approved by local:bob" in record.detail
    assert await is_image(bot, await running_definition(bot, "staging"), "v1")


async def test_deploy_is_only_for_permitted_members_and_needs_a_version(bot: Bot) -> None:
    # (Fleets and Auto Scaling groups deploy too: tests/deploy/test_fleet.py and
    # test_asg_and_restart.py.)
    carol = await say(bot, "local:carol", "deploy api production v2")
    assert carol.outcome is Outcome.REFUSED
    assert "lacks permission deploy:production" in carol.text

    usage = await say(bot, "local:alice", "deploy api staging")
    assert usage.outcome is Outcome.USAGE
    assert "usage: deploy SERVICE ENV VERSION [--dry-run]" in usage.text


@pytest.fixture
async def slow_bot(sandbox: Any, chat: RecordingChat, tmp_path: Path) -> Any:
    """The demo bot with a 3-second rollout timeout for api in staging."""
    data = demo_data()
    data["store"] = "sqlite://:memory:"
    data["environments"]["staging"]["services"]["api"]["timeout"] = "3s"
    built = await build_bot(
        parse_config(data),
        Settings(aws_endpoint_url=sandbox.url),
        chats=[chat],
        runner="test",
        polling=Polling(first=0.05, longest=0.2, report_every=0.5),
    )
    try:
        yield built
    finally:
        await built.close()


async def test_rollout_that_never_settles_times_out_with_where_it_stands(
    slow_bot: Bot, chat: RecordingChat
) -> None:
    # With maximumPercent 100 and minimumHealthyPercent 100 ECS can neither start a new task
    # nor stop an old one: the rollout stays IN_PROGRESS until someone steps in.
    ecs = await ecs_client(slow_bot)
    await ecs.update_service(
        cluster="staging",
        service="api",
        deploymentConfiguration={"maximumPercent": 100, "minimumHealthyPercent": 100},
    )

    result = await say(slow_bot, "local:alice", "deploy api staging v2")
    assert result.outcome is Outcome.STARTED, result.text
    assert await finish(slow_bot, result) is JobStatus.FAILED

    texts = chat.texts()
    assert any(t.startswith("still rolling out: api-staging:2 IN_PROGRESS") for t in texts), texts
    final = texts[-1]
    assert final.startswith("deploy api v2 to staging failed: timed out after 3s")
    assert "api-staging:2 IN_PROGRESS: 0/2 running" in final
    assert "`status api staging`" in final
    [record] = await history(slow_bot)
    assert record.outcome == "failed"
    assert "timed out" in record.detail
    assert await lock_holder(slow_bot) is None


async def test_deploy_replaced_by_an_outside_change_says_so(bot: Bot, chat: RecordingChat) -> None:
    seeded = (await running_definition(bot))["taskDefinitionArn"]
    result = await say(bot, "local:alice", "deploy api staging v2")
    assert result.job is not None
    await chat.wait_for(lambda posted: any("ECS deployment" in p.text for p in posted))

    # Someone points the service elsewhere from the console while the rollout runs.
    ecs = await ecs_client(bot)
    await ecs.update_service(cluster="staging", service="api", taskDefinition=seeded)

    assert await finish(bot, result) is JobStatus.FAILED
    final = chat.texts()[-1]
    assert final.startswith("deploy api v2 to staging failed: api-staging:2 (v2) did not finish")
    assert "(api-staging:1) replaced it: the service was changed outside this deploy" in final
    [record] = await history(bot)
    assert record.outcome == "failed"
    assert await lock_holder(bot) is None
