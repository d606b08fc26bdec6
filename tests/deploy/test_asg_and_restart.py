"""Auto Scaling deploys by instance refresh (checkpoints, automatic rollback, refusals) and
`restart` for ECS services and Auto Scaling groups, against the sandbox over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.bootstrap import Bot, build_bot
from bot.config import Settings, parse_config
from bot.errors import ConfigError
from bot.model import JobStatus, Outcome
from bot.polling import Polling
from tests.conftest import demo_data
from tests.deploy.helpers import REGION, finish, say
from tests.support.chat import RecordingChat

QUICK = Polling(first=0.02, factor=1.5, longest=0.1, report_every=0.5)


@contextlib.asynccontextmanager
async def worker_bot(
    sandbox: Any, chat: RecordingChat, checkpoint_delay: str, **worker: str
) -> AsyncIterator[Bot]:
    """The demo with staging's `worker` deploying through checkpoints at 50 %."""
    data = demo_data()
    data["store"] = "sqlite://:memory:"
    service = data["environments"]["staging"]["services"]["worker"]
    service.update(worker)
    service["deploy"] = {
        "image_parameter": "/app/worker/ami/{version}",
        "checkpoints": [50],
        "checkpoint_delay": checkpoint_delay,
        "min_healthy_percentage": 50,
        "auto_rollback": True,
    }
    built = await build_bot(
        parse_config(data),
        Settings(aws_endpoint_url=sandbox.url),
        chats=[chat],
        runner="test",
        polling=QUICK,
    )
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def bot(sandbox: Any, chat: RecordingChat) -> AsyncIterator[Bot]:
    async with worker_bot(sandbox, chat, "1h") as built:
        yield built


async def two_workers(bot: Bot) -> None:
    autoscaling = await bot.aws.client("autoscaling", REGION)
    await autoscaling.update_auto_scaling_group(
        AutoScalingGroupName="worker-staging", DesiredCapacity=2
    )


async def worker_group(bot: Bot) -> dict[str, Any]:
    autoscaling = await bot.aws.client("autoscaling", REGION)
    described = await autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=["worker-staging"]
    )
    group: dict[str, Any] = described["AutoScalingGroups"][0]
    return group


async def refreshes(bot: Bot) -> list[dict[str, Any]]:
    autoscaling = await bot.aws.client("autoscaling", REGION)
    described = await autoscaling.describe_instance_refreshes(AutoScalingGroupName="worker-staging")
    found: list[dict[str, Any]] = described["InstanceRefreshes"]
    return found


async def image_of_instances(bot: Bot) -> set[str]:
    group = await worker_group(bot)
    ids = [i["InstanceId"] for i in group["Instances"]]
    ec2 = await bot.aws.client("ec2", REGION)
    described = await ec2.describe_instances(InstanceIds=ids)
    return {i["ImageId"] for r in described["Reservations"] for i in r["Instances"]}


async def ami(bot: Bot, version: str) -> str:
    ssm = await bot.aws.client("ssm", REGION)
    found = await ssm.get_parameter(Name=f"/app/worker/ami/{version}")
    return str(found["Parameter"]["Value"])


async def test_asg_deploy_waits_at_its_checkpoint_until_promoted_then_completes(
    bot: Bot, chat: RecordingChat, sandbox: Any
) -> None:
    # The checkpoint waits far longer than the test: only `promote` ends it.
    sandbox.set_timing(sandbox.timing.model_copy(update={"asg_checkpoint_delay": 600.0}))
    await two_workers(bot)
    result = await say(bot, "local:alice", "deploy worker staging v2")
    assert result.outcome is Outcome.STARTED, result.text
    assert result.job is not None
    job_id = result.job.id
    await chat.wait_for(lambda posted: any("waits at a checkpoint" in p.text for p in posted))
    [refresh] = await refreshes(bot)
    assert refresh["Status"] == "InProgress"
    assert refresh["PercentageComplete"] == 50
    assert refresh["Preferences"]["CheckpointPercentages"] == [50]
    assert refresh["Preferences"]["AutoRollback"] is True
    assert refresh["Preferences"]["MinHealthyPercentage"] == 50
    assert await image_of_instances(bot) == {await ami(bot, "v1"), await ami(bot, "v2")}

    promoted = await say(bot, "local:bob", f"promote {job_id}")
    assert promoted.outcome is Outcome.OK, promoted.text
    assert await finish(bot, result) is JobStatus.SUCCEEDED, chat.texts()[-1]
    assert await image_of_instances(bot) == {await ami(bot, "v2")}
    group = await worker_group(bot)
    assert group["LaunchTemplate"]["Version"] == "2"  # the new version now
    ec2 = await bot.aws.client("ec2", REGION)
    version = await ec2.describe_launch_template_versions(
        LaunchTemplateId=group["LaunchTemplate"]["LaunchTemplateId"],
        Versions=[group["LaunchTemplate"]["Version"]],
    )
    described = version["LaunchTemplateVersions"][0]
    assert described["VersionDescription"].startswith("kajitori:version=v2")
    assert described["LaunchTemplateData"]["ImageId"] == await ami(bot, "v2")
    statuses = [r["Status"] for r in await refreshes(bot)]
    assert statuses == ["Successful", "Cancelled"]  # promoted: cancelled and started again
    texts = chat.texts()
    assert any("50% complete, 1 instance to update" in t for t in texts), texts
    assert texts[-1].startswith("deployed worker v2 to staging in ")
    assert "(was v1)" in texts[-1]
    [record] = await bot.services.store.list_deploys("worker", "staging")
    assert (record.version, record.previous_version, record.outcome) == ("v2", "v1", "succeeded")


async def test_asg_deploy_of_a_broken_image_is_rolled_back_automatically(
    bot: Bot, chat: RecordingChat
) -> None:
    await two_workers(bot)
    result = await say(bot, "local:alice", "deploy worker staging broken")
    assert await finish(bot, result) is JobStatus.FAILED
    final = chat.texts()[-1]
    assert "Auto Scaling rolled the refresh back (the refresh failed)" in final, final
    assert "failed its health checks" in final
    assert "worker-staging runs v1 again; broken is not running" in final
    assert [r["Status"] for r in await refreshes(bot)] == ["RollbackSuccessful"]
    assert any("RollbackInProgress" in t for t in chat.texts())
    assert await image_of_instances(bot) == {await ami(bot, "v1")}
    group = await worker_group(bot)
    assert group["LaunchTemplate"]["Version"] == "1"
    assert all(i["LifecycleState"] == "InService" for i in group["Instances"])
    [record] = await bot.services.store.list_deploys("worker", "staging")
    assert record.outcome == "rolled_back"


async def test_asg_deploy_of_a_version_without_an_ami_parameter_is_refused(bot: Bot) -> None:
    result = await say(bot, "local:alice", "deploy worker staging v9")
    assert result.outcome is Outcome.REFUSED
    assert "there is no SSM parameter /app/worker/ami/v9" in result.text
    assert "nothing was changed" in result.text
    assert await refreshes(bot) == []


async def test_asg_deploy_is_refused_while_an_instance_refresh_runs(bot: Bot) -> None:
    await two_workers(bot)
    autoscaling = await bot.aws.client("autoscaling", REGION)
    await autoscaling.start_instance_refresh(
        AutoScalingGroupName="worker-staging",
        Preferences={"CheckpointPercentages": [50], "CheckpointDelay": 3600},
    )
    result = await say(bot, "local:alice", "deploy worker staging v2")
    assert result.outcome is Outcome.REFUSED
    assert "an instance refresh of worker-staging is already running" in result.text
    assert len(await refreshes(bot)) == 1


async def test_asg_restart_refreshes_the_current_template_after_confirmation(
    bot: Bot, chat: RecordingChat
) -> None:
    before = {i["InstanceId"] for i in (await worker_group(bot))["Instances"]}
    result = await say(bot, "local:carol", "restart worker staging")
    assert result.outcome is Outcome.PENDING, result.text
    assert result.request is not None
    confirmed = await say(bot, "local:carol", f"approve {result.request.id}")
    assert await finish(bot, confirmed) is JobStatus.SUCCEEDED, chat.texts()[-1]
    [refresh] = await refreshes(bot)
    assert refresh["Status"] == "Successful"
    after = {i["InstanceId"] for i in (await worker_group(bot))["Instances"]}
    assert after and not (after & before)  # every instance replaced
    assert await image_of_instances(bot) == {await ami(bot, "v1")}
    assert chat.texts()[-1].startswith("restarted worker in staging in ")


async def test_ecs_restart_starts_a_new_deployment_of_the_same_revision(
    bot: Bot, chat: RecordingChat
) -> None:
    ecs = await bot.aws.client("ecs", REGION)
    before = (await ecs.describe_services(cluster="staging", services=["api"]))["services"][0]
    result = await say(bot, "local:alice", "restart api staging")
    assert result.outcome is Outcome.PENDING, result.text  # confirmation, even on staging
    assert result.request is not None
    confirmed = await say(bot, "local:alice", f"approve {result.request.id}")
    assert await finish(bot, confirmed) is JobStatus.SUCCEEDED, chat.texts()[-1]
    after = (await ecs.describe_services(cluster="staging", services=["api"]))["services"][0]
    assert after["taskDefinition"] == before["taskDefinition"]
    assert [d["id"] for d in after["deployments"]] != [d["id"] for d in before["deployments"]]
    assert after["deployments"][0]["rolloutState"] == "COMPLETED"
    assert "restarted api in staging in " in chat.texts()[-1]
    assert "2/2 fresh tasks running (api-staging:1, v1)" in chat.texts()[-1]


async def test_restart_on_a_protected_environment_needs_approval(bot: Bot) -> None:
    result = await say(bot, "local:alice", "restart api production")
    assert result.outcome is Outcome.PENDING
    assert "needs approval" in result.text
    own = await say(bot, "local:alice", f"approve {result.request.id if result.request else 0}")
    assert own.outcome is Outcome.REFUSED


async def test_manual_checkpoints_wait_for_a_person_and_a_job_timing_out_cancels_the_refresh(
    sandbox: Any, chat: RecordingChat
) -> None:
    # Auto Scaling itself would go on after the delay; the sandbox is told to wait longer.
    sandbox.set_timing(sandbox.timing.model_copy(update={"asg_checkpoint_delay": 600.0}))
    async with worker_bot(sandbox, chat, "manual", timeout="4s") as bot:
        await two_workers(bot)
        dry = await say(bot, "local:alice", "deploy worker staging v2 --dry-run")
        assert "waiting for `promote` (or `abort`) at each" in dry.text, dry.text
        result = await say(bot, "local:alice", "deploy worker staging v2")
        assert result.outcome is Outcome.STARTED, result.text
        assert result.job is not None
        job = result.job.ref
        await chat.wait_for(lambda posted: any("waits at a checkpoint" in p.text for p in posted))
        waiting = next(t for t in chat.texts() if "waits at a checkpoint" in t)
        assert f"waits for `promote {job}` to go on" in waiting, waiting
        [refresh] = await refreshes(bot)
        # The longest wait Auto Scaling takes: only a person ends it.
        assert refresh["Preferences"]["CheckpointDelay"] == 172800
        assert await finish(bot, result) is JobStatus.FAILED
        final = chat.texts()[-1]
        assert "the instance refresh was cancelled" in final, final
        assert [r["Status"] for r in await refreshes(bot)] == ["Cancelled"]
        [record] = await bot.services.store.list_deploys("worker", "staging")
        assert record.outcome == "failed"
        assert "refresh cancelled (CancelInstanceRefresh)" in record.detail


def test_a_checkpoint_delay_beyond_auto_scalings_two_days_is_refused_with_the_way_out() -> None:
    data = demo_data()
    data["environments"]["staging"]["services"]["worker"]["deploy"] = {
        "image_parameter": "/app/worker/ami/{version}",
        "checkpoints": [50],
        "checkpoint_delay": "3d",
    }
    with pytest.raises(ConfigError, match=r"at most 2 days.*`manual` waits for `promote JOB`"):
        parse_config(data)
