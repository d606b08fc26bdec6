"""The ECS and ECR port on aiobotocore."""

from __future__ import annotations

from typing import Any

from adapters.cloud.aws import AwsClients
from bot.config import EcsTarget
from bot.errors import Refused
from bot.ports.ecs import EcsDeployment, EcsEvent, EcsServiceState


def _deployment(raw: dict[str, Any]) -> EcsDeployment:
    return EcsDeployment(
        id=raw["id"],
        status=raw["status"],
        task_definition=raw["taskDefinition"],
        desired=raw.get("desiredCount", 0),
        running=raw.get("runningCount", 0),
        pending=raw.get("pendingCount", 0),
        failed_tasks=raw.get("failedTasks", 0),
        rollout_state=raw.get("rolloutState"),
        rollout_reason=raw.get("rolloutStateReason"),
        created_at=raw.get("createdAt"),
        updated_at=raw.get("updatedAt"),
    )


class AwsEcs:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    async def _describe_raw(self, region: str, target: EcsTarget) -> dict[str, Any]:
        ecs = await self._clients.client("ecs", region)
        response = await ecs.describe_services(cluster=target.cluster, services=[target.service])
        services = response.get("services", [])
        if not services or services[0].get("status") == "INACTIVE":
            reason = (response.get("failures") or [{}])[0].get("reason", "MISSING")
            raise Refused(
                f"ECS service {target.cluster}/{target.service} not found ({reason})",
                hint="check environments.*.services.*.ecs in the config",
            )
        service: dict[str, Any] = services[0]
        return service

    async def _container_image(self, region: str, task_definition: str, container: str) -> str:
        ecs = await self._clients.client("ecs", region)
        response = await ecs.describe_task_definition(taskDefinition=task_definition)
        for definition in response["taskDefinition"]["containerDefinitions"]:
            if definition["name"] == container:
                return str(definition["image"])
        raise Refused(f"task definition {task_definition} has no container {container!r}")

    async def describe_service(self, region: str, target: EcsTarget) -> EcsServiceState:
        raw = await self._describe_raw(region, target)
        image = await self._container_image(region, raw["taskDefinition"], target.container)
        return EcsServiceState(
            cluster=target.cluster,
            service=target.service,
            status=raw.get("status", ""),
            desired=raw.get("desiredCount", 0),
            running=raw.get("runningCount", 0),
            pending=raw.get("pendingCount", 0),
            task_definition=raw["taskDefinition"],
            image=image,
            deployments=[_deployment(d) for d in raw.get("deployments", [])],
            events=[
                EcsEvent(id=e["id"], at=e["createdAt"], message=e["message"])
                for e in raw.get("events", [])[:20]
            ],
        )
