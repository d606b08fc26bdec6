"""`scale out` against the AWS sandbox over HTTP: ECS services, Auto Scaling groups and EC2
fleets, out and in, and the quota preflight that refuses before any change."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from adapters.bootstrap import Bot
from bot.model import JobStatus, Outcome
from tests.capacity.conftest import BotFactory
from tests.capacity.helpers import (
    all_instances,
    api_service,
    confirm,
    final_message,
    fleet,
    run_job,
    say,
    target_health,
    worker_group,
)
from tests.support.chat import RecordingChat


async def test_scale_out_ecs_waits_until_the_new_count_runs(bot: Bot, chat: RecordingChat) -> None:
    result = await run_job(bot, "scale out api staging +2")
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    assert summary == "api in staging runs 4 tasks (was 2)"
    service = await api_service(bot)
    assert (service["desiredCount"], service["runningCount"]) == (4, 4)
    thread = chat.texts(chat.posted[-1].origin.thread)
    assert "desired count 2 → 4; waiting for tasks" in thread
    assert "running 4 of 4, pending 0" in thread


async def test_scale_in_ecs_asks_for_confirmation_first(bot: Bot) -> None:
    pending = await say(bot, "scale out api staging 1")
    assert pending.outcome is Outcome.PENDING, pending.text
    assert "is destructive" in pending.text
    assert (await api_service(bot))["desiredCount"] == 2
    # Asking again is refused while the first request waits: one open request per service.
    again = await say(bot, "scale out api staging 1")
    assert again.outcome is Outcome.REFUSED, again.text
    assert pending.request is not None
    assert f"already has an open request {pending.request.ref}" in again.text

    result = await confirm(bot, pending)
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    service = await api_service(bot)
    assert (service["desiredCount"], service["runningCount"]) == (1, 1)


async def test_scale_out_asg_sets_desired_within_max(bot: Bot) -> None:
    result = await run_job(bot, "scale out worker staging +2")
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    group = await worker_group(bot)
    assert (group["DesiredCapacity"], group["MaxSize"]) == (3, 4)
    assert [i["LifecycleState"] for i in group["Instances"]] == ["InService"] * 3

    result = await run_job(bot, "scale out worker staging -1")
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    group = await worker_group(bot)
    assert group["DesiredCapacity"] == 2
    assert len(group["Instances"]) == 2


async def test_scale_out_asg_beyond_max_is_refused_with_the_numbers(bot: Bot) -> None:
    result = await say(bot, "scale out worker staging 6")
    assert result.outcome is Outcome.REFUSED
    assert result.text.splitlines()[0] == (
        "worker-staging allows at most 4 instances (min 1, max 4, desired 1); 6 is beyond its max"
    )
    assert "asg.raise_max" in result.text
    group = await worker_group(bot)
    assert (group["DesiredCapacity"], group["MaxSize"]) == (1, 4)


async def test_scale_out_asg_raises_max_when_the_config_allows_it(bot_with: BotFactory) -> None:
    def allow(data: dict[str, Any]) -> None:
        data["environments"]["staging"]["services"]["worker"]["asg"]["raise_max"] = True

    async with bot_with(allow) as bot:
        dry = await say(bot, "scale out worker staging 6 --dry-run")
        assert "max size 4 → 6 (asg.raise_max)" in dry.text
        result = await run_job(bot, "scale out worker staging 6")
        status, summary = await final_message(bot, result)
        assert status is JobStatus.SUCCEEDED, summary
        group = await worker_group(bot)
        assert (group["DesiredCapacity"], group["MaxSize"]) == (6, 6)


async def test_scale_out_fleet_launches_tagged_instances_across_zones_healthy(
    bot: Bot, chat: RecordingChat
) -> None:
    before = {i["InstanceId"] for i in await fleet(bot)}
    result = await run_job(bot, "scale out web staging +2")
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary

    instances = await fleet(bot)
    new = [i for i in instances if i["InstanceId"] not in before]
    assert len(instances) == 4 and len(new) == 2
    for instance in new:
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["kajitori:service"] == "web"
        assert tags["kajitori:env"] == "staging"
        assert tags["Name"] == "web-staging"
        assert instance["InstanceType"] == "t3.medium"
        assert instance["State"]["Name"] == "running"
    zones = Counter(i["Placement"]["AvailabilityZone"] for i in instances)
    assert zones == {"ap-northeast-1a": 2, "ap-northeast-1c": 2}
    health = await target_health(bot)
    assert {i["InstanceId"]: health.get(i["InstanceId"]) for i in instances} == {
        i["InstanceId"]: "healthy" for i in instances
    }
    thread = chat.texts(chat.posted[-1].origin.thread)
    assert any(t.startswith("launched ") and "ap-northeast-1" in t for t in thread)


async def test_scale_in_fleet_drains_then_terminates_the_newest(bot: Bot) -> None:
    seeded = {i["InstanceId"] for i in await fleet(bot)}
    # EC2 reports launch times to the second: launch in a later second than the seed, so
    # that "newest" is defined.
    await asyncio.sleep(1.1)
    await run_job(bot, "scale out web staging +1")
    newest = {i["InstanceId"] for i in await fleet(bot)} - seeded
    assert len(newest) == 1

    pending = await say(bot, "scale out web staging -1")
    assert pending.outcome is Outcome.PENDING
    (newest_id,) = newest
    assert f"deregister {newest_id}" in pending.text

    result = await confirm(bot, pending)
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    assert {i["InstanceId"] for i in await fleet(bot)} == seeded
    gone = [i for i in await all_instances(bot) if i["InstanceId"] == newest_id]
    assert gone[0]["State"]["Name"] in ("shutting-down", "terminated")
    health = await target_health(bot)
    assert newest_id not in health
    assert {health[i] for i in seeded} == {"healthy"}


async def test_scale_out_refused_by_the_vcpu_quota_launches_nothing(bot: Bot, sandbox: Any) -> None:
    # In use: 2 x t3.medium per env (web) and 1 x t3.small per env (worker) = 12 vCPUs.
    sandbox.set_quota("ec2", "L-1216C47A", 16)
    count_before = len(await all_instances(bot))

    result = await say(bot, "scale out web staging +3")
    assert result.outcome is Outcome.REFUSED
    assert result.text.splitlines()[0] == (
        "needs 6 vCPUs, 4 free of 16 (L-1216C47A) in ap-northeast-1"
    )
    refused_asg = await say(bot, "scale out worker staging +3")
    assert refused_asg.outcome is Outcome.REFUSED
    assert refused_asg.text.startswith("needs 6 vCPUs, 4 free of 16 (L-1216C47A)")

    assert len(await all_instances(bot)) == count_before
    assert (await worker_group(bot))["DesiredCapacity"] == 1
    fits = await say(bot, "scale out web staging +2 --dry-run")
    assert "✓ quota: needs 4 vCPUs, 4 free of 16 (L-1216C47A)" in fits.text


async def test_preflight_runs_again_when_the_scale_out_is_approved(bot: Bot, sandbox: Any) -> None:
    request = await say(bot, "scale out web production +2")
    assert request.outcome is Outcome.PENDING and request.request is not None
    assert "✓ quota" not in request.text  # approvers see the plan; the check comes on approval
    count_before = len(await all_instances(bot))
    sandbox.set_quota("ec2", "L-1216C47A", 14)  # lowered while the request waits

    approved = await say(bot, f"approve {request.request.id}", "local:bob")
    assert approved.outcome is Outcome.REFUSED, approved.text
    assert "needs 4 vCPUs, 2 free of 14 (L-1216C47A) in ap-northeast-1" in approved.text
    assert approved.job is None
    assert len(await all_instances(bot)) == count_before


async def test_ecs_dry_run_says_when_the_fargate_quota_cannot_be_checked(bot: Bot) -> None:
    dry = await say(bot, "scale out api staging +2 --dry-run")
    assert dry.outcome is Outcome.OK, dry.text
    assert "• ECS staging/api: desired count 2 → 4" in dry.text
    assert (
        "⚠ not checked: the Fargate vCPU quota in ap-northeast-1: cannot read quota L-3032A538"
        in dry.text
    )
    assert not any(line.startswith("✓") and "not checked" in line for line in dry.text.splitlines())
    assert (await api_service(bot))["desiredCount"] == 2
