"""What the core needs from ECS and ECR."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from bot.config import AwsScope, EcsTarget


class EcsDeployment(BaseModel, defer_build=True):
    id: str
    status: str  # PRIMARY | ACTIVE | INACTIVE
    task_definition: str
    desired: int
    running: int
    pending: int
    failed_tasks: int = 0
    rollout_state: str | None = None
    rollout_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class EcsEvent(BaseModel, defer_build=True):
    id: str
    at: datetime
    message: str


class EcsServiceState(BaseModel, defer_build=True):
    cluster: str
    service: str
    status: str
    desired: int
    running: int
    pending: int
    task_definition: str  # ARN
    image: str  # the configured container's image
    # The tag a revision pinned by digest was deployed as (its `kajitori:version` tag).
    version: str | None = None
    deployments: list[EcsDeployment] = Field(default_factory=list)
    events: list[EcsEvent] = Field(default_factory=list)
    # The account the service is in, from its ARN (None where the ARN did not say).
    account: str | None = None

    @property
    def image_tag(self) -> str:
        return self.version or image_tag(self.image)

    @property
    def revision(self) -> str:
        """`family:revision` of the task definition."""
        return task_definition_name(self.task_definition)

    @property
    def primary(self) -> EcsDeployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)


def image_tag(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return name.split("@", 1)[1]
    return name.split(":", 1)[1] if ":" in name else "latest"


def image_repository(image: str) -> str:
    """`ACCOUNT.dkr.ecr.REGION.amazonaws.com/api:v1` -> `api`."""
    path = image.split("/", 1)[1] if "/" in image else image
    return path.split("@", 1)[0].split(":", 1)[0]


def image_digest(image: str) -> str | None:
    """`…/api@sha256:…` -> `sha256:…`; None for an image named by tag."""
    name = image.rsplit("/", 1)[-1]
    return name.split("@", 1)[1] if "@" in name else None


def image_with_digest(image: str, digest: str) -> str:
    """`…/api:v1` -> `…/api@sha256:…`: the image pinned to exactly these bytes."""
    head, _, name = image.rpartition("/")
    name = name.split("@", 1)[0].split(":", 1)[0]
    return f"{head}/{name}@{digest}" if head else f"{name}@{digest}"


def image_with_tag(image: str, tag: str) -> str:
    """`…/api:v1` (or `…/api@sha256:…`) -> `…/api:TAG`; a registry port (`host:5000/…`) stays."""
    head, _, name = image.rpartition("/")
    name = name.split("@", 1)[0].split(":", 1)[0]
    return f"{head}/{name}:{tag}" if head else f"{name}:{tag}"


_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


def ecr_registry(image: str) -> tuple[str, str] | None:
    """(account, region) of an ECR image URI, None for any other registry."""
    match = _ECR_HOST.match(image)
    return (match.group(1), match.group(2)) if match else None


class EcrImage(BaseModel, defer_build=True):
    repository: str
    tag: str
    digest: str
    pushed_at: datetime | None = None


# The task definition tag that keeps the image tag a revision pinned by digest was deployed as.
VERSION_TAG = "kajitori:version"


class TaskDefinitionInfo(BaseModel, defer_build=True):
    arn: str
    status: str  # ACTIVE | INACTIVE | DELETE_IN_PROGRESS
    image: str  # the named container's image
    version: str | None = None  # its VERSION_TAG

    @property
    def revision(self) -> str:
        return task_definition_name(self.arn)

    @property
    def image_tag(self) -> str:
        return self.version or image_tag(self.image)


class StoppedTask(BaseModel, defer_build=True):
    task_id: str
    task_definition: str
    started_by: str | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    stopped_at: datetime | None = None
    # "app: exit code 1", "app: CannotPullContainerError: …", one per container with news.
    containers: list[str] = Field(default_factory=list)


def task_definition_name(arn: str) -> str:
    """`arn:aws:ecs:…:task-definition/api-staging:3` -> `api-staging:3`."""
    return arn.rsplit("/", 1)[-1]


class EcsCapacity(BaseModel, defer_build=True):
    desired: int
    running: int
    pending: int
    deployments: int  # how many deployments the service has (1 when steady)
    launch_type: str  # FARGATE, EC2, EXTERNAL, or CAPACITY_PROVIDER
    task_vcpus: float | None  # from the task definition's `cpu`, when it says


class EcsPort(Protocol):
    async def describe_service(self, scope: AwsScope, target: EcsTarget) -> EcsServiceState: ...
    async def describe_capacity(self, scope: AwsScope, target: EcsTarget) -> EcsCapacity:
        """Counts, launch type and task size: what scaling out needs."""

    async def set_desired_count(self, scope: AwsScope, target: EcsTarget, count: int) -> None: ...

    async def find_image(
        self, scope: AwsScope, repository: str, tag: str, registry_id: str | None = None
    ) -> EcrImage | None:
        """The image tagged `tag` (or with digest `tag`, when it is `sha256:…`) in the ECR
        repository, with its digest; None when it is not there. Refused when the repository
        does not exist or cannot be read."""

    async def recent_tags(
        self, scope: AwsScope, repository: str, registry_id: str | None = None, limit: int = 5
    ) -> list[str]:
        """The most recently pushed tags of the repository, newest first."""

    async def describe_task_definition(
        self, scope: AwsScope, task_definition: str, container: str
    ) -> TaskDefinitionInfo: ...

    async def next_revision(self, scope: AwsScope, task_definition: str) -> str:
        """`family:N` that registering a new revision of this family would most likely get."""

    async def register_image_revision(
        self, scope: AwsScope, task_definition: str, container: str, image: str, version: str
    ) -> str:
        """Register a new revision of `task_definition` that differs only in `container`'s
        image (and its VERSION_TAG, set to `version`); everything else (environment,
        secrets, CPU, memory, roles, network mode, compatibilities, tags) is copied.
        Returns the new revision's ARN."""

    async def update_service(self, scope: AwsScope, target: EcsTarget, task_definition: str) -> str:
        """Point the service at `task_definition` with the deployment circuit breaker on
        (rollback enabled); the rest of its deployment configuration is kept. Returns the
        id of the deployment ECS started."""

    async def stopped_tasks(
        self, scope: AwsScope, target: EcsTarget, started_by: str | None = None, limit: int = 20
    ) -> list[StoppedTask]:
        """The service's stopped tasks (newest first), optionally only one deployment's."""

    async def container_instances(self, scope: AwsScope, cluster: str) -> list[str]:
        """The EC2 instance ids of the cluster's container instances (none on Fargate)."""

    async def force_new_deployment(self, scope: AwsScope, target: EcsTarget) -> str:
        """A new deployment of the revision the service runs (`forceNewDeployment`), with
        the circuit breaker on; returns its id."""
