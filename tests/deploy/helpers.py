"""Helpers for the deploy tests: commands through the real dispatcher, ECS read back from the
sandbox over HTTP with the bot's own AWS clients."""

from __future__ import annotations

from typing import Any

from adapters.bootstrap import Bot
from bot.dispatcher import Result
from bot.jobs.locks import LockKey
from bot.model import DeployRecord, JobStatus, LockRecord, Origin
from sandbox import SandboxTiming

REGION = "ap-northeast-1"
# Slow enough that a rollout is still going when a test acts on it.
SLOW = SandboxTiming(
    ecs_task_step=0.6,
    target_health_check=0.2,
    deregistration_delay=0.3,
    instance_transition=0.1,
    rds_modify=0.3,
)


def origin(member: str) -> Origin:
    return Origin(adapter="local", channel="local", member=member)


async def say(bot: Bot, member: str, text: str) -> Result:
    return await bot.dispatcher.handle(origin(member), text)


async def finish(bot: Bot, result: Result) -> JobStatus:
    assert result.job is not None, result.text
    return await bot.jobs.wait(result.job.id)


async def deploy_and_wait(bot: Bot, text: str, member: str = "local:alice") -> JobStatus:
    return await finish(bot, await say(bot, member, text))


async def ecs_client(bot: Bot) -> Any:
    return await bot.aws.client("ecs", REGION)


async def running_definition(bot: Bot, env: str = "staging") -> dict[str, Any]:
    """The task definition the `api` service of `env` points at, as ECS describes it."""
    ecs = await ecs_client(bot)
    service = (await ecs.describe_services(cluster=env, services=["api"]))["services"][0]
    described = await ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    definition: dict[str, Any] = described["taskDefinition"]
    return definition


async def revisions(bot: Bot, env: str = "staging") -> list[str]:
    ecs = await ecs_client(bot)
    listed = await ecs.list_task_definitions(familyPrefix=f"api-{env}")
    arns: list[str] = listed["taskDefinitionArns"]
    return arns


def image_of(definition: dict[str, Any]) -> str:
    return str(definition["containerDefinitions"][0]["image"])


async def is_image(bot: Bot, definition: dict[str, Any], tag: str) -> bool:
    """Whether the definition's container runs `tag`: named by the tag (as seeded), or
    pinned to the digest the tag points to in ECR (as a deploy registers it)."""
    image = image_of(definition)
    if image.endswith(f"/api:{tag}"):
        return True
    ecr = await bot.aws.client("ecr", REGION)
    found = await ecr.describe_images(repositoryName="api", imageIds=[{"imageTag": tag}])
    return image.endswith(f"/api@{found['imageDetails'][0]['imageDigest']}")


async def history(bot: Bot, env: str = "staging") -> list[DeployRecord]:
    return await bot.services.store.list_deploys("api", env)


async def lock_holder(bot: Bot, service: str = "api", env: str = "staging") -> LockRecord | None:
    return await bot.kernel.locks.holder(LockKey(service, env))
