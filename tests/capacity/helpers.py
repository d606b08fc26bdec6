"""Helpers for the capacity tests: commands through the real dispatcher, AWS read back from
the sandbox over HTTP with the bot's own clients."""

from __future__ import annotations

from typing import Any

from adapters.bootstrap import Bot
from bot.dispatcher import Result
from bot.model import JobStatus, Origin, Outcome

REGION = "ap-northeast-1"


def origin(member: str = "local:alice") -> Origin:
    return Origin(adapter="local", channel="local", member=member)


async def say(bot: Bot, text: str, member: str = "local:alice") -> Result:
    return await bot.dispatcher.handle(origin(member), text)


async def finish(bot: Bot, result: Result) -> JobStatus:
    assert result.job is not None, result.text
    return await bot.jobs.wait(result.job.id)


async def run_job(bot: Bot, text: str, member: str = "local:alice") -> Result:
    """Run a command to the end of its job, confirming it first when it asks to."""
    result = await say(bot, text, member)
    if result.outcome is Outcome.PENDING:
        assert result.request is not None
        result = await say(bot, f"approve {result.request.id}", member)
    assert result.outcome is Outcome.STARTED, result.text
    await finish(bot, result)
    return result


async def confirm(bot: Bot, pending: Result, member: str = "local:alice") -> Result:
    """Confirm a pending request and run its job to the end."""
    assert pending.request is not None, pending.text
    result = await say(bot, f"approve {pending.request.id}", member)
    assert result.outcome is Outcome.STARTED, result.text
    await finish(bot, result)
    return result


async def final_message(bot: Bot, result: Result) -> tuple[JobStatus, str]:
    assert result.job is not None
    record = await bot.services.store.get_job(result.job.id)
    assert record is not None
    return record.status, record.summary


async def client(bot: Bot, service: str) -> Any:
    return await bot.aws.client(service, REGION)


async def fleet(bot: Bot, env: str = "staging", service: str = "web") -> list[dict[str, Any]]:
    """The fleet's instances that are not terminated, as EC2 describes them."""
    ec2 = await client(bot, "ec2")
    response = await ec2.describe_instances(
        Filters=[
            {"Name": "tag:kajitori:service", "Values": [service]},
            {"Name": "tag:kajitori:env", "Values": [env]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped"],
            },
        ]
    )
    return [i for r in response["Reservations"] for i in r["Instances"]]


async def all_instances(bot: Bot) -> list[dict[str, Any]]:
    ec2 = await client(bot, "ec2")
    response = await ec2.describe_instances()
    return [i for r in response["Reservations"] for i in r["Instances"]]


async def target_health(bot: Bot, env: str = "staging") -> dict[str, str]:
    elbv2 = await client(bot, "elbv2")
    groups = await elbv2.describe_target_groups(Names=[f"web-{env}-tg"])
    arn = groups["TargetGroups"][0]["TargetGroupArn"]
    health = await elbv2.describe_target_health(TargetGroupArn=arn)
    return {
        d["Target"]["Id"]: d["TargetHealth"]["State"] for d in health["TargetHealthDescriptions"]
    }


async def worker_group(bot: Bot, env: str = "staging") -> dict[str, Any]:
    autoscaling = await client(bot, "autoscaling")
    response = await autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[f"worker-{env}"]
    )
    group: dict[str, Any] = response["AutoScalingGroups"][0]
    return group


async def api_service(bot: Bot, env: str = "staging") -> dict[str, Any]:
    ecs = await client(bot, "ecs")
    response = await ecs.describe_services(cluster=env, services=["api"])
    service: dict[str, Any] = response["services"][0]
    return service
