"""The ECS and ECR port on aiobotocore."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from adapters.aws.clients import AwsClients
from adapters.aws.ecs_reads import ServiceReads
from bot.config import AwsScope, EcsTarget
from bot.errors import OperationFailed, Refused
from bot.ports.ecs import (
    VERSION_TAG,
    EcrImage,
    EcsCapacity,
    EcsDeployment,
    EcsEvent,
    EcsServiceState,
    StoppedTask,
    TaskDefinitionInfo,
    task_definition_name,
)

# DescribeTasks takes at most 100 tasks per call.
_DESCRIBE_CONTAINER_INSTANCES_BATCH = 100
_DESCRIBE_TASKS_BATCH = 100
# ECS keeps stopped tasks for about an hour; a service crash-looping for that hour still
# answers in a few calls.
_MAX_STOPPED_TASKS = 500
_IMAGE_CACHE_SIZE = 512


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _aws_refusal(action: str, error: ClientError) -> Refused:
    detail = error.response.get("Error", {})
    return Refused(f"AWS refused {action}: {detail.get('Code')}: {detail.get('Message')}")


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


def _arn_account(arn: str) -> str | None:
    """`arn:aws:ecs:REGION:ACCOUNT:service/…` -> `ACCOUNT`."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" and parts[4].isdigit() else None


def _update_failed(action: str, error: ClientError) -> OperationFailed:
    detail = error.response.get("Error", {})
    return OperationFailed(f"{action}: {detail.get('Code')}: {detail.get('Message')}")


class AwsEcs:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients
        # A task definition revision never changes, so a rollout watcher polling the service
        # reads each revision's image once, not once per poll.
        self._images: dict[tuple[AwsScope, str, str], TaskDefinitionInfo] = {}
        # Services of one cluster read at once share DescribeServices calls (ecs_reads.py).
        self._reads: dict[tuple[AwsScope, str], ServiceReads] = {}

    async def _describe_raw(self, scope: AwsScope, target: EcsTarget) -> dict[str, Any]:
        reads = self._reads.get((scope, target.cluster))
        if reads is None:

            async def describe(services: list[str]) -> dict[str, Any]:
                ecs = await self._clients.client("ecs", scope)
                response: dict[str, Any] = await ecs.describe_services(
                    cluster=target.cluster, services=services
                )
                return response

            reads = self._reads[(scope, target.cluster)] = ServiceReads(describe)
        service, reason = await reads.read(target.service)
        if service is None or service.get("status") == "INACTIVE":
            raise Refused(
                f"ECS service {target.cluster}/{target.service} not found ({reason})",
                hint="check environments.*.services.*.ecs in the config",
            )
        return service

    async def _container_image(
        self, scope: AwsScope, task_definition: str, container: str
    ) -> TaskDefinitionInfo:
        key = (scope, task_definition, container)
        info = self._images.get(key)
        if info is None:
            info = await self.describe_task_definition(scope, task_definition, container)
            if len(self._images) >= _IMAGE_CACHE_SIZE:
                self._images.clear()
            self._images[key] = info
        return info

    async def _task_definition_raw(
        self, scope: AwsScope, task_definition: str, include_tags: bool = False
    ) -> dict[str, Any]:
        ecs = await self._clients.client("ecs", scope)
        try:
            response = await ecs.describe_task_definition(
                taskDefinition=task_definition, **({"include": ["TAGS"]} if include_tags else {})
            )
        except ClientError as error:
            if _error_code(error) in ("ClientException", "InvalidParameterException"):
                raise Refused(
                    f"task definition {task_definition_name(task_definition)} not found"
                ) from None
            raise _aws_refusal("ecs:DescribeTaskDefinition", error) from None
        raw: dict[str, Any] = response["taskDefinition"]
        if include_tags and response.get("tags"):
            raw = {**raw, "tags": response["tags"]}
        return raw

    async def describe_task_definition(
        self, scope: AwsScope, task_definition: str, container: str
    ) -> TaskDefinitionInfo:
        raw = await self._task_definition_raw(scope, task_definition, include_tags=True)
        tags = {t.get("key"): t.get("value") for t in raw.get("tags") or []}
        for definition in raw["containerDefinitions"]:
            if definition["name"] == container:
                return TaskDefinitionInfo(
                    arn=raw["taskDefinitionArn"],
                    status=raw.get("status", "ACTIVE"),
                    image=str(definition["image"]),
                    version=tags.get(VERSION_TAG),
                )
        raise Refused(
            f"task definition {task_definition_name(task_definition)} has no container "
            f"{container!r}",
            hint="check environments.*.services.*.ecs.container in the config",
        )

    async def next_revision(self, scope: AwsScope, task_definition: str) -> str:
        family = task_definition_name(task_definition).split(":", 1)[0]
        latest = await self._task_definition_raw(scope, family)
        return f"{family}:{int(latest['revision']) + 1}"

    async def register_image_revision(
        self, scope: AwsScope, task_definition: str, container: str, image: str, version: str
    ) -> str:
        ecs = await self._clients.client("ecs", scope)
        current = await self._task_definition_raw(scope, task_definition, include_tags=True)
        # Copy every field RegisterTaskDefinition accepts, so that settings added to ECS
        # later survive a deploy; read-only fields (revision, status, ...) fall out here.
        accepted = ecs.meta.service_model.operation_model("RegisterTaskDefinition").input_shape
        request = {k: v for k, v in current.items() if k in accepted.members and v is not None}
        containers = [dict(c) for c in current["containerDefinitions"]]
        named = [c for c in containers if c["name"] == container]
        if not named:
            raise Refused(
                f"task definition {task_definition_name(task_definition)} has no container "
                f"{container!r}"
            )
        named[0]["image"] = image
        request["containerDefinitions"] = containers
        tags = [t for t in request.get("tags") or [] if t.get("key") != VERSION_TAG]
        request["tags"] = [*tags, {"key": VERSION_TAG, "value": version}]
        try:
            response = await ecs.register_task_definition(**request)
        except ClientError as error:
            raise OperationFailed(
                f"registering a new revision of {request['family']} failed: "
                f"{_error_code(error)}: {error.response.get('Error', {}).get('Message')}"
            ) from None
        return str(response["taskDefinition"]["taskDefinitionArn"])

    async def update_service(self, scope: AwsScope, target: EcsTarget, task_definition: str) -> str:
        ecs = await self._clients.client("ecs", scope)
        current = await self._describe_raw(scope, target)
        configuration = dict(current.get("deploymentConfiguration") or {})
        configuration["deploymentCircuitBreaker"] = {"enable": True, "rollback": True}
        try:
            response = await ecs.update_service(
                cluster=target.cluster,
                service=target.service,
                taskDefinition=task_definition,
                deploymentConfiguration=configuration,
            )
        except ClientError as error:
            raise OperationFailed(
                f"updating ECS service {target.cluster}/{target.service} failed: "
                f"{_error_code(error)}: {error.response.get('Error', {}).get('Message')}"
            ) from None
        deployments = response["service"].get("deployments") or []
        primary = next(
            (
                d
                for d in deployments
                if d.get("status") == "PRIMARY" and d.get("taskDefinition") == task_definition
            ),
            None,
        )
        if primary is None:
            raise OperationFailed(
                f"ECS accepted the update of {target.cluster}/{target.service} but started no "
                f"deployment of {task_definition_name(task_definition)}"
            )
        return str(primary["id"])

    async def force_new_deployment(self, scope: AwsScope, target: EcsTarget) -> str:
        ecs = await self._clients.client("ecs", scope)
        current = await self._describe_raw(scope, target)
        configuration = dict(current.get("deploymentConfiguration") or {})
        configuration["deploymentCircuitBreaker"] = {"enable": True, "rollback": True}
        before = {d.get("id") for d in current.get("deployments") or []}
        try:
            response = await ecs.update_service(
                cluster=target.cluster,
                service=target.service,
                forceNewDeployment=True,
                deploymentConfiguration=configuration,
            )
        except ClientError as error:
            raise OperationFailed(
                f"restarting ECS service {target.cluster}/{target.service} failed: "
                f"{_error_code(error)}: {error.response.get('Error', {}).get('Message')}"
            ) from None
        deployments = response["service"].get("deployments") or []
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        if primary is None or primary.get("id") in before:
            raise OperationFailed(
                f"ECS accepted the restart of {target.cluster}/{target.service} but started "
                "no new deployment"
            )
        return str(primary["id"])

    async def stopped_tasks(
        self, scope: AwsScope, target: EcsTarget, started_by: str | None = None, limit: int = 20
    ) -> list[StoppedTask]:
        ecs = await self._clients.client("ecs", scope)
        listing: dict[str, Any] = {
            "cluster": target.cluster,
            "serviceName": target.service,
            "desiredStatus": "STOPPED",
        }
        # ListTasks allows `startedBy` only as its sole filter, so the deployment is picked
        # out of the service's stopped tasks below.
        arns: list[str] = []
        paginator = ecs.get_paginator("list_tasks")
        async for page in paginator.paginate(**listing):
            arns.extend(page.get("taskArns", []))
            if len(arns) >= _MAX_STOPPED_TASKS:
                break
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(arns), _DESCRIBE_TASKS_BATCH):
            response = await ecs.describe_tasks(
                cluster=target.cluster, tasks=arns[start : start + _DESCRIBE_TASKS_BATCH]
            )
            tasks.extend(response.get("tasks", []))
        if started_by is not None:
            tasks = [t for t in tasks if t.get("startedBy") == started_by]
        tasks.sort(key=lambda t: t.get("stoppedAt") or t.get("createdAt") or 0, reverse=True)
        return [_stopped_task(t) for t in tasks[:limit]]

    async def container_instances(self, scope: AwsScope, cluster: str) -> list[str]:
        ecs = await self._clients.client("ecs", scope)
        arns: list[str] = []
        paginator = ecs.get_paginator("list_container_instances")
        async for page in paginator.paginate(cluster=cluster):
            arns.extend(page.get("containerInstanceArns", []))
        found: list[str] = []
        for start in range(0, len(arns), _DESCRIBE_CONTAINER_INSTANCES_BATCH):
            response = await ecs.describe_container_instances(
                cluster=cluster,
                containerInstances=arns[start : start + _DESCRIBE_CONTAINER_INSTANCES_BATCH],
            )
            found.extend(
                str(i["ec2InstanceId"])
                for i in response.get("containerInstances", [])
                if i.get("ec2InstanceId")
            )
        return found

    async def find_image(
        self, scope: AwsScope, repository: str, tag: str, registry_id: str | None = None
    ) -> EcrImage | None:
        ecr = await self._clients.client("ecr", scope)
        where = {"registryId": registry_id} if registry_id else {}
        image_id = {"imageDigest": tag} if tag.startswith("sha256:") else {"imageTag": tag}
        try:
            response = await ecr.describe_images(
                repositoryName=repository, imageIds=[image_id], **where
            )
        except ClientError as error:
            code = _error_code(error)
            if code == "ImageNotFoundException":
                return None
            if code == "RepositoryNotFoundException":
                raise Refused(
                    f"ECR repository {repository!r} not found in {scope.region}",
                    hint="set environments.*.services.*.ecs.repository in the config",
                ) from None
            raise _aws_refusal("ecr:DescribeImages", error) from None
        details = response.get("imageDetails") or []
        if not details:
            return None
        return EcrImage(
            repository=repository,
            tag=tag,
            digest=details[0].get("imageDigest", ""),
            pushed_at=details[0].get("imagePushedAt"),
        )

    async def recent_tags(
        self, scope: AwsScope, repository: str, registry_id: str | None = None, limit: int = 5
    ) -> list[str]:
        ecr = await self._clients.client("ecr", scope)
        where = {"registryId": registry_id} if registry_id else {}
        images: list[dict[str, Any]] = []
        try:
            paginator = ecr.get_paginator("describe_images")
            async for page in paginator.paginate(
                repositoryName=repository, filter={"tagStatus": "TAGGED"}, **where
            ):
                images.extend(page.get("imageDetails", []))
        except ClientError:
            return []
        images.sort(key=lambda i: i.get("imagePushedAt") or 0, reverse=True)
        tags = [tag for image in images for tag in image.get("imageTags", [])]
        return tags[:limit]

    async def describe_service(self, scope: AwsScope, target: EcsTarget) -> EcsServiceState:
        raw = await self._describe_raw(scope, target)
        info = await self._container_image(scope, raw["taskDefinition"], target.container)
        return EcsServiceState(
            cluster=target.cluster,
            service=target.service,
            status=raw.get("status", ""),
            desired=raw.get("desiredCount", 0),
            running=raw.get("runningCount", 0),
            pending=raw.get("pendingCount", 0),
            task_definition=raw["taskDefinition"],
            image=info.image,
            version=info.version,
            deployments=[_deployment(d) for d in raw.get("deployments", [])],
            events=[
                EcsEvent(id=e["id"], at=e["createdAt"], message=e["message"])
                for e in raw.get("events", [])[:20]
            ],
            account=_arn_account(raw.get("serviceArn", "")),
        )

    async def describe_capacity(self, scope: AwsScope, target: EcsTarget) -> EcsCapacity:
        ecs = await self._clients.client("ecs", scope)
        response = await ecs.describe_services(cluster=target.cluster, services=[target.service])
        services = response.get("services", [])
        if not services or services[0].get("status") == "INACTIVE":
            raise Refused(f"ECS service {target.cluster}/{target.service} not found")
        service = services[0]
        launch_type = service.get("launchType") or (
            "CAPACITY_PROVIDER" if service.get("capacityProviderStrategy") else "EC2"
        )
        definition = await ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
        cpu = definition["taskDefinition"].get("cpu")
        return EcsCapacity(
            desired=service.get("desiredCount", 0),
            running=service.get("runningCount", 0),
            pending=service.get("pendingCount", 0),
            deployments=len(service.get("deployments", [])),
            launch_type=launch_type,
            task_vcpus=int(cpu) / 1024 if cpu and str(cpu).isdigit() else None,
        )

    async def set_desired_count(self, scope: AwsScope, target: EcsTarget, count: int) -> None:
        ecs = await self._clients.client("ecs", scope)
        try:
            await ecs.update_service(
                cluster=target.cluster, service=target.service, desiredCount=count
            )
        except ClientError as error:
            raise _update_failed(
                f"UpdateService {target.cluster}/{target.service}", error
            ) from None


def _stopped_task(raw: dict[str, Any]) -> StoppedTask:
    containers = []
    for container in raw.get("containers", []):
        parts = []
        if container.get("exitCode") is not None:
            parts.append(f"exit code {container['exitCode']}")
        if container.get("reason"):
            parts.append(str(container["reason"]))
        if parts:
            containers.append(f"{container.get('name', '?')}: {', '.join(parts)}")
    return StoppedTask(
        task_id=str(raw.get("taskArn", "")).rsplit("/", 1)[-1],
        task_definition=raw.get("taskDefinitionArn", ""),
        started_by=raw.get("startedBy"),
        stop_code=raw.get("stopCode"),
        stopped_reason=raw.get("stoppedReason"),
        stopped_at=raw.get("stoppedAt"),
        containers=containers,
    )
